"""Long-lived `exiftool -stay_open` processes, one per concurrent job, shared by the jobs that
read metadata or embedded previews. Starting exiftool costs ~80 ms of Perl; a command on a running
one ~3 ms (reference/ecosystem-notes.md §8.1).

A process that dies, answers garbage or outlives a cancelled command is discarded and the next
command starts a fresh one. Nothing here knows about jobs or the database.
"""

import asyncio
import contextlib
import itertools
from collections.abc import Sequence
from typing import Any

import orjson

from sidecar.tools.discovery import Tool
from sidecar.tools.process import ToolFailed, killed_by, require, start_tool

# Flat tags, numeric values (signed decimal GPS, numeric orientation), names as exiftool spells them.
READ_TAGS_ARGS = ("-json", "-n", "-charset", "filename=utf8")
# exiftool reads its arguments one per line: a path with a newline cannot be passed this way.
_FORBIDDEN_IN_ARGS = ("\n", "\r")


class ExifToolProcess:
    """One `exiftool -stay_open True -@ -` child. Commands are serialised by the pool, not here."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._sequence = itertools.count(1)

    @classmethod
    async def start(cls, tool: Tool) -> "ExifToolProcess":
        process = await start_tool(
            tool, ["-stay_open", "True", "-@", "-"], stdin=asyncio.subprocess.PIPE, limit=2**20
        )
        return cls(process)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process.returncode is None

    async def execute(self, args: Sequence[str]) -> tuple[bytes, str]:
        """Run one command; return its stdout and its stderr text (warnings and errors)."""
        for arg in args:
            if any(bad in arg for bad in _FORBIDDEN_IN_ARGS):
                raise ValueError(f"cannot pass an argument with a line break to exiftool: {arg!r}")
        stdin, stdout, stderr = self._process.stdin, self._process.stdout, self._process.stderr
        assert stdin is not None and stdout is not None and stderr is not None
        number = next(self._sequence)
        ready = f"{{ready{number}}}".encode()
        # -echo4 writes the marker to stderr after the command, so both streams have an end.
        command = [*args, "-echo4", ready.decode(), f"-execute{number}"]
        stdin.write(("\n".join(command) + "\n").encode())
        await stdin.drain()
        try:
            out = await _read_until_marker(stdout, ready)
            err = await _read_until_marker(stderr, ready)
        except ToolFailed:
            raise ToolFailed(f"exiftool exited unexpectedly{await self._how_it_ended()}") from None
        return out, err.decode(errors="replace").strip()

    async def _how_it_ended(self) -> str:
        """` (killed by SIGSEGV)` or ` (exit status 2)` once its output has closed ('' if it lingers)."""
        try:
            async with asyncio.timeout(1.0):
                returncode = await self._process.wait()
        except TimeoutError:
            return ""
        return f" (killed by {killed_by(returncode)})" if returncode < 0 else f" (exit status {returncode})"

    async def close(self) -> None:
        """Ask it to stop; kill it if it does not within a second."""
        if self._process.stdin is not None and not self._process.stdin.is_closing():
            with contextlib.suppress(OSError):
                self._process.stdin.write(b"-stay_open\nFalse\n")
                self._process.stdin.close()
        try:
            async with asyncio.timeout(1.0):
                await self._process.wait()
        except TimeoutError:
            await self.abandon()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()

    async def abandon(self) -> None:
        """Kill and reap it, even when our caller is being cancelled."""
        self.kill()
        await asyncio.shield(self._process.wait())


async def _read_until_marker(stream: asyncio.StreamReader, marker: bytes) -> bytes:
    """Everything before `{readyN}` and its line end. Binary output (`-b`) may contain newlines,
    so the marker is looked for at the end of what has arrived (only the end: a preview of
    megabytes arrives in many chunks), not per line."""
    data = bytearray()
    tail = len(marker) + 2  # the marker and "\r\n" at most
    while True:
        chunk = await stream.read(1 << 16)
        if not chunk:
            raise ToolFailed("exiftool exited unexpectedly")
        data += chunk
        last = bytes(data[-tail:])
        end = last.rstrip(b"\r\n")
        if end.endswith(marker):
            return bytes(data[: len(data) - len(last) + len(end) - len(marker)])


class ExifToolPool:
    """Up to `size` exiftool processes, each running one command at a time."""

    def __init__(self, size: int) -> None:
        self._idle: list[ExifToolProcess] = []
        self._slots = asyncio.Semaphore(size)
        self._closed = False

    async def execute(self, tool: Tool | None, args: Sequence[str]) -> tuple[bytes, str]:
        exiftool = require(tool, "exiftool")
        async with self._slots:
            process = self._idle.pop() if self._idle else await ExifToolProcess.start(exiftool)
            try:
                result = await process.execute(args)
            except BaseException:
                # Cancelled mid-command or broken: its output stream is out of step; never reuse.
                await process.abandon()
                raise
            if process.alive and not self._closed:
                self._idle.append(process)
            else:
                await process.close()
            return result

    async def read_tags(self, tool: Tool | None, path: str) -> dict[str, Any]:
        """The file's tags as one flat object (`-json -n`); raises ToolFailed when exiftool cannot
        read it."""
        out, err = await self.execute(tool, [*READ_TAGS_ARGS, path])
        try:
            parsed = orjson.loads(out)
        except orjson.JSONDecodeError:
            raise ToolFailed(f"exiftool could not read {path}: {err or 'no output'}") from None
        if not isinstance(parsed, list) or not parsed or not isinstance(parsed[0], dict):
            raise ToolFailed(f"exiftool could not read {path}: {err or 'no output'}")
        tags: dict[str, Any] = parsed[0]
        return tags

    async def read_binary(self, tool: Tool | None, path: str, tag: str) -> bytes:
        """The raw bytes of one tag (an embedded preview), empty when the file has none."""
        out, _ = await self.execute(tool, ["-b", f"-{tag}", path])
        return out

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(process.close() for process in idle))
