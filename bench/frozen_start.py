"""Start time of the frozen binary: spawn to `sidecar:ready`, against `python -m sidecar` in the same
run, and the bundle's size on disk.

    .venv/bin/python -m bench.frozen_start [--runs 10] [--build] [--cold]

Runs alternate frozen / unfrozen so drift on the shared machine hits both alike, each against an
existing database (as the app starts it; a first, untimed run per variant creates it). `--build`
rebuilds dist/au-sidecar first (scripts/build-frozen; otherwise only when missing). `--cold` drops
the page cache before every run (needs root): the first start after boot. Also reported: stdin EOF
to exit.
"""

import argparse
import asyncio
import os
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bench.common import say

REPO = Path(__file__).resolve().parents[1]
DIST = REPO / "dist" / "au-sidecar"
BINARY = DIST / "au-sidecar"
READY_TIMEOUT_S = 30.0


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


async def start_once(command: list[str], workdir: Path) -> tuple[float, float]:
    """Seconds from spawn to `sidecar:ready`, and from stdin EOF to exit."""
    args = ["serve", "--db", str(workdir / "au-archive.db"), "--archive", str(workdir / "archive")]
    began = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *command,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdin is not None and process.stdout is not None
    async with asyncio.timeout(READY_TIMEOUT_S):
        while line := await process.stdout.readline():
            if orjson.loads(line).get("method") == "sidecar:ready":
                break
        else:
            raise RuntimeError(f"{command} exited with {await process.wait()} before it was ready")
    ready = time.perf_counter() - began
    process.stdin.close()
    closed = time.perf_counter()
    async with asyncio.timeout(READY_TIMEOUT_S):
        await process.stdout.read()
        code = await process.wait()
    if code != 0:
        raise RuntimeError(f"{command} exited with {code} after stdin EOF")
    return ready, time.perf_counter() - closed


def disk_usage(root: Path) -> tuple[int, int, int]:
    """Bytes allocated (what `du` counts), apparent bytes, and regular files (symlinks not followed)."""
    allocated = apparent = files = 0
    for folder, _, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(folder, name))
            if not stat.S_ISREG(st.st_mode):
                continue
            allocated += st.st_blocks * 512
            apparent += st.st_size
            files += 1
    return allocated, apparent, files


def describe(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return (
        f"median {statistics.median(ordered):.3f} s  p90 {p90:.3f} s  "
        f"min {ordered[0]:.3f} s  max {ordered[-1]:.3f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--build", action="store_true", help="rebuild dist/au-sidecar first")
    parser.add_argument("--cold", action="store_true", help="drop the page cache before every run (root)")
    args = parser.parse_args()

    if args.build or not BINARY.exists():
        subprocess.run([REPO / "scripts" / "build-frozen"], check=True)
    asyncio.run(measure(args.runs, args.cold))


async def measure(runs: int, cold: bool) -> None:
    variants = {"frozen": [str(BINARY)], "python -m sidecar": [sys.executable, "-m", "sidecar"]}
    ready: dict[str, list[float]] = {name: [] for name in variants}
    exits: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="au-frozen-start-") as tmp:
        workdirs = {name: Path(tmp, str(index)) for index, name in enumerate(variants)}
        for name, command in variants.items():
            (workdirs[name] / "archive").mkdir(parents=True)
            await start_once(command, workdirs[name])  # creates the database; untimed
        for _ in range(runs):
            for name, command in variants.items():
                if cold:
                    drop_caches()
                seconds, exit_seconds = await start_once(command, workdirs[name])
                ready[name].append(seconds)
                exits[name].append(exit_seconds)

    cache = "cold page cache" if cold else "warm page cache"
    say(f"spawn → sidecar:ready, {runs} runs each, {cache}, existing database:")
    for name in variants:
        say(f"  {name:<18} {describe(ready[name])}")
    say("stdin EOF → exit:")
    for name in variants:
        say(f"  {name:<18} {describe(exits[name])}")
    allocated, apparent, files = disk_usage(DIST)
    say(
        f"size of {DIST.relative_to(REPO)}: {allocated / 2**20:.1f} MiB on disk "
        f"({apparent / 2**20:.1f} MiB apparent, {files} files)"
    )


if __name__ == "__main__":
    main()
