"""Running an external tool (ffprobe, ffmpeg, a one-shot exiftool) for a job: its own stdio, never
the sidecar's stdout; killed when the job times out or the sidecar stops; a missing tool is a clear,
non-retryable job error naming the option to set."""

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sidecar.errors import PermanentFailure
from sidecar.tools.discovery import Tool, child_env, tied_to_sidecar

# Niceness of background transcodes (0 normal … 19 lowest).
BACKGROUND_NICENESS = 10
# What of a failed tool's stderr goes into the job's error (the end is where tools say why).
STDERR_TAIL_BYTES = 2000


class ToolMissing(PermanentFailure):
    """A tool the job needs was not found; another try cannot help until the sidecar is restarted
    with the option set."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} not found; set --{name}")


class ToolFailed(Exception):
    """The tool ran and exited non-zero; the message carries the end of its stderr."""


def require(tool: Tool | None, name: str) -> Tool:
    if tool is None:
        raise ToolMissing(name)
    return tool


@dataclass(frozen=True, slots=True)
class ToolOutput:
    stdout: bytes
    stderr_tail: str


async def run_tool(
    tool: Tool,
    args: Sequence[str],
    *,
    on_stdout_line: Callable[[bytes], None] | None = None,
    background: bool = False,
) -> ToolOutput:
    """Run `tool args…` to its end and return its output; raise ToolFailed on a non-zero exit.

    With `on_stdout_line`, stdout is handed over line by line as it comes (ffmpeg `-progress`)
    instead of being collected. `background` lowers its CPU priority: a long transcode then takes
    the cores only when the import and the quicker jobs leave them idle. A cancelled caller (job
    timeout, shutdown) kills the process and reaps it before the cancellation goes on, so no tool
    outlives its job.
    """
    process = await asyncio.create_subprocess_exec(
        *tied_to_sidecar([tool.path, *args]),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(),
    )
    assert process.stdout is not None and process.stderr is not None
    if background and sys.platform != "win32":
        with contextlib.suppress(OSError):  # gone already, or not permitted: run at normal priority
            os.setpriority(os.PRIO_PROCESS, process.pid, BACKGROUND_NICENESS)
    try:
        stderr_task = asyncio.create_task(_tail(process.stderr), name=f"{tool.path}-stderr")
        if on_stdout_line is None:
            stdout = await process.stdout.read()
        else:
            stdout = b""
            async for line in process.stdout:
                on_stdout_line(line)
        stderr_tail = (await stderr_task).decode(errors="replace").strip()
        returncode = await process.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await asyncio.shield(process.wait())
        raise
    if returncode != 0:
        name = tool.path.rsplit("/", 1)[-1]
        ended = f"was killed by {killed_by(returncode)}" if returncode < 0 else f"exited with {returncode}"
        raise ToolFailed(f"{name} {ended}: {stderr_tail or 'no message'}")
    return ToolOutput(stdout=stdout, stderr_tail=stderr_tail)


def killed_by(returncode: int) -> str:
    """The signal a negative return code stands for, by name (`SIGSEGV`): "exited with -11" told
    the user nothing."""
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


async def _tail(stream: asyncio.StreamReader) -> bytes:
    """Read a stream to its end keeping only the last STDERR_TAIL_BYTES (a chatty tool must not
    grow our memory)."""
    kept = b""
    while chunk := await stream.read(65536):
        kept = (kept + chunk)[-STDERR_TAIL_BYTES:]
    return kept
