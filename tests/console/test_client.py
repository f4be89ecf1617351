"""The console's client against the real sidecar process."""

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from sidecar.console.client import RemoteError, SidecarClient, SidecarGone, own_command


def serve(tmp_path: Path) -> list[str]:
    return [*own_command(), "serve", "--db", str(tmp_path / "a.db"), "--archive", str(tmp_path)]


async def test_calls_notifications_errors_and_a_clean_close(tmp_path: Path) -> None:
    seen: list[str] = []
    client = await SidecarClient.spawn(serve(tmp_path), on_notification=lambda m, _: seen.append(m))
    assert client.ready is not None and client.ready["pid"] == client.process.pid
    assert seen == ["sidecar:ready"]
    info, status = await asyncio.gather(client.request("sidecar:info"), client.request("import:v2:status"))
    assert info["dbPath"] == str(tmp_path / "a.db") and status["status"] == "idle"
    with pytest.raises(RemoteError) as error:
        await client.request("import:v2:cancel", [1, 2])
    assert error.value.code == -32602 and error.value.data["issues"]
    assert await client.close() == 0


async def test_a_sidecar_that_dies_fails_the_calls_in_flight(tmp_path: Path) -> None:
    client = await SidecarClient.spawn(serve(tmp_path))
    blocked = asyncio.create_task(client.request("import:v2:resumable"))
    client.process.send_signal(signal.SIGKILL)
    with pytest.raises(SidecarGone):
        async with asyncio.timeout(10):
            await blocked
    with pytest.raises(SidecarGone):
        await client.request("sidecar:info")
    assert await client.close() == -signal.SIGKILL


async def test_a_command_that_exits_before_ready_is_reported() -> None:
    with pytest.raises(SidecarGone, match="exit code 3"):
        await SidecarClient.spawn([sys.executable, "-c", "raise SystemExit(3)"])
