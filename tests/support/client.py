"""A client for the real sidecar process over real pipes, used by every end-to-end test.

Every frame the sidecar writes is parsed and checked: it must be JSON-RPC, and each result and
notification must match its schema in protocol/. Problems are collected, and the fixture fails the
test at teardown, so no test can see a response without it being checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from sidecar.rpc.contract import Contract

REPO = Path(__file__).resolve().parents[2]
CONTRACT = Contract.load()
# Methods and notifications whose schemas some test exercised (see conftest's contract coverage).
SEEN_RESULTS: set[str] = set()
SEEN_NOTIFICATIONS: set[str] = set()


class RpcError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code: int = error["code"]
        self.message: str = error["message"]
        self.data: Any = error.get("data")


@dataclass(frozen=True)
class SidecarPaths:
    """The database and archive folder of a test's sidecar (the `sidecar_paths` fixture)."""

    db: Path
    archive: Path

    def args(self) -> list[str]:
        return ["serve", "--db", str(self.db), "--archive", str(self.archive)]


def rss_kb(pid: int) -> int:
    """The resident memory of a process, in KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def sidecar_command() -> list[str]:
    """The sidecar under test: this checkout, or SIDECAR_CMD (e.g. the frozen binary)."""
    override = os.environ.get("SIDECAR_CMD")
    return shlex.split(override) if override else [sys.executable, "-m", "sidecar"]


@dataclass
class SidecarProcess:
    process: asyncio.subprocess.Process
    frames: list[dict[str, Any] | list[Any]] = field(default_factory=list)
    notifications: list[tuple[str, Any]] = field(default_factory=list)
    stderr_lines: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    _pending: dict[int | str, tuple[str, asyncio.Future[dict[str, Any]]]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def spawn(
        cls, args: Sequence[str], env: dict[str, str] | None = None, prefix: Sequence[str] = ()
    ) -> SidecarProcess:
        """Start the sidecar; `prefix` runs it through a wrapper that then execs it (e.g. `setpriv`
        dropping privileges), so the process is still the sidecar itself."""
        process = await asyncio.create_subprocess_exec(
            *prefix,
            *sidecar_command(),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **(env or {})},
            limit=64 * 1024 * 1024,
            start_new_session=True,
        )
        client = cls(process)
        client._tasks = [
            asyncio.create_task(client._read_stdout(), name="client-stdout"),
            asyncio.create_task(client._read_stderr(), name="client-stderr"),
        ]
        return client

    # -- sending ---------------------------------------------------------------------------

    async def send_line(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data if data.endswith(b"\n") else data + b"\n")
        await self.process.stdin.drain()

    async def send(self, message: Any) -> None:
        await self.send_line(orjson.dumps(message))

    async def request(self, method: str, params: list[Any] | None = None, timeout: float = 30) -> Any:
        """Call a method; returns its result or raises RpcError."""
        response = await self.request_raw(method, params, timeout=timeout)
        if "error" in response:
            raise RpcError(response["error"])
        return response["result"]

    async def request_raw(
        self, method: str, params: Any = None, timeout: float = 30, request_id: int | str | None = None
    ) -> dict[str, Any]:
        request_id = next(self._ids) if request_id is None else request_id
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
        if params is not None:
            message["params"] = params
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (method, future)
        await self.send(message)
        async with asyncio.timeout(timeout):
            return await future

    # -- receiving -------------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 30) -> Any:
        """Wait until predicate() is truthy (re-checked on every frame received); returns its value."""
        async with asyncio.timeout(timeout), self._changed:
            return await self._changed.wait_for(predicate)

    async def notification(
        self, method: str, where: Callable[[Any], bool] = lambda _: True, timeout: float = 30
    ) -> Any:
        """The first notification `method` whose params satisfy `where`, waiting if needed."""

        def found() -> Any:
            return next((p for m, p in self.notifications if m == method and where(p)), None)

        return await self.wait_for(found, timeout)

    def of(self, method: str) -> list[Any]:
        return [params for m, params in self.notifications if m == method]

    async def another_frame(self, timeout: float = 30) -> None:
        """Wait until the sidecar writes one more frame than it has so far."""
        seen = len(self.frames)
        await self.wait_for(lambda: len(self.frames) > seen, timeout)

    async def next_frame_matching(self, predicate: Callable[[Any], bool], timeout: float = 30) -> Any:
        def found() -> Any:
            return next((f for f in self.frames if predicate(f)), None)

        return await self.wait_for(found, timeout)

    async def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            try:
                frame = orjson.loads(line)
            except orjson.JSONDecodeError:
                self.violations.append(f"stdout line is not JSON: {line[:200]!r}")
                continue
            self.frames.append(frame)
            for message in frame if isinstance(frame, list) else [frame]:
                self._receive(message)
            async with self._changed:
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    def _receive(self, message: Any) -> None:
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            self.violations.append(f"not a JSON-RPC 2.0 message: {message!r:.200}")
            return
        if "method" in message:
            method, params = message["method"], message.get("params")
            issues = CONTRACT.notification_issues(method, params)
            if issues:
                self.violations.append(f"notification {method} breaks its schema: {issues}")
            SEEN_NOTIFICATIONS.add(method)
            self.notifications.append((method, params))
            return
        request_id = message.get("id")
        pending = None if request_id is None else self._pending.pop(request_id, None)
        if pending is None:
            return  # a reply to a raw line the test sent itself; it reads self.frames
        method, future = pending
        if "result" in message:
            issues = CONTRACT.result_issues(method, message["result"])
            if issues:
                self.violations.append(f"result of {method} breaks its schema: {issues}")
            SEEN_RESULTS.add(method)
        if not future.done():
            future.set_result(message)

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.stderr_lines.append(line.decode(errors="replace").rstrip("\n"))
            async with self._changed:
                self._changed.notify_all()

    async def logged(self, action: str, timeout: float = 30) -> dict[str, Any]:
        """The first JSON log record on stderr with this `action`, waiting if needed."""

        def found() -> dict[str, Any] | None:
            return next((r for r in self.stderr_json() if r.get("action") == action), None)

        record: dict[str, Any] = await self.wait_for(found, timeout)
        return record

    def stderr_json(self) -> list[dict[str, Any]]:
        """stderr lines that are the sidecar's JSON log records."""
        records = []
        for line in self.stderr_lines:
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    # -- ending ----------------------------------------------------------------------------

    async def close_stdin(self) -> None:
        assert self.process.stdin is not None
        if not self.process.stdin.is_closing():
            self.process.stdin.close()

    async def wait_exit(self, timeout: float = 10) -> int:
        async with asyncio.timeout(timeout):
            code = await self.process.wait()
            await asyncio.gather(*self._tasks)
        return code

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def let_failpoint_go(self) -> None:
        """Let an import held at its AUS_FAILPOINTS point go on (sidecar/pipeline/failpoints.py)."""
        self.signal(signal.SIGUSR1)

    async def kill(self) -> None:
        """SIGKILL the sidecar and whatever it started (its own session)."""
        if self.process.returncode is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# The `spawn_sidecar` fixture: start a sidecar with these arguments, once it is ready.
Spawn = Callable[..., Awaitable[SidecarProcess]]

SETTLE_BOUND_S = 120.0
UNFINISHED = ("pending", "processing")


async def jobs_settled(client: SidecarProcess, timeout: float = SETTLE_BOUND_S) -> dict[str, Any]:
    """`jobs:status` once no job is pending or processing; re-asked whenever the sidecar says
    something (an asset event, a dead letter), and at least every quarter second otherwise."""
    async with asyncio.timeout(timeout):
        while True:
            status: dict[str, Any] = await client.request("jobs:status")
            if not any(counts[s] for counts in status.values() for s in UNFINISHED):
                return status
            with contextlib.suppress(TimeoutError):
                await client.another_frame(timeout=0.25)
