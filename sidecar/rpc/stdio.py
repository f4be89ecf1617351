"""The only code that touches fd 0 and fd 1.

At start it keeps private duplicates of stdin and stdout for the protocol, then points fd 1 at
stderr and fd 0 at devnull, so a stray print, a C library or a child process can neither corrupt
the outgoing stream nor steal incoming bytes. stdin is read on a thread (asyncio cannot read pipes
on Windows); one writer owns the private stdout.
"""

import asyncio
import contextlib
import os
import queue
import sys
import threading
from collections.abc import Hashable
from dataclasses import dataclass
from itertools import count

from sidecar.rpc.framing import Oversized, split_lines

# Lines read ahead of the dispatcher; past this the reader thread waits (back-pressure on the app).
_READ_AHEAD = 64
_READ_CHUNK = 1 << 16
# Bytes of non-coalesced output waiting for the app; past this new requests wait to be read.
OUTBOX_HIGH_WATER = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ProtocolStreams:
    """Raw file descriptors. Plain os.read/os.write, not file objects: a daemon thread blocked in
    a buffered read would hold the buffer's lock and abort interpreter shutdown."""

    inbound: int
    outbound: int


def claim_stdio() -> ProtocolStreams:
    """Take fd 0 and fd 1 for the protocol and leave harmless stand-ins in their place."""
    inbound = os.dup(0)  # os.dup makes non-inheritable copies: children never see them
    outbound = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    sys.stdin = open(os.devnull)  # noqa: SIM115 - lives for the whole process
    if sys.platform == "win32":
        _rebind_windows_std_handles()
    return ProtocolStreams(inbound, outbound)


def _rebind_windows_std_handles() -> None:
    """On Windows children inherit the Win32 std handles, which dup2 does not update."""
    import ctypes
    import msvcrt

    if sys.platform == "win32":  # also tells mypy where ctypes.windll and msvcrt exist
        kernel32 = ctypes.windll.kernel32
        kernel32.SetStdHandle(-10, msvcrt.get_osfhandle(0))
        kernel32.SetStdHandle(-11, msvcrt.get_osfhandle(1))


class LineReader:
    """Reads frames on a daemon thread and hands them to the event loop; None marks EOF."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lines: asyncio.Queue[bytes | Oversized | None] = asyncio.Queue(_READ_AHEAD)
        self._loop = asyncio.get_running_loop()

    def start(self) -> None:
        threading.Thread(target=self._run, name="stdin-reader", daemon=True).start()

    async def next(self) -> bytes | Oversized | None:
        return await self._lines.get()

    def _run(self) -> None:
        try:
            chunks = iter(lambda: os.read(self._fd, _READ_CHUNK), b"")
            for line in split_lines(chunks):
                self._put(line)
        except OSError:
            pass  # a broken or closed pipe is the same as EOF: the app is gone
        self._put(None)

    def _put(self, item: bytes | Oversized | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed; nobody is listening any more
            asyncio.run_coroutine_threadsafe(self._lines.put(item), self._loop).result()


class Outbox:
    """Frames waiting to be written, in order. A keyed frame replaces its unsent predecessor in
    place (latest wins), so a slow reader never makes progress notifications pile up."""

    def __init__(self) -> None:
        self._frames: dict[Hashable, bytes] = {}
        self._ids = count()
        self._queued_bytes = 0
        self._closed = False
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def put(self, frame: bytes, latest_key: Hashable | None = None) -> None:
        if latest_key is None:
            self._frames[next(self._ids)] = frame
            self._queued_bytes += len(frame)
            if self._queued_bytes > OUTBOX_HIGH_WATER:
                self._room.clear()
        else:
            self._frames[("latest", latest_key)] = frame
        self._ready.set()

    async def wait_for_room(self) -> None:
        await self._room.wait()

    def close(self) -> None:
        """No more frames will come: the writer flushes what is queued and stops."""
        self._closed = True
        self._ready.set()

    async def take_all(self) -> bytes:
        """Everything queued, waiting for something first; b"" once closed and empty."""
        await self._ready.wait()
        data = b"".join(self._frames.values())
        self._frames.clear()
        self._queued_bytes = 0
        self._ready.clear()
        self._room.set()
        if self._closed:
            self._ready.set()  # so the next call returns at once
        return data


class Writer:
    """The single owner of the protocol stream. Blocking writes happen on one daemon thread of its
    own, so a slow reader stalls only this writer, never the event loop; a daemon, because an
    executor's threads are joined at exit and a write blocked on an app that stopped reading would
    then hold the process forever.

    It is never cancelled: frames already taken from the outbox would be lost. It returns when the
    outbox is closed and flushed, or when the pipe breaks."""

    def __init__(self, fd: int, outbox: Outbox) -> None:
        self._fd = fd
        self._outbox = outbox
        self._batches: queue.SimpleQueue[tuple[bytes, asyncio.Future[None]]] = queue.SimpleQueue()
        self.broken = asyncio.Event()
        self._thread: threading.Thread | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._write_batches, args=(loop,), name="stdout-writer", daemon=True
        )
        self._thread.start()
        try:
            while data := await self._outbox.take_all():
                written: asyncio.Future[None] = loop.create_future()
                self._batches.put((data, written))
                await written
        except OSError:
            self.broken.set()  # the app closed its end: it is gone
        finally:
            self._batches.put((b"", loop.create_future()))  # lets the thread end

    def _write_batches(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            data, written = self._batches.get()
            if not data:
                return
            error: OSError | None = None
            try:
                self._write_all(data)
            except OSError as exc:
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop may have closed meanwhile
                loop.call_soon_threadsafe(_settle, written, error)
            if error is not None:
                return

    def _write_all(self, data: bytes) -> None:
        # An unbuffered pipe write may be partial; a frame must never be cut.
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]


def _settle(future: "asyncio.Future[None]", error: OSError | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
