"""Finding the external tools (exiftool, ffprobe, ffmpeg): the configured path, else PATH.

A tool that is missing or does not answer is reported as None; it never stops the sidecar.
"""

import asyncio
import os
import shutil
import sys
from dataclasses import dataclass

from sidecar import host
from sidecar.config import ToolPaths
from sidecar.log import get_logger

VERSION_TIMEOUT_S = 15.0
_VERSION_ARGS = {"exiftool": ["-ver"], "ffprobe": ["-version"], "ffmpeg": ["-version"]}

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Tool:
    path: str
    version: str


@dataclass(frozen=True, slots=True)
class Toolset:
    exiftool: Tool | None
    ffprobe: Tool | None
    ffmpeg: Tool | None


def child_env() -> dict[str, str]:
    """The environment for external tools: without the frozen bootloader's library path, which
    would make system binaries load our bundled libraries (the host's rule)."""
    return host.current().child_env(frozen=getattr(sys, "frozen", False))


def tied_to_sidecar(argv: list[str]) -> list[str]:
    """The command, made to die with the sidecar even when it is killed outright (SIGKILL, OOM):
    nothing else would stop `exiftool -stay_open`, which keeps reading after its input closes.
    On Linux the parent-death signal; elsewhere the tools stay in the sidecar's process group,
    which the bridge kills after a crash (sidecar/host)."""
    return host.current().tied_to_parent(argv)


def _locate(name: str, configured: str | None) -> str | None:
    """An absolute path to an executable, or None."""
    if configured:
        usable = os.path.isfile(configured) and os.access(configured, os.X_OK)
        return os.path.abspath(configured) if usable else None
    found = shutil.which(name)
    return None if found is None else os.path.abspath(found)


def _parse_version(name: str, output: str) -> str:
    first_line = output.strip().splitlines()[0] if output.strip() else ""
    if name == "exiftool":
        return first_line
    # "ffprobe version 5.1.9-0+deb12u1 Copyright (c) ..."
    words = first_line.split()
    return words[2] if len(words) > 2 and words[1] == "version" else first_line


async def _probe(name: str, configured: str | None) -> Tool | None:
    path = _locate(name, configured)
    if path is None:
        log.warning(
            "tool not found",
            extra={"action": "tools.missing", "tool": name, "configured": configured},
        )
        return None
    try:
        process = await asyncio.create_subprocess_exec(
            path,
            *_VERSION_ARGS[name],
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=child_env(),
        )
    except OSError as exc:
        log.warning(
            "tool failed to start",
            extra={"action": "tools.broken", "tool": name, "error": str(exc)},
        )
        return None
    try:
        async with asyncio.timeout(VERSION_TIMEOUT_S):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        log.warning("tool did not answer", extra={"action": "tools.timeout", "tool": name})
        return None
    version = _parse_version(name, output.decode(errors="replace"))
    if process.returncode != 0 or not version:
        log.warning("tool version check failed", extra={"action": "tools.broken", "tool": name})
        return None
    return Tool(path=path, version=version)


async def discover(paths: ToolPaths) -> Toolset:
    exiftool, ffprobe, ffmpeg = await asyncio.gather(
        _probe("exiftool", paths.exiftool),
        _probe("ffprobe", paths.ffprobe),
        _probe("ffmpeg", paths.ffmpeg),
    )
    return Toolset(exiftool=exiftool, ffprobe=ffprobe, ffmpeg=ffmpeg)
