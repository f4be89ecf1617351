"""Thumbnail benchmark: camera files through the real `thumbnail` handler, run by the real
JobScheduler at the queue's concurrency, over a real database and archive folder.

    .venv/bin/python -m bench.thumbnail_bench [--kind jpeg|heic|raw|raw-decode] [--count 200]
        [--concurrency 2] [--workdir DIR] [--keep]
        [--preview-resample bicubic] [--derived-resample bicubic] [--reducing-gap 1.0]

Kinds: `jpeg` 24 MP JPEGs (6000x4000, ~6-8 MiB each, noisy content so their entropy decoding
costs what a camera file's does); `heic` 12 MP HEICs as an iPhone writes them (4032x3024, encoded
by pillow-heif, decoded by pi-heif); `raw` 24 MP RAW stand-ins (a DNG layout) whose largest
preview is a full-size JPEG, found and read through the real exiftool; `raw-decode` 24 MP Bayer
DNGs with no preview, demosaiced by LibRaw (rawpy). The same picture content for every kind.
Sources are generated first, untimed, into `<workdir>/sources-<kind>` and reused by a later run
given the same --workdir. Reported: images/s for all three sizes (target >= 8 on 2 cores for JPEG), CPU
seconds per image, the event loop's lag while the jobs run (a 5 ms ticker's overshoot; the loop
must stay free for `import:v2:status`), and how busy other processes kept the machine meanwhile
(only runs with that near 0 are comparable).
"""

import argparse
import asyncio
import io
import multiprocessing
import os
import random
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from PIL import Image, ImageDraw, ImageFilter

from bench.common import say, ticker
from sidecar.api.jobs import JobNotifier
from sidecar.config import ToolPaths
from sidecar.db.connection import Database
from sidecar.jobs.handlers import JobContext, thumbnail
from sidecar.jobs.scheduler import JobScheduler
from sidecar.jobs.store import JobStore, NewJob, Queue, insert_jobs
from sidecar.timestamps import now_iso
from sidecar.tools.discovery import Toolset, discover
from sidecar.tools.exiftool import ExifToolPool
from tests.support.archive import add_location, add_media_row
from tests.support.media import make_heic
from tests.support.raws import make_cfa_dng, make_dng

WIDTH, HEIGHT = 6000, 4000
HEIC_SIZE = (4032, 3024)
TARGET_IMAGES_S = 8.0
SUFFIX = {"jpeg": ".jpg", "heic": ".heic", "raw": ".dng", "raw-decode": ".dng"}
RESAMPLE = {name.lower(): member for name, member in Image.Resampling.__members__.items()}


def camera_image(seed: int, width: int = WIDTH, height: int = HEIGHT) -> Image.Image:
    """Blurred colour noise with shapes, upscaled, plus grain: costs what a photo costs to code."""
    rnd = random.Random(seed)
    small_size = (width // 8, height // 8)
    small = Image.merge("RGB", [Image.effect_noise(small_size, 50 + 5 * band) for band in range(3)])
    small = small.filter(ImageFilter.GaussianBlur(2))
    draw = ImageDraw.Draw(small)
    for _ in range(60):
        x, y = rnd.randrange(small_size[0]), rnd.randrange(small_size[1])
        fill = (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))
        draw.ellipse((x, y, x + rnd.randrange(5, 200), y + rnd.randrange(5, 150)), fill=fill)
    big = small.resize((width, height), Image.Resampling.BICUBIC)
    return Image.blend(big, Image.effect_noise((width, height), 18).convert("RGB"), 0.25)


def _jpeg(image: Image.Image, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def make_source(args: tuple[str, Path, int]) -> Path:
    """One source of a kind, written under a temp name and renamed (a killed run leaves none)."""
    kind, path, seed = args
    if path.exists():
        return path
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    if kind == "jpeg":
        tmp.write_bytes(_jpeg(camera_image(seed)))
    elif kind == "heic":
        make_heic(tmp, camera_image(seed, *HEIC_SIZE), quality=80)
    elif kind == "raw":
        picture = camera_image(seed)
        make_dng(tmp, jpg_from_raw=_jpeg(picture), thumbnail=_jpeg(picture.resize((160, 120)), 85))
    else:
        make_cfa_dng(tmp, camera_image(seed))
    tmp.replace(path)
    return path


def generate(folder: Path, kind: str, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(kind, folder / f"IMG_{index:04d}{SUFFIX[kind]}", index) for index in range(count)]
    with multiprocessing.Pool(os.cpu_count() or 1) as pool:
        return pool.map(make_source, jobs)


class Events(JobNotifier):
    """The jobs' events through the real notifier, counted."""

    def __init__(self) -> None:
        super().__init__(self)
        self.ready = 0

    def emit(self, event: str, payload: dict[str, Any], latest_key: Any = None) -> None:
        if event == "asset:thumbnail-ready":
            self.ready += 1


def machine_busy_s() -> float:
    """CPU seconds all processes have used (Linux /proc/stat); 0 elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


async def run(work: Path, sources: list[Path], concurrency: int) -> dict[str, Any]:
    toolset = await discover(ToolPaths(exiftool=None, ffprobe=None, ffmpeg=None))  # RAW previews
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    archive = run_dir / "archive"
    db_path = run_dir / "au.db"
    db = await Database.open(db_path)
    location = add_location(db_path)
    jobs = []
    for source in sources:
        digest = add_media_row(db_path, "image", source, location.locid)
        payload = {"hash": digest, "mediaType": "image", "archivePath": str(source), "sessionId": "bench"}
        jobs.append(NewJob(Queue.THUMBNAIL, payload))
    exiftool = ExifToolPool(concurrency)
    handler = thumbnail.thumbnail_handler(exiftool)
    done = 0
    all_done = asyncio.Event()
    handler_s: list[float] = []

    async def counted(job: JobContext) -> dict[str, Any] | None:
        nonlocal done
        started = time.perf_counter()
        try:
            result = await handler(job)
        finally:  # a failed job counts too (the checks below show it), so the run always ends
            handler_s.append(time.perf_counter() - started)
            done += 1
            if done == len(sources):
                all_done.set()
        return result

    async def tools() -> Toolset:
        return toolset

    async def archive_root() -> str | None:
        return str(archive)

    events = Events()
    scheduler = JobScheduler(
        JobStore(db),
        {Queue.THUMBNAIL: counted},
        tools=tools,
        archive_root=archive_root,
        events=events,
        concurrency={Queue.THUMBNAIL: concurrency},
    )
    lags: list[float] = []
    stop_ticker = asyncio.Event()
    tick_task = asyncio.create_task(ticker(lags, stop_ticker), name="bench-ticker")
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    busy_before = machine_busy_s()
    started = time.perf_counter()
    async with db.transaction() as conn:
        await insert_jobs(conn, jobs, now_iso())
    serve = asyncio.create_task(scheduler.run(), name="bench-jobs")
    async with asyncio.timeout(600):
        await all_done.wait()
    elapsed = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    busy = machine_busy_s() - busy_before
    stop_ticker.set()
    await tick_task
    await scheduler.stop(5)
    await serve
    await exiftool.close()
    completed = await db.fetch_one("SELECT count(*) FROM jobs WHERE status = 'completed'")
    missing = await db.fetch_one("SELECT count(*) FROM imgs WHERE preview_path IS NULL")
    sources_used = await db.fetch_all("SELECT result FROM jobs WHERE status = 'completed'")
    await db.close()
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    lags_ms = sorted(lag * 1000 for lag in lags)
    sample = next((archive / ".thumbnails").rglob("*_1920.jpg"))
    with Image.open(sample) as image:
        preview_size = image.size
    return {
        "images": len(sources),
        "seconds": elapsed,
        "images_per_s": len(sources) / elapsed,
        "cpu_s_per_image": cpu / len(sources),
        # Other processes on this shared machine: cores they kept busy meanwhile (noise to report).
        "others_cores": max(busy - cpu, 0.0) / elapsed,
        "handler_ms_p50": statistics.median(handler_s) * 1000,
        "loop_lag_ms_p50": statistics.median(lags_ms),
        "loop_lag_ms_p99": lags_ms[int(len(lags_ms) * 0.99)],
        "loop_lag_ms_max": lags_ms[-1],
        "events": events.ready,
        "completed_jobs": completed[0] if completed else 0,
        "rows_without_preview": missing[0] if missing else -1,
        "sample_preview": preview_size,
        # What the handler decoded: file, embedded-preview, raw-decode (one kind per run).
        "decoded_from": sorted({orjson.loads(row[0])["source"] for row in sources_used if row[0]}),
        "run_dir": run_dir,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kind", choices=sorted(SUFFIX), default="jpeg")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated JPEGs and outputs")
    parser.add_argument("--preview-resample", choices=sorted(RESAMPLE), default=None)
    parser.add_argument("--derived-resample", choices=sorted(RESAMPLE), default=None)
    parser.add_argument("--reducing-gap", type=float, default=None)
    options = parser.parse_args()
    if options.preview_resample:
        thumbnail.PREVIEW_RESAMPLE = RESAMPLE[options.preview_resample]
    if options.derived_resample:
        thumbnail.DERIVED_RESAMPLE = RESAMPLE[options.derived_resample]
    if options.reducing_gap is not None:
        thumbnail.DERIVED_REDUCING_GAP = options.reducing_gap

    work = options.workdir or Path(tempfile.mkdtemp(prefix="au-thumb-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sources = generate(work / f"sources-{options.kind}", options.kind, options.count)
    megabytes = sum(path.stat().st_size for path in sources) / 2**20
    ready_s = time.perf_counter() - started
    size = HEIC_SIZE if options.kind == "heic" else (WIDTH, HEIGHT)
    say(
        f"{len(sources)} {options.kind} sources {size[0]}x{size[1]}, {megabytes:.0f} MiB,"
        f" ready in {ready_s:.0f} s"
    )
    say(
        f"resample: preview {thumbnail.PREVIEW_RESAMPLE.name}, derived {thumbnail.DERIVED_RESAMPLE.name}"
        f" (reducing_gap {thumbnail.DERIVED_REDUCING_GAP}); concurrency {options.concurrency}"
    )
    try:
        result = asyncio.run(run(work, sources, options.concurrency))
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)
    verdict = "meets" if result["images_per_s"] >= TARGET_IMAGES_S else "MISSES"
    target = f"; {verdict} the JPEG target of >= {TARGET_IMAGES_S:g}" if options.kind == "jpeg" else ""
    say(
        f"{result['images_per_s']:.2f} images/s ({result['seconds']:.1f} s for {result['images']}{target}); "
        f"CPU {result['cpu_s_per_image'] * 1000:.0f} ms/image; "
        f"handler p50 {result['handler_ms_p50']:.0f} ms"
    )
    say(f"other processes meanwhile: {result['others_cores']:.2f} of {os.cpu_count()} cores busy")
    say(
        f"event loop lag: p50 {result['loop_lag_ms_p50']:.1f} ms, p99 {result['loop_lag_ms_p99']:.1f} ms, "
        f"max {result['loop_lag_ms_max']:.1f} ms"
    )
    say(
        f"checks: {result['completed_jobs']} jobs completed, {result['events']} events, "
        f"{result['rows_without_preview']} rows without preview, a preview is {result['sample_preview']},"
        f" decoded from {', '.join(result['decoded_from'])}"
    )


if __name__ == "__main__":
    main()
