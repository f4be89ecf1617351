"""Load, CI-sized: three imports queued back to back while a renderer-like client calls
`import:v2:status` and every `jobs:*` read method without pause. Nothing may be lost, every call
must be answered correctly, and the sidecar's memory must stay flat. The full-size run (100 000
files) is `bench/load_bench.py`: its figures are measured there, never asserted here."""

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

from tests.support.archive import add_location, assert_archive_invariant, rows, write
from tests.support.client import SidecarPaths, SidecarProcess, jobs_settled, rss_kb

IMPORTS = 3
FILES_PER_IMPORT = 400
RSS_GROWTH_LIMIT_KB = 96 * 1024


async def hammer(client: SidecarProcess, stop: asyncio.Event, answers: dict[str, int]) -> None:
    """The read calls a busy renderer makes, back to back, each result checked by the client."""
    calls: list[tuple[str, list[Any]]] = [
        ("import:v2:status", []),
        ("jobs:status", []),
        ("jobs:deadLetter", []),
        ("import:v2:resumable", []),
    ]
    while not stop.is_set():
        for method, params in calls:
            await client.request(method, params)
            answers[method] = answers.get(method, 0) + 1
        client.frames.clear()  # the client keeps every frame; its schema checks already ran


async def test_queued_imports_under_constant_polling_lose_nothing(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths, tmp_path: Path
):
    location = add_location(sidecar_paths.db)
    sources = []
    for n in range(IMPORTS):
        folder = tmp_path / f"card{n}"
        for i in range(FILES_PER_IMPORT):
            # Documents: their one job (metadata) is quick, so the jobs' part stays short.
            write(folder / f"note_{i:04d}.txt", 2000 + i, seed=n * FILES_PER_IMPORT + i)
        sources.append(folder)
    await sidecar.request("sidecar:info")
    baseline = rss_kb(sidecar.process.pid)
    stop = asyncio.Event()
    answers: dict[str, int] = {}
    poller = asyncio.create_task(hammer(sidecar, stop, answers))
    began = time.monotonic()

    results = await asyncio.gather(
        *(
            sidecar.request("import:v2:start", location.start_params(folder), timeout=300)
            for folder in sources
        )
    )
    await jobs_settled(sidecar)
    stop.set()
    await poller

    assert [r["status"] for r in results] == ["completed"] * IMPORTS, results
    assert sorted(r["finalizationResult"]["totalFinalized"] for r in results) == [FILES_PER_IMPORT] * IMPORTS
    # One at a time, in order: each started after the one before it completed.
    ordered = sorted(results, key=lambda r: r["startedAt"])
    for earlier, later in itertools.pairwise(ordered):
        assert earlier["completedAt"] <= later["startedAt"]
    total = IMPORTS * FILES_PER_IMPORT
    assert rows(sidecar_paths.db, "SELECT count(*), count(DISTINCT dochash) FROM docs") == [(total, total)]
    assert rows(sidecar_paths.db, "SELECT count(*), sum(doc_count) FROM imports") == [(IMPORTS, total)]
    assert rows(sidecar_paths.db, "SELECT count(*) FROM jobs WHERE queue = 'exiftool'") == [(total,)]
    assert rows(sidecar_paths.db, "SELECT count(*) FROM jobs WHERE status IN ('pending', 'processing')") == [
        (0,)
    ]
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)
    assert min(answers.values()) > 10, f"the poller barely ran: {answers} in {time.monotonic() - began:.1f} s"
    assert not sidecar.violations, sidecar.violations[:3]
    growth = rss_kb(sidecar.process.pid) - baseline
    assert growth < RSS_GROWTH_LIMIT_KB, f"RSS grew by {growth} KiB"
