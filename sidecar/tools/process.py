"""Running an external tool (ffprobe, ffmpeg, a one-shot exiftool) for a job: its own stdio, never
the sidecar's stdout; at background CPU priority; killed when the job times out or the sidecar
stops; a missing tool is a clear, non-retryable job error naming the option to set."""

import asyncio
import contextlib
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sidecar import host
from sidecar.errors import PermanentFailure
from sidecar.tools.discovery import Tool, child_env, tied_to_sidecar

# asyncio's own limit for a line read from a tool's stream.
STREAM_LIMIT = 2**16
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


async def start_tool(
    tool: Tool, args: Sequence[str], *, stdin: int = asyncio.subprocess.DEVNULL, limit: int = STREAM_LIMIT
) -> asyncio.subprocess.Process:
    """Start `tool args…` as every job's tool starts: stdout and stderr piped to us, its own
    environment, made to die with the sidecar, and at background CPU priority, so an import
    running at the same time keeps the cores (sidecar/host: `at_background_priority`)."""
    return await asyncio.create_subprocess_exec(
        *tied_to_sidecar(host.current().at_background_priority([tool.path, *args])),
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(),
        limit=limit,
    )


async def run_tool(
    tool: Tool,
    args: Sequence[str],
    *,
    on_stdout_line: Callable[[bytes], None] | None = None,
) -> ToolOutput:
    """Run `tool args…` (started by `start_tool`) to its end and return its output; raise
    ToolFailed on a non-zero exit.

    With `on_stdout_line`, stdout is handed over line by line as it comes (ffmpeg `-progress`)
    instead of being collected. A cancelled caller (job timeout, shutdown) kills the process and
    reaps it before the cancellation goes on, so no tool outlives its job.
    """
    process = await start_tool(tool, args)
    assert process.stdout is not None and process.stderr is not None
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
