"""The process lifecycle, end to end: ready, info, and every way of stopping."""

import asyncio
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import pytest

from sidecar import PROTOCOL_VERSION, __version__
from sidecar.host import BYTE_WORKER_NICENESS
from tests.support.client import SidecarPaths, SidecarProcess, Spawn, sidecar_command
from tests.support.processes import lowered, niceness, this_thread


async def test_ready_is_sent_once_first(sidecar: SidecarProcess):
    await sidecar.request("sidecar:info")
    assert sidecar.of("sidecar:ready") == [
        {"version": __version__, "protocolVersion": PROTOCOL_VERSION, "pid": sidecar.process.pid}
    ]
    first = sidecar.frames[0]
    assert isinstance(first, dict) and first["method"] == "sidecar:ready"


async def test_info_describes_the_process_and_finds_the_tools(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths
):
    info = await sidecar.request("sidecar:info")
    assert info["pid"] == sidecar.process.pid
    assert info["dbPath"] == str(sidecar_paths.db)
    assert info["archivePath"] == str(sidecar_paths.archive)
    assert info["python"] == platform.python_version()  # the interpreter running the tests
    assert info["hashWorkers"] == min((os.cpu_count() or 1) + 1, 8)  # the default: one more than the cores
    for name in ("exiftool", "ffprobe", "ffmpeg"):  # the project's setup installs all three
        tool = info["tools"][name]
        assert tool is not None, f"{name} not found: run scripts/setup"
        assert Path(tool["path"]).is_absolute() and os.access(tool["path"], os.X_OK)
        assert tool["version"][0].isdigit()


async def test_a_missing_tool_is_null_and_nothing_else_breaks(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths
):
    client = await spawn_sidecar(
        [*sidecar_paths.args(), "--exiftool", "/nonexistent/exiftool", "--hash-workers", "3"]
    )
    info = await client.request("sidecar:info")
    assert info["tools"]["exiftool"] is None
    assert info["tools"]["ffprobe"] is not None
    assert info["hashWorkers"] == 3
    logged = client.stderr_json()
    assert any(r.get("action") == "tools.missing" and r.get("tool") == "exiftool" for r in logged)


async def test_archive_defaults_to_the_apps_setting(spawn_sidecar: Spawn, sidecar_paths: SidecarPaths):
    client = await spawn_sidecar(["serve", "--db", str(sidecar_paths.db)])
    assert (await client.request("sidecar:info"))["archivePath"] is None
    await client.close_stdin()
    assert await client.wait_exit() == 0
    with closing(sqlite3.connect(sidecar_paths.db)) as db, db:
        db.execute("INSERT INTO settings(key, value) VALUES ('archive_folder', '/archive/from/app')")
    client = await spawn_sidecar(["serve", "--db", str(sidecar_paths.db)])
    assert (await client.request("sidecar:info"))["archivePath"] == "/archive/from/app"


async def test_default_database_lives_in_the_user_data_folder(spawn_sidecar: Spawn, tmp_path: Path):
    client = await spawn_sidecar(["serve"], env={"XDG_CONFIG_HOME": str(tmp_path / "config")})
    info = await client.request("sidecar:info")
    expected = tmp_path / "config" / "au-archive-sidecar" / "au-archive.db"
    assert info["dbPath"] == str(expected)
    assert expected.is_file()


async def test_stdin_eof_exits_zero(sidecar: SidecarProcess):
    await sidecar.request("sidecar:info")
    await sidecar.close_stdin()
    assert await sidecar.wait_exit(10) == 0
    assert any(r.get("action") == "sidecar.exit" for r in sidecar.stderr_json())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signals_exit_zero(sidecar: SidecarProcess, signum: int):
    sidecar.signal(signum)
    assert await sidecar.wait_exit(10) == 0


async def test_shutdown_answers_then_exits_zero(sidecar: SidecarProcess):
    assert await sidecar.request("sidecar:shutdown") == {"ok": True}
    assert await sidecar.wait_exit(10) == 0


def test_a_vanished_reader_is_a_shutdown(sidecar_paths: SidecarPaths):
    """The app closed its end of our stdout but not stdin: the next write fails and we stop."""
    process = subprocess.Popen(
        [*sidecar_command(), *sidecar_paths.args()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None and process.stdin is not None
    assert b"sidecar:ready" in process.stdout.readline()
    process.stdout.close()
    process.stdin.write(b'{"jsonrpc":"2.0","method":"sidecar:info","id":1}\n')
    process.stdin.flush()
    try:
        assert process.wait(10) == 0
    finally:
        process.kill()
        process.stdin.close()


async def test_logs_are_json_lines_with_an_action_on_stderr(sidecar: SidecarProcess):
    await sidecar.request("sidecar:info")
    records = sidecar.stderr_json()
    assert records, sidecar.stderr_lines
    assert all("action" in r and "level" in r for r in records)
    assert any(r["action"] == "sidecar.ready" for r in records)


def test_stray_output_never_reaches_the_protocol_stream(tmp_path: Path):
    """After claim_stdio, print(), a C-level write to fd 1 and a child process that writes to its
    stdout all land on stderr; only frames written to the claimed fd reach the real stdout."""
    script = textwrap.dedent(
        """
        import os, subprocess, sys
        from sidecar.rpc.stdio import claim_stdio
        streams = claim_stdio()
        print("stray print")
        os.write(1, b"c-level write\\n")
        subprocess.run(["sh", "-c", "echo child stdout; read line || echo child saw eof"])
        os.write(streams.outbound, b'{"frame":1}\\n')
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=b"protocol bytes the child must not read\n",
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert result.stdout == b'{"frame":1}\n'
    for text in (b"stray print", b"c-level write", b"child stdout", b"child saw eof"):
        assert text in result.stderr


async def test_concurrent_clients_calls_are_answered_in_any_order(sidecar: SidecarProcess):
    results = await asyncio.gather(*(sidecar.request("sidecar:info") for _ in range(20)))
    assert {r["pid"] for r in results} == {sidecar.process.pid}


def _pool_workers(parent: int) -> list[int]:
    """The byte pool's spawned workers: children of `parent` running multiprocessing's spawn_main."""
    return _children(parent, b"spawn_main")


def _children(parent: int, marker: bytes) -> list[int]:
    """Children of `parent` whose command line contains `marker`."""
    workers = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == parent and marker in cmdline:
            workers.append(int(entry))
    return workers


async def _exited(pid: int) -> None:
    """Until the process ends: a pidfd becomes readable then (no polling)."""
    try:
        descriptor = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    gone = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(descriptor, gone.set)
    try:
        await gone.wait()
    finally:
        loop.remove_reader(descriptor)
        os.close(descriptor)


async def test_a_killed_sidecar_takes_its_pool_workers_with_it(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    from tests.support.archive import add_location, write

    client = await spawn_sidecar(sidecar_paths.args())
    location = add_location(sidecar_paths.db)
    write(tmp_path / "src" / "a.jpg", 1000)
    await client.request("import:v2:start", location.start_params(tmp_path / "src"))  # the pool is up
    workers = _pool_workers(client.process.pid)
    assert workers, "no pool workers found"

    client.process.kill()  # the sidecar alone, as a crash would: not its process group

    async with asyncio.timeout(10):
        await asyncio.gather(*(_exited(pid) for pid in workers))
        await client.process.wait()  # its pipes close only once no worker holds them


async def test_the_pool_workers_run_a_little_below_the_sidecar(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    """So its event loop answers status calls promptly while the workers keep both cores busy."""
    from tests.support.archive import add_location, write

    client = await spawn_sidecar(sidecar_paths.args())
    location = add_location(sidecar_paths.db)
    write(tmp_path / "src" / "a.jpg", 1000)
    result = await client.request("import:v2:start", location.start_params(tmp_path / "src"))
    assert result["status"] == "completed"
    workers = _pool_workers(client.process.pid)
    assert workers, "no pool workers found"

    base = niceness(client.process.pid)
    assert base == this_thread(), "the sidecar itself keeps the priority it was started with"
    assert {niceness(pid) for pid in workers} == {lowered(base, BYTE_WORKER_NICENESS)}


async def test_a_killed_sidecar_takes_its_exiftool_processes_with_it(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    """`exiftool -stay_open` keeps reading after its input closes: only the parent-death signal
    ends it when the sidecar is killed alone."""
    from tests.support.archive import add_location
    from tests.support.media import make_jpeg

    client = await spawn_sidecar(sidecar_paths.args())
    location = add_location(sidecar_paths.db)
    make_jpeg(tmp_path / "src" / "a.jpg", 64, 48)
    await client.request("import:v2:start", location.start_params(tmp_path / "src"))
    await client.notification("asset:metadata-complete")
    exiftools = _children(client.process.pid, b"-stay_open")
    assert exiftools, "no exiftool process found"

    client.process.kill()

    async with asyncio.timeout(10):
        await asyncio.gather(*(_exited(pid) for pid in exiftools))
        await client.process.wait()
