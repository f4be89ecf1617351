"""One JSON-RPC connection over the claimed stdio: every request its own task, one writer.

It knows nothing about methods (the dispatcher does) or about the process lifecycle (the app
does): it reports EOF by returning from `serve`, and finishes in-flight requests on `close`.
"""

import asyncio
from collections.abc import Hashable
from itertools import count
from typing import Any

from sidecar.log import get_logger
from sidecar.rpc.dispatcher import PARSE_ERROR, Dispatcher, error_frame
from sidecar.rpc.framing import MAX_MESSAGE_BYTES, Oversized, encode
from sidecar.rpc.stdio import LineReader, Outbox, ProtocolStreams, Writer

log = get_logger(__name__)


class JsonRpcServer:
    """Also the domain's event sink: `emit` sends a notification."""

    def __init__(self, streams: ProtocolStreams) -> None:
        self._outbox = Outbox()
        self._writer = Writer(streams.outbound, self._outbox)
        self._reader = LineReader(streams.inbound)
        self._requests: set[asyncio.Task[None]] = set()
        self._request_ids = count(1)
        self._writer_task: asyncio.Task[None] | None = None

    def emit(self, event: str, payload: Any, latest_key: Hashable | None = None) -> None:
        """Queue a notification. With `latest_key`, an unsent one with the same key is replaced."""
        self._outbox.put(encode({"jsonrpc": "2.0", "method": event, "params": payload}), latest_key)

    @property
    def peer_gone(self) -> asyncio.Event:
        """Set when writing failed because the app closed our stdout."""
        return self._writer.broken

    async def serve(self, dispatcher: Dispatcher) -> None:
        """Read and dispatch requests until stdin reaches EOF."""
        self._writer_task = asyncio.create_task(self._writer.run(), name="rpc-writer")
        self._reader.start()
        while (line := await self._reader.next()) is not None:
            await self._outbox.wait_for_room()
            if isinstance(line, Oversized):
                self._outbox.put(
                    error_frame(PARSE_ERROR, "Parse error", f"message exceeds {MAX_MESSAGE_BYTES} bytes")
                    + b"\n"
                )
                continue
            task = asyncio.create_task(
                self._answer(dispatcher, line), name=f"rpc-request-{next(self._request_ids)}"
            )
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)
        log.info("stdin closed", extra={"action": "rpc.eof"})

    async def _answer(self, dispatcher: Dispatcher, line: bytes) -> None:
        frame = await dispatcher.dispatch(line)
        if frame is not None:
            self._outbox.put(frame + b"\n")

    async def close(self, grace_s: float, flush_s: float = 2.0) -> None:
        """Let in-flight requests finish for up to `grace_s`, cancel the rest, flush the output
        (for up to `flush_s`: a reader that stopped reading must not hold up the exit)."""
        if self._requests:
            _, pending = await asyncio.wait(set(self._requests), timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                log.warning(
                    "requests cancelled at shutdown",
                    extra={"action": "rpc.cancel_pending", "count": len(pending)},
                )
                await asyncio.wait(pending)
        self._outbox.close()
        if self._writer_task is not None:
            done, _ = await asyncio.wait({self._writer_task}, timeout=flush_s)
            if not done:
                log.warning("output not flushed: the app stopped reading", extra={"action": "rpc.unflushed"})
