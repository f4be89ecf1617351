"""Video job benchmark: short camera-like videos through the real `ffprobe` and `video-proxy`
handlers, run by the real JobScheduler at the queues' default concurrency (ffprobe 2, video-proxy
1), with the real tools, over a real database and archive folder.

    .venv/bin/python -m bench.video_bench [--count 10] [--seconds 10] [--size 1920x1080] [--rotated 0]
        [--probe-rounds 5] [--workdir DIR] [--keep]

The sources (H.264 at ~16 Mbit/s like a phone's 1080p30, with moving film grain so they cost what
real footage costs to decode, plus AAC audio; `--rotated N` of them tagged portrait) are generated
first, untimed, into `<workdir>/sources` and reused by a later run given the same --workdir.
Reported: ffprobe files/s, proxy encode speed as a multiple of real time (video seconds / wall
seconds), CPU seconds of the tools, and the event loop's lag while the jobs run (a 5 ms ticker's
overshoot; the loop must stay free for `import:v2:status`).
"""

import argparse
import asyncio
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.common import say, ticker
from sidecar.api.jobs import JobNotifier
from sidecar.config import ToolPaths
from sidecar.db.connection import Database
from sidecar.jobs.handlers import JobContext, JobHandler
from sidecar.jobs.handlers.ffprobe import ffprobe
from sidecar.jobs.handlers.video_proxy import video_proxy
from sidecar.jobs.scheduler import CONCURRENCY, JobScheduler
from sidecar.jobs.store import JobStore, NewJob, Queue, insert_jobs
from sidecar.timestamps import now_iso
from sidecar.tools.discovery import Toolset, discover
from tests.support.archive import add_location, add_media_row

BITRATE = "16M"


def generate(
    folder: Path,
    ffmpeg: str,
    count: int,
    seconds: float,
    size: str,
    rotated: int,
    bitrate: str = BITRATE,
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    rate = int(bitrate.removesuffix("M"))  # Mbit/s
    for index in range(count):
        portrait = index < rotated
        tags = f"{'' if bitrate == BITRATE else f'_{bitrate}'}{'_portrait' if portrait else ''}"
        path = folder / f"CLIP_{index:04d}_{size}_{seconds:g}s{tags}.mov"
        if not path.exists():
            tmp = path.with_name(f".{path.stem}.tmp.mov")
            source = [
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=size={size}:rate=30:duration={seconds}",
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency={300 + 10 * index}:duration={seconds}",
            ]
            encode = ["-vf", "noise=alls=6:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-g", "60"]
            encode += ["-b:v", bitrate, "-maxrate", f"{rate * 5 // 4}M", "-bufsize", f"{rate * 2}M"]
            encode += ["-pix_fmt", "yuv420p"]
            encode += ["-c:a", "aac", "-shortest"]
            _run(ffmpeg, "-nostdin", "-v", "error", "-y", *source, *encode, str(tmp))
            if portrait:
                # What a phone writes for portrait footage: landscape frames and a 90° display matrix
                # (ffmpeg 5 writes the matrix only when it copies the stream).
                plain, tmp = tmp, tmp.with_name(f".{path.stem}.portrait.tmp.mov")
                remux = ["-i", str(plain), "-map", "0", "-c", "copy", "-metadata:s:v:0", "rotate=90"]
                _run(ffmpeg, "-nostdin", "-v", "error", "-y", *remux, str(tmp))
                plain.unlink()
            tmp.replace(path)
        made.append(path)
    return made


def _run(*args: str) -> None:
    subprocess.run(args, check=True, stdin=subprocess.DEVNULL)


class Events(JobNotifier):
    """The jobs' events through the real notifier (the handlers call its methods), counted."""

    def __init__(self) -> None:
        super().__init__(self)
        self.counts: dict[str, int] = {}

    def emit(self, event: str, payload: dict[str, Any], latest_key: Any = None) -> None:
        self.counts[event] = self.counts.get(event, 0) + 1


async def run_queue(
    db: Database,
    toolset: Toolset,
    queue: Queue,
    handler: JobHandler,
    payloads: Iterable[dict[str, Any]],
    events: Events,
    archive_root: str | None = None,
) -> dict[str, Any]:
    """All jobs of one queue from their insert to the last one's end, at the queue's concurrency
    (`archive_root`: what the thumbnail and bagit handlers write under)."""
    jobs = [NewJob(queue, payload) for payload in payloads]
    done = 0
    all_done = asyncio.Event()
    handler_s: list[float] = []
    results: list[dict[str, Any] | None] = []

    async def counted(job: JobContext) -> dict[str, Any] | None:
        nonlocal done
        started = time.perf_counter()
        try:
            result = await handler(job)
        finally:
            done += 1
            if done == len(jobs):
                all_done.set()
        handler_s.append(time.perf_counter() - started)
        results.append(result)
        return result

    async def tools() -> Toolset:
        return toolset

    async def root() -> str | None:
        return archive_root

    scheduler = JobScheduler(JobStore(db), {queue: counted}, tools=tools, archive_root=root, events=events)
    lags: list[float] = []
    stop_ticker = asyncio.Event()
    tick_task = asyncio.create_task(ticker(lags, stop_ticker), name="bench-ticker")
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    async with db.transaction() as conn:
        await insert_jobs(conn, jobs, now_iso())
    serve = asyncio.create_task(scheduler.run(), name="bench-jobs")
    async with asyncio.timeout(3600):
        await all_done.wait()
    elapsed = time.perf_counter() - started
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    stop_ticker.set()
    await tick_task
    await scheduler.stop(5)
    await serve
    lags_ms = sorted(lag * 1000 for lag in lags)
    return {
        "jobs": len(jobs),
        "completed": len(results),
        "seconds": elapsed,
        "handler_ms_p50": statistics.median(handler_s) * 1000 if handler_s else 0.0,
        "tool_cpu_s": (children_after.ru_utime - children_before.ru_utime)
        + (children_after.ru_stime - children_before.ru_stime),
        "loop_lag_ms_p99": lags_ms[int(len(lags_ms) * 0.99)] if lags_ms else 0.0,
        "loop_lag_ms_max": lags_ms[-1] if lags_ms else 0.0,
        "results": results,
    }


async def run(work: Path, sources: list[Path], toolset: Toolset, probe_rounds: int) -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    archive = run_dir / "archive" / "org-vid"
    archive.mkdir(parents=True)
    db_path = run_dir / "au.db"
    db = await Database.open(db_path)
    location = add_location(db_path)
    payloads = []
    for source in sources:
        archived = archive / source.name
        shutil.copyfile(source, archived)
        digest = add_media_row(db_path, "video", archived, location.locid)
        payloads.append(
            {"hash": digest, "mediaType": "video", "archivePath": str(archived), "sessionId": "b"}
        )
    events = Events()

    probe_rates = []
    for _ in range(probe_rounds):
        probed = await run_queue(db, toolset, Queue.FFPROBE, ffprobe, payloads, events)
        assert probed["completed"] == len(payloads), probed
        probe_rates.append(probed["jobs"] / probed["seconds"])
    durations = [r[0] for r in await db.fetch_all("SELECT meta_duration FROM vids ORDER BY vidhash")]
    video_s = sum(durations)
    say(
        f"ffprobe: {statistics.median(probe_rates):.1f} files/s median of {probe_rounds} rounds "
        f"(min {min(probe_rates):.1f}, max {max(probe_rates):.1f}) "
        f"at concurrency {CONCURRENCY[Queue.FFPROBE]}; "
        f"last round handler p50 {probed['handler_ms_p50']:.0f} ms, "
        f"loop lag p99 {probed['loop_lag_ms_p99']:.1f} ms"
    )

    proxied = await run_queue(db, toolset, Queue.VIDEO_PROXY, video_proxy, payloads, events)
    assert proxied["completed"] == len(payloads), proxied
    speed = video_s / proxied["seconds"]
    per_file = [r for r in proxied["results"] if r is not None]
    sizes = sorted({(r["width"], r["height"]) for r in per_file})
    proxy_mib = sum(r["fileSizeBytes"] for r in per_file) / 2**20
    source_mib = sum(p.stat().st_size for p in sources) / 2**20
    say(
        f"video-proxy: {video_s:.1f} s of video in {proxied['seconds']:.1f} s wall = "
        f"{speed:.2f}x real time at concurrency {CONCURRENCY[Queue.VIDEO_PROXY]}; "
        f"ffmpeg+ffprobe CPU {proxied['tool_cpu_s']:.1f} s "
        f"({proxied['tool_cpu_s'] / video_s:.2f} CPU s per video s); "
        f"handler p50 {proxied['handler_ms_p50'] / 1000:.2f} s"
    )
    say(
        f"  proxies {sizes}, {proxy_mib:.1f} MiB for {source_mib:.0f} MiB of sources; "
        f"loop lag p99 {proxied['loop_lag_ms_p99']:.1f} ms, max {proxied['loop_lag_ms_max']:.1f} ms; "
        f"events {events.counts}"
    )
    rows = await db.fetch_one("SELECT count(*) FROM video_proxies")
    say(f"  checks: {rows[0] if rows else 0} video_proxies rows for {len(sources)} videos")
    await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--rotated", type=int, default=0, help="how many of them are portrait phone footage")
    parser.add_argument("--probe-rounds", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated videos and outputs")
    options = parser.parse_args()

    toolset = asyncio.run(discover(ToolPaths(exiftool=None, ffprobe=None, ffmpeg=None)))
    assert toolset.ffmpeg and toolset.ffprobe, "ffmpeg and ffprobe are needed (scripts/setup installs them)"
    work = options.workdir or Path(tempfile.mkdtemp(prefix="au-video-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        sources = generate(
            work / "sources",
            toolset.ffmpeg.path,
            options.count,
            options.seconds,
            options.size,
            options.rotated,
        )
        megabytes = sum(path.stat().st_size for path in sources) / 2**20
        say(
            f"{len(sources)} videos {options.size} {options.seconds:g} s ({options.rotated} portrait), "
            f"{megabytes:.0f} MiB, ready in {time.perf_counter() - started:.0f} s; "
            f"ffmpeg {toolset.ffmpeg.version}"
        )
        asyncio.run(run(work, sources, toolset, options.probe_rounds))
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
