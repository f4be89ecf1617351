"""Micro-benchmark behind copy_files' flush choice: an fsync per temp file vs one syncfs per call.

SMALL-like data (many 4–64 KiB files), MEDIUM (photo-sized, 3–8 MiB) and LARGE-like data
(8 × 50 MiB), copied in pool-sized calls (64 files or 64 MiB), serially in one process and then
on two worker processes as the pool runs them. Every run writes into a fresh directory and
nothing is deleted until the end: on this machine's journal-less ext4, new inodes right after
mass deletes cost ~1 ms each (performance-floor.md §0.2).

    PYTHONPATH=. .venv/bin/python bench/bytework_batching.py [--small-files 2000] [--rounds 3] [--dir /tmp]
"""

import argparse
import concurrent.futures
import multiprocessing
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from sidecar.workers import bytework
from sidecar.workers.bytework import CopyRequest, copy_files, hash_files

POLICIES = ("fsync", "syncfs")


def set_policy(policy: str) -> None:
    if policy == "fsync":
        bytework.SYNCFS_MIN_FILES = 1 << 30
    else:
        bytework.SYNCFS_MIN_FILES = 1
        bytework.SYNCFS_MAX_AVG_BYTES = 1 << 62


def copy_with_policy(policy: str, requests: list[CopyRequest]) -> int:
    """Top-level so spawned workers can run it."""
    set_policy(policy)
    outcomes = copy_files(requests)
    assert all(o.error is None for o in outcomes), [o.error for o in outcomes if o.error][:3]
    return len(outcomes)


def make_dataset(root: Path, sizes: Sequence[int]) -> list[tuple[str, str, int]]:
    root.mkdir(parents=True)
    block = os.urandom(max(sizes) + 4096)
    files = []
    for i, size in enumerate(sizes):
        path = root / f"f{i:05d}.bin"
        offset = random.randrange(4096)
        path.write_bytes(block[offset : offset + size])
        files.append(str(path))
    digests = hash_files(files)  # also warms the page cache with the sources
    return [(f, d.hash or "", s) for f, d, s in zip(files, digests, sizes, strict=True)]


def batches(files: list[tuple[str, str, int]], target: Path) -> list[list[CopyRequest]]:
    out: list[list[CopyRequest]] = []
    current: list[CopyRequest] = []
    current_bytes = 0
    for i, (path, digest, size) in enumerate(files):
        if current and (len(current) >= 64 or current_bytes + size > 64 << 20):
            out.append(current)
            current, current_bytes = [], 0
        folder = target / f"d{i // 100:03d}"  # 100 files per folder, like SMALL's layout
        current.append(CopyRequest(path, str(folder / f"{digest}.bin"), digest))
        current_bytes += size
    if current:
        out.append(current)
    return out


def run_serial(policy: str, work: list[list[CopyRequest]]) -> float:
    started = time.perf_counter()
    for batch in work:
        copy_with_policy(policy, batch)
    return time.perf_counter() - started


def run_pool(
    policy: str, work: list[list[CopyRequest]], pool: concurrent.futures.ProcessPoolExecutor
) -> float:
    started = time.perf_counter()
    list(pool.map(copy_with_policy, [policy] * len(work), work))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small-files", type=int, default=2000)
    parser.add_argument("--medium-files", type=int, default=48)
    parser.add_argument("--large-files", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to work (default: the system temp dir)")
    args = parser.parse_args()
    random.seed(20261124)
    base = Path(tempfile.mkdtemp(prefix="bytework-bench-", dir=args.dir))
    datasets = {
        "SMALL": [random.randint(4 << 10, 64 << 10) for _ in range(args.small_files)],
        "MEDIUM": [random.randint(3 << 20, 8 << 20) for _ in range(args.medium_files)],
        "LARGE": [50 << 20] * args.large_files,
    }
    pool = concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
    list(pool.map(time.sleep, [0.0, 0.0]))
    run_id = 0
    try:
        for name, sizes in datasets.items():
            if not sizes:
                continue
            files = make_dataset(base / f"src-{name}", sizes)
            total = sum(sizes)
            print(f"\n{name}: {len(sizes)} files, {total / (1 << 20):.1f} MiB")
            for mode in ("serial", "2 workers"):
                times: dict[str, list[float]] = {p: [] for p in POLICIES}
                for round_no in range(args.rounds + 1):  # round 0 is a warm-up
                    order = POLICIES if round_no % 2 else POLICIES[::-1]
                    for policy in order:
                        run_id += 1
                        work = batches(files, base / f"dst-{run_id:03d}")
                        os.sync()  # start every run with nothing dirty
                        if mode == "serial":
                            elapsed = run_serial(policy, work)
                        else:
                            elapsed = run_pool(policy, work, pool)
                        if round_no:
                            times[policy].append(elapsed)
                med = {p: statistics.median(t) for p, t in times.items()}
                cells = "  ".join(
                    f"{p} {med[p]:.3f} s ({len(sizes) / med[p]:,.0f} files/s, "
                    f"{total / (1 << 20) / med[p]:,.0f} MiB/s)"
                    for p in POLICIES
                )
                print(f"  {mode:9}  {cells}  fsync/syncfs = {med['fsync'] / med['syncfs']:.2f}")
    finally:
        pool.shutdown()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
