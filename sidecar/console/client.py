"""A JSON-RPC 2.0 client over a spawned sidecar's stdio: requests matched by id, notifications
handed to a callback as they arrive, and a staged close (shutdown → stdin EOF → SIGTERM → SIGKILL)
that never leaves the child behind."""

import asyncio
import contextlib
import itertools
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any

import orjson

# A line may carry up to 16 MiB (SPEC §3.1); leave room for the newline.
LINE_LIMIT = 16 * 2**20 + 1
READY_TIMEOUT_S = 60.0
EXIT_TIMEOUT_S = 10.0

Notify = Callable[[str, Any], None]


class RemoteError(Exception):
    """An error answer of the sidecar: its code, message and data, as the wire carried them."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(str(error.get("message", "error")))
        self.code: int = int(error.get("code", 0))
        self.data: Any = error.get("data")


class SidecarGone(Exception):
    """The sidecar exited or closed its stdout; no answer will come."""


def own_command() -> list[str]:
    """How to start a sidecar of this very installation: the frozen binary is `au-sidecar` itself;
    in development, this interpreter with `-m sidecar`."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "sidecar"]


class SidecarClient:
    def __init__(self, process: asyncio.subprocess.Process, on_notification: Notify | None) -> None:
        self.process = process
        self.ready: dict[str, Any] | None = None
        self._on_notification = on_notification
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ready = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name="sidecar-client-read")

    @classmethod
    async def spawn(
        cls,
        command: Sequence[str],
        *,
        on_notification: Notify | None = None,
        stderr: int | IO[Any] | None = None,
    ) -> "SidecarClient":
        """Start `command` and wait for its `sidecar:ready` (SidecarGone if it exits first)."""
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            limit=LINE_LIMIT,
            # A Ctrl-C in the terminal is for us to handle (cancel, stop waiting), not for the sidecar.
            start_new_session=True,
        )
        client = cls(process, on_notification)
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                ready = asyncio.create_task(client._ready.wait())
                await asyncio.wait([ready, client._reader], return_when=asyncio.FIRST_COMPLETED)
                ready.cancel()
                if not client._ready.is_set():
                    code = await process.wait()
                    raise SidecarGone(f"the sidecar exited before it was ready (exit code {code})")
        except BaseException:
            await client.close()
            raise
        return client

    async def request(self, method: str, params: Sequence[Any] = ()) -> Any:
        """Call a method; its result, or RemoteError with the sidecar's message."""
        if self._reader.done():
            raise SidecarGone("the sidecar is not running")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}
        try:
            await self._send(message)
            return await future
        finally:
            self._pending.pop(request_id, None)

    async def close(self, timeout_s: float = EXIT_TIMEOUT_S) -> int:
        """Ask it to stop, close its stdin, then signal it if it does not exit; its exit code."""
        if self.process.returncode is None and self._ready.is_set() and not self._reader.done():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(timeout_s / 2):
                    await self.request("sidecar:shutdown")
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        for stop in (None, self.process.terminate, self.process.kill):
            if stop is not None:
                with contextlib.suppress(ProcessLookupError):
                    stop()
            try:
                async with asyncio.timeout(timeout_s / 2):
                    await self.process.wait()
                break
            except TimeoutError:
                continue
        await self.process.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        return self.process.returncode or 0

    async def _send(self, message: dict[str, Any]) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(orjson.dumps(message) + b"\n")
            await stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise SidecarGone("the sidecar closed its input") from exc

    async def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            while line := await stdout.readline():
                with contextlib.suppress(orjson.JSONDecodeError):
                    self._dispatch(orjson.loads(line))
        finally:
            gone = SidecarGone("the sidecar exited")
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(gone)

    def _dispatch(self, message: Any) -> None:
        for item in message if isinstance(message, list) else [message]:
            if not isinstance(item, dict):
                continue
            if "method" in item and "id" not in item:
                if item["method"] == "sidecar:ready":
                    self.ready = item.get("params")
                    self._ready.set()
                if self._on_notification is not None:
                    self._on_notification(item["method"], item.get("params"))
                continue
            future = self._pending.get(item.get("id"))  # type: ignore[arg-type]
            if future is None or future.done():
                continue
            if "error" in item:
                future.set_exception(RemoteError(item["error"]))
            else:
                future.set_result(item.get("result"))
