"""Cards on real filesystems (issue 13): how many times the import reads the card, how long it takes
from a card of a set speed, and what each archive filesystem's copy strategy costs.

    .venv/bin/python -m bench.card_bench [--parts reads,speed,strategy] [--scale 1.0] [--rate-mb 90]
        [--workdir DIR] [--keep] [--loop-readahead-kb N]    (--parts also takes emulator)

reads     A mixed card (two big clips, many JPEG photos) on its own loop-mounted ext4, on exFAT
          through FUSE (exfat-fuse over a loop device) and served by the card emulator (its pages
          kept in the kernel's cache across opens, as a block device's are); the import
          runs with the page cache under pressure (`echo 1 > /proc/sys/vm/drop_caches` every
          0.1 s while it runs, as a card larger than RAM would), by default and with
          `--read-once always`; and again with the cache only dropped before the import ("cold").
          The loop devices read ahead 128 KiB, as a USB card reader's block device does (the
          kernel's default; attached loop devices here take 2 560 KiB from this VM's disk):
          `--loop-readahead-kb` sets another value (0: the loop device's own). Bytes read from the
          medium: the loop device's sectors read (/sys/block/loopN/stat) or the emulator's count;
          ÷ the card's bytes.
speed     The same card served by the emulator at --rate-mb MB/s (bursts of 8 MB), the page cache
          under the same pressure: import seconds ÷ (card bytes ÷ rate), by default and with
          `--read-once always`; also the time from `import:v2:start` to the first
          `asset:thumbnail-ready`, and how many thumbnails were ready when the import's result came.
emulator  The emulator's own pace (only when asked): the card read straight through at --rate-mb.
strategy  Card and archive on one filesystem (btrfs, xfs with reflink, ext4), page cache dropped
          before: import seconds, the copy strategy the result names, and the space the archive
          took (statvfs, after sync).

Needs root (loop mounts, drop_caches), exfat-fuse, btrfs-progs, xfsprogs, fuse3 (scripts/setup).
Every mount is undone at the end. Results: a table on stdout, everything in
bench/out/card-<timestamp>.json. Figures and what they mean: bench/README.md.
"""

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import blake3
from PIL import Image

from bench.common import say
from bench.import_bench import BenchClient, close_sidecar
from tests.support.archive import add_location
from tests.support.card import CardEmulator, card_emulator
from tests.support.filesystems import Mounted, drop_page_cache, loop_filesystem

OUT = Path(__file__).resolve().parent / "out"
MB = 1_000_000
MIB = 1 << 20
LOCID = "5e1f0c3a-7d2b-4c89-9a61-2b7e4d0f8c13"


# -- the card ---------------------------------------------------------------------------------------


def mixed_card(root: Path, scale: float) -> int:
    """Two big clips and many photos (real JPEGs of noise, ~3.5 MB each, so thumbnails can be made);
    returns the card's bytes."""
    clips, photos = 2, max(4, int(120 * scale))
    clip_bytes = int(150 * MIB * scale)
    folder = root / "DCIM" / "100CAMRA"
    folder.mkdir(parents=True)
    for n in range(1, clips + 1):
        with open(folder / f"MVI_{n:04d}.MP4", "wb") as out:
            xof = blake3.blake3(f"clip{n}".encode())
            for offset in range(0, clip_bytes, 8 * MIB):
                out.write(xof.digest(length=min(8 * MIB, clip_bytes - offset), seek=offset))
    width, height = 1600, 1200
    for n in range(1, photos + 1):
        noise = blake3.blake3(f"photo{n}".encode()).digest(length=width * height * 3)
        buffer = io.BytesIO()
        Image.frombytes("RGB", (width, height), noise).save(buffer, "JPEG", quality=90)
        (folder / f"IMG_{n:04d}.JPG").write_bytes(buffer.getvalue())
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


# -- one import -------------------------------------------------------------------------------------


@contextlib.contextmanager
def cache_pressure(period_s: float = 0.1) -> Iterator[None]:
    """Drop the clean page cache every `period_s` while the block runs: what the import read a
    moment ago is gone, as on a card larger than RAM."""
    stop = threading.Event()

    def drop() -> None:
        while not stop.wait(period_s):
            Path("/proc/sys/vm/drop_caches").write_text("1\n")

    thread = threading.Thread(target=drop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


async def run_import(
    card: Path,
    folder: Path,
    archive: Path,
    extra: list[str],
    pressure: bool,
    medium_read: Callable[[], int],
) -> dict[str, Any]:
    """A fresh sidecar imports `card` into `archive`; returns seconds, bytes read from the medium,
    the thumbnails ready when the result came and the time to the first one, and the result."""
    db = folder / "au-archive.db"
    for made in (folder, archive):
        await asyncio.to_thread(made.mkdir, parents=True, exist_ok=True)
    client = cast(
        BenchClient, await BenchClient.spawn(["serve", "--db", str(db), "--archive", str(archive), *extra])
    )
    try:
        await client.notification("sidecar:ready", timeout=60)
        location = add_location(db, locid=LOCID)
        drop_page_cache()
        read_before = medium_read()
        began = time.perf_counter()
        with cache_pressure() if pressure else contextlib.nullcontext():
            result = await client.request("import:v2:start", location.start_params(card), timeout=3600)
        ended = time.perf_counter()
        read = medium_read() - read_before
        thumbs = [t for t, m, _ in client.stamped if m == "asset:thumbnail-ready"]
        # The card is read once hashing, the front step, is done: what follows is the pipeline's tail.
        past_hashing = [
            t
            for t, m, p in client.stamped
            if m == "import:v2:progress" and p["status"] not in ("pending", "scanning", "hashing")
        ]
        first_thumb: float | None = None
        with contextlib.suppress(TimeoutError):
            await client.notification("asset:thumbnail-ready", timeout=120)
            first_thumb = min(t for t, m, _ in client.stamped if m == "asset:thumbnail-ready") - began
    finally:
        await close_sidecar(client)
    assert result["status"] == "completed", (result, client.stderr_lines[-30:])
    return {
        "seconds": ended - began,
        "medium_read": read,
        "thumbnails_at_result": sum(1 for t in thumbs if t <= ended),
        "first_thumbnail_s": first_thumb,
        "card_read_s": (min(past_hashing) - began) if past_hashing else None,
        "strategy": result["copyResult"].get("strategy"),
        "finalized": result["finalizationResult"]["totalFinalized"],
    }


def used_bytes(path: Path) -> int:
    os.sync()
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


# -- the parts --------------------------------------------------------------------------------------

READ_MODES = {"default": [], "read-once always": ["--read-once", "always"]}
# A USB card reader's block device reads ahead the kernel's default, 128 KiB (VM_READAHEAD_PAGES,
# include/linux/mm.h). Loop devices attached here take 2 560 KiB from this VM's disk, and exfat-fuse
# reads the card through the device's page cache: under the bench's pressure (the cache dropped every
# 0.1 s) windows that large were dropped before use and read again (exFAT read 1.66x the card with
# 2 560 KiB, 1.04x with 128, 1.01x with 32; measured 2026-12-06, exfat-fuse's own reads were 1.00x
# under strace).
CARD_READER_READAHEAD_KB = 128


async def bench_reads(
    card: Path, card_bytes: int, work: Path, rows: list[dict[str, Any]], readahead_kb: int | None
) -> None:
    size_mb = int(card_bytes * 1.6 / MB) + 64
    with contextlib.ExitStack() as stack:
        sources: list[tuple[str, Path, Callable[[], int]]] = []
        for fstype in ("ext4", "exfat"):
            fs: Mounted = stack.enter_context(
                loop_filesystem(fstype, work, size_mb, f"{fstype}-card", readahead_kb)
            )
            shutil.copytree(card, fs.path / "card")
            sources.append((fstype, fs.path / "card", fs.bytes_read))
        emulator: CardEmulator = stack.enter_context(
            card_emulator(card, work / "emulator", kernel_cache=True)
        )
        sources.append(("emulator", emulator.path, emulator.bytes_read))
        for name, source, counter in sources:
            for mode, extra in READ_MODES.items():
                for pressure in (True, False):
                    n = len(rows)
                    run = await run_import(
                        source,
                        work / "runs" / f"reads-{n}",
                        work / "archives" / f"r{n}",
                        extra,
                        pressure,
                        counter,
                    )
                    cache = "pressure" if pressure else "cold"
                    row = {"part": "reads", "source": name, "mode": mode, "cache": cache, **run}
                    row["card_bytes"] = card_bytes
                    row["read_ratio"] = run["medium_read"] / card_bytes
                    rows.append(row)
                    say(
                        f"reads     {name:8} {mode:17} {cache:8} read {row['read_ratio']:.2f}x the card"
                        f"  ({run['seconds']:.1f} s)"
                    )


async def bench_speed(
    card: Path, card_bytes: int, work: Path, rate_mb: float, rows: list[dict[str, Any]]
) -> None:
    rate = rate_mb * MB
    with card_emulator(card, work / "speed", rate=rate, burst=8 * MB, kernel_cache=True) as emulator:
        for mode, extra in READ_MODES.items():
            run = await run_import(
                emulator.path,
                work / "runs" / f"speed-{len(rows)}",
                work / "archives" / f"s{len(rows)}",
                extra,
                True,
                emulator.bytes_read,
            )
            card_time = card_bytes / rate
            row = {"part": "speed", "mode": mode, "rate_mb": rate_mb, "card_bytes": card_bytes, **run}
            row["time_ratio"] = run["seconds"] / card_time
            row["read_ratio"] = run["medium_read"] / card_bytes
            rows.append(row)
            first = "-" if run["first_thumbnail_s"] is None else f"{run['first_thumbnail_s']:.1f} s"
            say(
                f"speed     {rate_mb:.0f} MB/s {mode:17} {run['seconds']:.1f} s"
                f" = {row['time_ratio']:.2f}x the card's {card_time:.1f} s; first thumbnail {first},"
                f" {run['thumbnails_at_result']} at the result; card read by {run['card_read_s'] or 0:.1f} s"
            )


def read_all(root: Path) -> int:
    total = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        with open(path, "rb", buffering=0) as source:
            while chunk := source.read(1 << 20):
                total += len(chunk)
    return total


async def bench_emulator(
    card: Path, card_bytes: int, work: Path, rate_mb: float, rows: list[dict[str, Any]]
) -> None:
    """The emulator's own pace: the whole card read sequentially (no page cache across opens)."""
    rate, burst = rate_mb * MB, 8 * MB
    with card_emulator(card, work / "pace", rate=rate, burst=burst) as emulator:
        began = time.perf_counter()
        read = await asyncio.to_thread(read_all, emulator.path)
        seconds = time.perf_counter() - began
    expected = (card_bytes - burst) / rate
    row = {"part": "emulator", "rate_mb": rate_mb, "read": read, "seconds": seconds, "expected_s": expected}
    row["pace_ratio"] = seconds / expected
    rows.append(row)
    say(
        f"emulator  {rate_mb:.0f} MB/s: read {read / MB:.0f} MB in {seconds:.2f} s,"
        f" {row['pace_ratio']:.3f}x the {expected:.2f} s the rate allows ({read / seconds / MB:.1f} MB/s)"
    )


async def bench_strategy(card: Path, card_bytes: int, work: Path, rows: list[dict[str, Any]]) -> None:
    size_mb = int(card_bytes * 2.6 / MB) + 400
    for fstype in ("btrfs", "xfs", "ext4"):
        with loop_filesystem(fstype, work, size_mb, f"{fstype}-archive") as fs:
            shutil.copytree(card, fs.path / "card")
            before = used_bytes(fs.path)
            run = await run_import(
                fs.path / "card",
                work / "runs" / f"strategy-{fstype}",
                fs.path / "archive",
                [],
                False,
                fs.bytes_read,
            )
            grown = used_bytes(fs.path) - before
        row = {"part": "strategy", "fs": fstype, "card_bytes": card_bytes, "archive_grew": grown, **run}
        rows.append(row)
        say(
            f"strategy  {fstype:6} {run['strategy']:8} {run['seconds']:.1f} s,"
            f" archive took {grown / MB:.0f} MB for a {card_bytes / MB:.0f} MB card"
        )


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="reads,speed,strategy")
    parser.add_argument("--scale", type=float, default=1.0, help="card size factor (1.0: ~0.75 GB)")
    parser.add_argument("--rate-mb", type=float, default=90.0)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--loop-readahead-kb",
        type=int,
        default=CARD_READER_READAHEAD_KB,
        help="the card loop devices' read_ahead_kb, set before mounting (0: the loop device's own)",
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="au-card-bench-", dir=args.workdir))
    rows: list[dict[str, Any]] = []
    try:
        card = work / "card"
        card_bytes = mixed_card(card, args.scale)
        say(f"card: {sum(1 for p in card.rglob('*') if p.is_file())} files, {card_bytes / MB:.0f} MB")
        parts = set(args.parts.split(","))
        if "reads" in parts:
            await bench_reads(card, card_bytes, work, rows, args.loop_readahead_kb or None)
        if "speed" in parts:
            await bench_speed(card, card_bytes, work, args.rate_mb, rows)
        if "emulator" in parts:
            await bench_emulator(card, card_bytes, work, args.rate_mb, rows)
        if "strategy" in parts:
            await bench_strategy(card, card_bytes, work, rows)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    OUT.mkdir(exist_ok=True)
    git = ["git", "rev-parse", "--short", "HEAD"]
    head = (await asyncio.to_thread(subprocess.run, git, capture_output=True, text=True)).stdout.strip()
    # The tree is shared: figures taken over uncommitted changes to the sidecar say so.
    status = ["git", "status", "--porcelain", "--", "sidecar"]
    changed = (await asyncio.to_thread(subprocess.run, status, capture_output=True, text=True)).stdout.strip()
    if changed:
        head += "+uncommitted"
        say(f"note: measured with uncommitted changes to sidecar/:\n{changed}")
    out = OUT / f"card-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"commit": head, "machine": platform.node(), "rows": rows}, indent=1))
    say(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
