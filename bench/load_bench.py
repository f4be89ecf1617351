"""Load: three imports queued back to back (HUGE's 100 000 small files, then SMALL's 20 000, then
the camera card MIXED) through one sidecar, while a renderer-like client calls `import:v2:status`,
`jobs:status` and `jobs:deadLetter` without pause (issue 6 §4).

    .venv/bin/python -m bench.load_bench [--workdir DIR] [--keep]

Reported: each import's status and finalized count against its dataset (nothing lost), row and job
counts in the database, the sidecar's RSS sampled every second from the first start to the last
result (flat: the peak against the level once the first import runs), and the round trip of every
poll (p50/p99/max; target p99 ≤ 50 ms). The background jobs the imports queue run meanwhile, as
they would in the app; the run ends when the last import ends.
"""

import argparse
import asyncio
import shutil
import sqlite3
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from bench.common import percentile, say
from bench.datasets import Dataset, generate
from bench.import_bench import close_sidecar, open_sidecar, proc_status_kb
from tests.support.archive import add_location

DATASETS = ("huge", "small", "mixed")
POLLED = ("import:v2:status", "jobs:status", "jobs:deadLetter")


async def poll(client: Any, stop: asyncio.Event, latencies: dict[str, list[float]]) -> None:
    while not stop.is_set():
        for method in POLLED:
            asked = time.perf_counter()
            await client.request(method, [], timeout=60)
            latencies[method].append(time.perf_counter() - asked)
        client.frames.clear()


async def sample_rss(pid: int, stop: asyncio.Event, samples: list[tuple[float, int]]) -> None:
    began = time.perf_counter()
    while not stop.is_set():
        samples.append((time.perf_counter() - began, proc_status_kb(pid, "VmRSS")))
        try:
            async with asyncio.timeout(1.0):
                await stop.wait()
        except TimeoutError:
            pass


async def run(datasets: list[Dataset], work: Path) -> dict[str, Any]:
    client, db, _ = await open_sidecar(work, "default")
    try:
        location = add_location(db)
        stop = asyncio.Event()
        latencies: dict[str, list[float]] = {m: [] for m in POLLED}
        samples: list[tuple[float, int]] = []
        background = [
            asyncio.create_task(poll(client, stop, latencies)),
            asyncio.create_task(sample_rss(client.process.pid, stop, samples)),
        ]
        began = time.perf_counter()
        results = await asyncio.gather(
            *(
                client.request("import:v2:start", location.start_params(ds.root), timeout=7200)
                for ds in datasets
            )
        )
        seconds = time.perf_counter() - began
        stop.set()
        await asyncio.gather(*background)
    finally:
        await close_sidecar(client)
    with closing(sqlite3.connect(db)) as conn:
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("imgs", "vids", "docs", "imports", "jobs")
        }
    return {"results": results, "seconds": seconds, "latencies": latencies, "rss": samples, "counts": counts}


def report(datasets: list[Dataset], row: dict[str, Any]) -> None:
    lost = 0
    for ds, result in zip(datasets, row["results"], strict=True):
        finalized = (result.get("finalizationResult") or {}).get("totalFinalized")
        lost += ds.finalized - (finalized or 0)
        say(
            f"  {ds.name:<6} {len(ds.files):>7} files: {result['status']}, finalized {finalized}"
            f" of {ds.finalized}, {result['totalDurationMs'] / 1000:.1f} s"
        )
    say(f"  all three in {row['seconds']:.1f} s; database: {row['counts']}; lost: {lost}")
    rss = [kb for _, kb in row["rss"]]
    if rss:
        settled = rss[min(len(rss) - 1, 5)]  # once the first import runs
        quarters = " ".join(f"{rss[len(rss) * q // 4 - 1] / 1024:.0f}" for q in (1, 2, 3, 4))
        say(
            f"  sidecar RSS: {settled / 1024:.0f} MB after 5 s, peak {max(rss) / 1024:.0f} MB;"
            f" at each quarter of the run: {quarters} MB"
        )
    for method, values in row["latencies"].items():
        say(
            f"  {method:<17} n={len(values):>6} p50 {percentile(values, 0.5) * 1000:5.1f} ms"
            f" p99 {percentile(values, 0.99) * 1000:5.1f} ms max {max(values, default=0) * 1000:6.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="load-bench-"))
    try:
        datasets = [generate(name, work / "sources" / name) for name in DATASETS]
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
        report(datasets, asyncio.run(run(datasets, run_dir)))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
