"""Background-jobs benchmark on a mixed camera card (issue 14): files/s per queue when each queue
runs alone and when all run together, through the real handlers, scheduler and sidecar process.

    .venv/bin/python -m bench.jobs_bench [--jpegs 40] [--heics 10] [--raws 20] [--videos 3]
        [--video-seconds 5] [--video-size 3840x2160] [--video-bitrate 50M] [--workdir DIR] [--keep]

The card, one folder per kind so that no two files pair: 24 MP JPEGs, 12 MP HEICs and 24 MP RAW
stand-ins whose largest preview is a full-size JPEG (`bench.thumbnail_bench`'s sources), and 4K
H.264 MOVs with AAC audio (`bench.video_bench`'s). They are generated first, untimed, into
`<workdir>/sources` and reused by a later run given the same --workdir.

- All together: the card is imported through the real sidecar process and every job the import
  queued runs at the default concurrency while `import:v2:status` is called back to back, as a
  busy renderer would. Per queue, files/s over the span from its first job's start to its last
  job's end, from the `jobs` rows' own timestamps (the queues share the 2 cores); the whole card's
  files/s from the import's result until no job is left; status round trip p50/p99/max (target
  p99 ≤ 50 ms).
- Alone: then, in this process, over that same database and archive, one queue at a time reruns
  the jobs the import queued for it with the sidecar's own handler (`sidecar.app.job_handlers`),
  through the real JobScheduler at the queue's concurrency. What a handler would reuse instead of
  redoing is removed first (the `video_proxies` rows, the bags). Every queue's prerequisites are
  met, as when the together run reached it. A location job (live-photo, bagit, …) counts the
  location's files.
"""

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections import defaultdict
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from bench import thumbnail_bench, video_bench
from bench.common import percentile, say
from bench.import_bench import close_sidecar, open_sidecar
from sidecar.app import job_handlers
from sidecar.config import ToolPaths
from sidecar.db.connection import Database
from sidecar.jobs.scheduler import CONCURRENCY
from sidecar.jobs.store import Queue
from sidecar.tools.discovery import discover
from sidecar.tools.exiftool import ExifToolPool
from tests.support.archive import add_location

# files/s alone (issue 4); the thumbnail target (≥ 8/s) is for JPEGs only: bench.thumbnail_bench.
TARGETS = {"exiftool": 100.0}
STATUS_P99_TARGET_S = 0.050
UNFINISHED = ("pending", "processing")
# The queues whose one job covers a whole location rather than a file.
LOCATION_QUEUES = {Queue.LIVE_PHOTO, Queue.BAGIT, Queue.LOCATION_STATS, Queue.GPS_ENRICHMENT}
KINDS = {".jpg": "jpeg", ".heic": "heic", ".dng": "raw", ".mov": "video"}


def sources(folder: Path, options: argparse.Namespace) -> Path:
    """The card: DCIM/100JPEG, 101HEIC, 102RAW and 103VIDEO."""
    dcim = folder / "DCIM"
    thumbnail_bench.generate(dcim / "100JPEG", "jpeg", options.jpegs)
    thumbnail_bench.generate(dcim / "101HEIC", "heic", options.heics)
    thumbnail_bench.generate(dcim / "102RAW", "raw", options.raws)
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "scripts/setup installs ffmpeg"
    video_bench.generate(
        dcim / "103VIDEO",
        ffmpeg,
        options.videos,
        options.video_seconds,
        options.video_size,
        rotated=0,
        bitrate=options.video_bitrate,
    )
    return folder


async def together(card: Path, work: Path) -> dict[str, Any]:
    client, db, archive = await open_sidecar(work, "default")
    try:
        location = add_location(db)
        busy = thumbnail_bench.machine_busy_s()
        began = time.perf_counter()
        result = await client.request("import:v2:start", location.start_params(card), timeout=3600)
        imported = time.perf_counter()
        assert result["status"] == "completed", result
        latencies: list[float] = []
        settled = False
        while not settled:
            for _ in range(20):
                asked = time.perf_counter()
                await client.request("import:v2:status", [])
                latencies.append(time.perf_counter() - asked)
            client.frames.clear()
            status = await client.request("jobs:status")
            settled = not any(c[s] for c in status.values() for s in UNFINISHED)
        ended = time.perf_counter()
        busy = thumbnail_bench.machine_busy_s() - busy
    finally:
        await close_sidecar(client)
    return {
        "db": db,
        "archive": archive,
        "import_s": imported - began,
        "jobs_s": ended - imported,
        "machine_cores": busy / (ended - began),
        "latencies": latencies,
        "status": status,
        "queues": queue_spans(db, 0),
    }


async def alone(db_path: Path, archive: Path) -> dict[str, dict[str, Any]]:
    """Each queue of the together run on its own, over the database and archive that run left."""
    toolset = await discover(ToolPaths(None, None, None))
    exiftool = ExifToolPool(CONCURRENCY[Queue.EXIFTOOL] + CONCURRENCY[Queue.THUMBNAIL])  # as the app
    handlers = job_handlers(exiftool)
    db = await Database.open(db_path)
    spans: dict[str, dict[str, Any]] = {}
    try:
        first = await db.fetch_one("SELECT imgloc FROM imgs LIMIT 1")
        if first is not None:  # the pool's processes start before the clock does
            await asyncio.gather(*(exiftool.read_tags(toolset.exiftool, first[0]) for _ in range(4)))
        for queue in Queue:
            rows = await db.fetch_all(
                "SELECT payload FROM jobs WHERE queue = ? AND status = 'completed' ORDER BY rowid",
                (queue.value,),
            )
            if not rows:
                continue
            if queue is Queue.VIDEO_PROXY:
                async with db.transaction() as conn:
                    await conn.execute("DELETE FROM video_proxies")
            if queue is Queue.BAGIT:
                await asyncio.to_thread(remove_bags, archive)
            mark = await db.fetch_one("SELECT max(rowid) FROM jobs")
            payloads = [
                {key: value for key, value in orjson.loads(row[0]).items() if key != "jobId"} for row in rows
            ]
            ran = await video_bench.run_queue(
                db, toolset, queue, handlers[queue], payloads, video_bench.Events(), str(archive)
            )
            span = queue_spans(db_path, mark[0] if mark else 0)[queue.value]
            span["failed"] = ran["jobs"] - ran["completed"]
            spans[queue.value] = span
    finally:
        await exiftool.close()
        await db.close()
    return spans


def remove_bags(archive: Path) -> None:
    for bag in list(archive.rglob("_archive")):
        shutil.rmtree(bag)


def queue_spans(db: Path, after_rowid: int) -> dict[str, dict[str, Any]]:
    """Per queue, from the completed `jobs` rows after `after_rowid`: jobs, files, the span from
    the first start to the last end, and each kind of file's mean job seconds."""
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT queue, payload, started_at, completed_at FROM jobs"
            " WHERE status = 'completed' AND rowid > ? ORDER BY rowid",
            (after_rowid,),
        ).fetchall()
        location_files = conn.execute(
            "SELECT (SELECT count(*) FROM imgs) + (SELECT count(*) FROM vids)"
        ).fetchone()[0]
        video_s = conn.execute("SELECT coalesce(sum(meta_duration), 0) FROM vids").fetchone()[0]
    by_queue: dict[str, list[tuple[dict[str, Any], datetime, datetime]]] = defaultdict(list)
    for queue, payload, started, completed in rows:
        by_queue[queue].append((orjson.loads(payload), moment(started), moment(completed)))
    spans = {}
    for queue, jobs in by_queue.items():
        kinds: dict[str, list[float]] = defaultdict(list)
        for payload, started, completed in jobs:
            suffix = Path(payload.get("archivePath", "")).suffix.lower()
            kinds[KINDS.get(suffix, suffix or "location")].append((completed - started).total_seconds())
        span = (max(j[2] for j in jobs) - min(j[1] for j in jobs)).total_seconds()
        spans[queue] = {
            "jobs": len(jobs),
            "files": len(jobs) * location_files if Queue(queue) in LOCATION_QUEUES else len(jobs),
            "seconds": span,
            "kind_mean_s": {kind: statistics.mean(seconds) for kind, seconds in kinds.items()},
        }
    if "video-proxy" in spans:
        spans["video-proxy"]["video_s"] = video_s
    return spans


def moment(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def rate(span: dict[str, Any]) -> float:
    return float(span["files"] / span["seconds"]) if span["seconds"] > 0 else float("inf")


def report(row: dict[str, Any], solo: dict[str, dict[str, Any]], solo_cores: float, card_files: int) -> None:
    say(
        f"import: {row['import_s']:.1f} s; then every job done in {row['jobs_s']:.1f} s ="
        f" {card_files / row['jobs_s']:.2f} card files/s all together"
        f" (alone one after another: {sum(s['seconds'] for s in solo.values()):.1f} s)"
    )
    say(
        f"  {'queue':<15} {'files':>5}  {'alone s':>8} {'files/s':>8}  {'together s':>10} {'files/s':>8}"
        f"  {'together/alone':>14}"
    )
    for queue, mixed in row["queues"].items():
        single = solo.get(queue)
        alone_rate = rate(single) if single else float("nan")
        target = TARGETS.get(queue)
        verdict = (
            ""
            if target is None
            else f"  target ≥ {target:g}/s alone: {'met' if alone_rate >= target else 'NOT met'}"
        )
        say(
            f"  {queue:<15} {mixed['files']:>5}  {single['seconds'] if single else float('nan'):8.2f}"
            f" {alone_rate:8.2f}  {mixed['seconds']:10.2f} {rate(mixed):8.2f}"
            f"  {rate(mixed) / alone_rate:14.2f}{verdict}"
        )
    for queue, mixed in row["queues"].items():
        single = solo.get(queue, {})
        for kind, seconds in sorted(mixed["kind_mean_s"].items()):
            solo_s = single.get("kind_mean_s", {}).get(kind, float("nan"))
            say(f"    {queue} {kind}: mean job {solo_s:.3f} s alone, {seconds:.3f} s together")
        if "video_s" in mixed:
            alone_x = mixed["video_s"] / single["seconds"] if single else float("nan")
            say(
                f"    video-proxy: {mixed['video_s']:.1f} s of video, {alone_x:.2f}× real time alone,"
                f" {mixed['video_s'] / mixed['seconds']:.2f}× together"
            )
    failed = {q: s["failed"] for q, s in solo.items() if s["failed"]}
    dead = {q: c["dead"] for q, c in row["status"].items() if c["dead"]}
    say(f"  dead jobs together: {dead or 'none'}; failed alone: {failed or 'none'}")
    lat = row["latencies"]
    p99 = percentile(lat, 0.99)
    say(
        f"status while the jobs ran together: n={len(lat)} p50 {percentile(lat, 0.5) * 1000:.1f} ms"
        f" p99 {p99 * 1000:.1f} ms max {max(lat) * 1000:.1f} ms"
        f"  target p99 ≤ 50 ms: {'met' if p99 <= STATUS_P99_TARGET_S else 'NOT met'}"
    )
    say(
        f"machine: {row['machine_cores']:.2f} of {os.cpu_count()} cores busy during the together run,"
        f" {solo_cores:.2f} during the alone runs (ours and other processes'); load average now"
        f" {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jpegs", type=int, default=40, help="24 MP JPEGs")
    parser.add_argument("--heics", type=int, default=10, help="12 MP HEICs")
    parser.add_argument("--raws", type=int, default=20, help="24 MP RAWs with a full-size JPEG preview")
    parser.add_argument("--videos", type=int, default=3, help="MOV clips")
    parser.add_argument("--video-seconds", type=float, default=5.0)
    parser.add_argument("--video-size", default="3840x2160")
    parser.add_argument("--video-bitrate", default="50M", help="H.264 bitrate (a phone's 4K30: ~50M)")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the generated sources")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="jobs-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        card = sources(work / "sources", args)
        files = [path for path in card.rglob("*") if path.is_file()]
        say(
            f"card: {args.jpegs} JPEG 24 MP, {args.heics} HEIC 12 MP, {args.raws} RAW 24 MP with preview,"
            f" {args.videos} × {args.video_seconds:g} s {args.video_size} MOV at {args.video_bitrate}bit/s;"
            f" {len(files)} files, {sum(p.stat().st_size for p in files) / 2**20:.0f} MiB,"
            f" ready in {time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.1f}"
        )
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
        mixed = asyncio.run(together(card, run_dir))
        busy, began = thumbnail_bench.machine_busy_s(), time.perf_counter()
        solo = asyncio.run(alone(mixed["db"], mixed["archive"]))
        solo_cores = (thumbnail_bench.machine_busy_s() - busy) / (time.perf_counter() - began)
        report(mixed, solo, solo_cores, len(files))
        shutil.rmtree(run_dir)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
