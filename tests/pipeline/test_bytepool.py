"""The byte pool with real spawned workers: order and live completion across many batches, a crashed
worker replaced and its batch retried once, a hung batch killed at its timeout, cancel and close
bounded in time."""

import asyncio
import logging
import os
import random
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sidecar.pipeline.bytepool import BytePool, split_batches
from sidecar.workers import bytework
from sidecar.workers.bytework import (
    TEMP_SUFFIX,
    CopyOutcome,
    CopyRequest,
    HashOutcome,
    copy_files,
    hash_files,
    init_worker,
)
from tests.support import crashy


def failed_text(item: object, message: str) -> str:
    return f"FAILED: {message}"


def no_pid(item: object, message: str) -> int:
    return -1


def failed_hash(item: object, message: str) -> HashOutcome:
    return HashOutcome(None, None, message)


def failed_copy(item: object, message: str) -> CopyOutcome:
    return CopyOutcome(False, None, 0, message, "source")


@pytest.fixture
async def pool() -> AsyncIterator[BytePool]:
    started = BytePool(2, max_batch_files=16)
    await started.start()
    yield started
    await started.close()


async def test_a_started_pool_has_every_worker_warm(caplog: pytest.LogCaptureFixture) -> None:
    """Each worker takes exactly one warm-up call: the first worker up used to take them all, the
    others still starting (not yet at the byte workers' priority) when the pool said it had started."""
    pool = BytePool(3)
    try:
        with caplog.at_level(logging.INFO, logger="sidecar.pipeline.bytepool"):
            await pool.start()
    finally:
        await pool.close()
    [started] = [r for r in caplog.records if getattr(r, "action", None) == "bytepool.start"]
    fields = vars(started)  # the log call's `extra`
    assert (fields["workers"], fields["warmed"]) == (3, 3)


def test_a_warm_up_that_waits_too_long_for_the_others_gives_up_not_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bytework, "WARM_TIMEOUT_S", 0.01)
    init_worker(None, all_warm=threading.Barrier(2))  # the other worker never comes
    try:
        assert bytework.warm() == os.getpid()
    finally:
        init_worker(None)


def test_batches_keep_order_and_respect_both_caps() -> None:
    assert split_batches([], 4, 100) == []
    assert split_batches([10] * 9, 4, 100) == [(0, 4, 40), (4, 8, 40), (8, 9, 10)]
    # a file bigger than the byte cap goes alone; the cap counts bytes, not files
    assert split_batches([30, 30, 500, 30, 50, 30], 10, 100) == [
        (0, 2, 60),
        (2, 3, 500),
        (3, 5, 80),
        (5, 6, 30),
    ]


def test_a_share_ends_batches_early_but_never_lifts_the_caps() -> None:
    photos = [1_750_000] * 17  # a card window's last page
    assert split_batches(photos, 256, 64 << 20) == [(0, 17, 29_750_000)]
    thirds = split_batches(photos, 256, 64 << 20, share=-(-sum(photos) // 3))
    assert [(start, end) for start, end, _ in thirds] == [(0, 6), (6, 12), (12, 17)]
    assert split_batches([10] * 9, 4, 100, share=1000) == [(0, 4, 40), (4, 8, 40), (8, 9, 10)]
    assert split_batches([30, 30, 500, 30], 10, 100, share=40) == [(0, 2, 60), (2, 3, 500), (3, 4, 30)]


async def test_a_call_too_small_for_a_batch_per_worker_is_shared_among_them(tmp_path: Path) -> None:
    paths = []
    for i in range(12):
        path = tmp_path / f"{i:02d}.bin"
        path.write_bytes(random.Random(i).randbytes(3000))
        paths.append(str(path))
    pool = BytePool(3, min_share_bytes=2000)
    try:
        whole: list[range] = []
        await pool.run(hash_files, paths, [3000] * 12, on_batch_done=whole.append, failure=failed_hash)
        assert [len(batch) for batch in whole] == [12]  # not spread: the caps alone make one batch
        shared: list[range] = []
        outcomes = await pool.run(
            hash_files, paths, [3000] * 12, on_batch_done=shared.append, failure=failed_hash, spread=True
        )
        assert outcomes == hash_files(paths)
        assert sorted(len(batch) for batch in shared) == [4, 4, 4]  # one batch per worker
        # A third of these 6 files would be 6 000 bytes: under the floor, the batches hold 9 000.
        pool.min_share_bytes = 9000
        floored: list[range] = []
        await pool.run(
            hash_files, paths[:6], [3000] * 6, on_batch_done=floored.append, failure=failed_hash, spread=True
        )
        assert sorted(len(batch) for batch in floored) == [3, 3]
    finally:
        await pool.close()


async def test_results_come_back_in_order_with_every_item_in_one_batch_callback(
    pool: BytePool, tmp_path: Path
) -> None:
    rng = random.Random(7)
    paths = []
    for i in range(500):
        path = tmp_path / f"{i:03d}.bin"
        path.write_bytes(rng.randbytes(rng.randint(0, 8000)))
        paths.append(str(path))
    paths[123] = str(tmp_path / "missing.bin")
    batches: list[range] = []
    outcomes = await pool.run(
        hash_files,
        paths,
        [os.path.getsize(p) if os.path.exists(p) else 0 for p in paths],
        on_batch_done=batches.append,
        failure=failed_hash,
    )
    assert outcomes == hash_files(paths)  # the same answers, in input order, as computed in-process
    assert outcomes[123].error == "No such file or directory"
    # One call per batch of at most 16 files (the fixture's cap), together naming every item once.
    assert sorted(i for batch in batches for i in batch) == list(range(500))
    assert len(batches) == 32 and all(1 <= len(batch) <= 16 for batch in batches)


async def test_a_crashed_worker_is_replaced_and_its_batch_retried_once(
    pool: BytePool, tmp_path: Path
) -> None:
    marker = tmp_path / "crash-marker"
    marker.touch()
    items = [(str(tmp_path / f"no-marker-{i}"), f"v{i}") for i in range(100)]
    items[40] = (str(marker), "v40")
    before = set(await pool.run(crashy.worker_pid, ["a", "b", "c", "d"], [0] * 4, failure=no_pid))
    outcomes = await pool.run(crashy.crash_once, items, [1] * len(items), failure=failed_text)
    assert outcomes == [f"V{i}" for i in range(100)]
    assert not marker.exists()
    after = set(await pool.run(crashy.worker_pid, ["a", "b", "c", "d"], [0] * 4, failure=no_pid))
    assert before.isdisjoint(after)  # new workers


async def test_a_batch_that_always_crashes_fails_alone_and_the_pool_carries_on(
    pool: BytePool, tmp_path: Path
) -> None:
    outcomes = await pool.run(crashy.crash_always, ["x", "y"], [1, 1], failure=failed_text)
    assert outcomes == ["FAILED: the worker process crashed twice on this batch"] * 2
    path = tmp_path / "f"
    path.write_bytes(b"still works")
    [outcome] = await pool.run(hash_files, [str(path)], [11], failure=failed_hash)
    assert outcome == hash_files([str(path)])[0]


async def test_an_innocent_batch_in_flight_beside_a_crash_is_not_failed(pool: BytePool) -> None:
    crashing = pool.run(crashy.crash_always, ["boom"], [1], failure=failed_text)
    innocent = pool.run(crashy.slow_echo, [f"e{i}" for i in range(64)], [1] * 64, failure=failed_text)
    crashed, echoed = await asyncio.gather(crashing, innocent)
    assert crashed == ["FAILED: the worker process crashed twice on this batch"]
    assert echoed == [f"e{i}" for i in range(64)]


async def test_a_bug_in_the_work_function_fails_its_items_not_the_run(pool: BytePool) -> None:
    outcomes = await pool.run(crashy.boom, ["a", "b"], [1, 1], failure=failed_text)
    assert outcomes == ["FAILED: internal error in the worker: ValueError: boom"] * 2


async def test_a_hung_batch_times_out_and_the_rest_is_retried_on_new_workers() -> None:
    pool = BytePool(2, base_timeout_s=2.0, min_rate_bytes_per_s=1e15, max_batch_files=4)
    await pool.start()
    try:
        began = time.monotonic()
        hung = pool.run(crashy.hang, ["h1", "h2"], [10, 10], failure=failed_text)
        # slow_echo batches (0.5 s each, well inside their own 2 s limit) keep the other worker busy,
        # so one is in flight when the hung batch's workers are killed; they must all still succeed.
        busy = pool.run(crashy.slow_echo, [f"e{i}" for i in range(16)], [1] * 16, failure=failed_text)
        hung_out, busy_out = await asyncio.gather(hung, busy)
        assert hung_out == ["FAILED: timed out after 2 s"] * 2
        assert busy_out == [f"e{i}" for i in range(16)]
        assert time.monotonic() - began < 30
        assert await pool.run(crashy.slow_echo, ["after"], [1], failure=failed_text) == ["after"]
    finally:
        await pool.close()


async def test_the_timeout_counts_from_the_batch_start_not_from_its_queueing() -> None:
    """1 s batches on one worker, two in flight: each waits 1 s for the one ahead, then runs 1 s.
    Counted from submission (2 s), every queued batch would pass its 1.7 s limit; counted from its
    start it has 0.7 s to spare for a loaded machine."""
    pool = BytePool(1, base_timeout_s=1.7, min_rate_bytes_per_s=1e15, max_batch_files=1)
    await pool.start()
    try:
        items = [f"q{i}" for i in range(4)]
        assert await pool.run(crashy.slower_echo, items, [1] * 4, failure=failed_text) == items
    finally:
        await pool.close()


async def test_timeouts_grow_with_batch_size() -> None:
    pool = BytePool(1)
    assert pool.timeout_for(0) == 60.0
    assert pool.timeout_for(50_000_000_000) == pytest.approx(10_060.0)


async def test_cancel_stops_a_big_copy_in_flight(tmp_path: Path) -> None:
    pool = BytePool(2, max_batch_files=1)
    await pool.start()
    try:
        small = tmp_path / "small.jpg"
        small.write_bytes(os.urandom(1000))
        big = tmp_path / "big.mov"
        block = os.urandom(1 << 20)
        with big.open("wb") as f:
            for _ in range(512):
                f.write(block)
        [small_hash, big_hash] = hash_files([str(small), str(big)])
        archive = tmp_path / "archive"
        requests = [
            CopyRequest(str(small), str(archive / "small.jpg"), small_hash.hash or ""),
            CopyRequest(str(big), str(archive / "big.mov"), big_hash.hash or ""),
        ]
        cancelled_at: list[float] = []

        def on_done(indices: range) -> None:
            if 0 in indices:  # the big copy runs on the other worker now: stop it
                pool.cancel()
                cancelled_at.append(time.monotonic())

        outcomes = await pool.run(
            copy_files, requests, [1000, 512 << 20], on_batch_done=on_done, failure=failed_copy
        )
        returned = time.monotonic()
        assert outcomes[0].created
        assert outcomes[1] == CopyOutcome(False, None, 0, "Cancelled", "cancelled")
        assert returned - cancelled_at[0] < 2.0
        assert not (archive / "big.mov").exists()
        assert [p for p in archive.iterdir() if p.name.endswith(TEMP_SUFFIX)] == []

        pool.clear_cancel()
        again = CopyRequest(str(small), str(archive / "again.jpg"), small_hash.hash or "")
        assert (await pool.run(copy_files, [again], [1000], failure=failed_copy))[0].created
    finally:
        await pool.close()


async def test_close_kills_a_busy_worker_within_its_grace(tmp_path: Path) -> None:
    pool = BytePool(1)
    await pool.start()
    fifo = tmp_path / "running"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # never blocks; readable once the worker writes
    loop = asyncio.get_running_loop()
    running = loop.create_future()

    def on_readable() -> None:
        if not running.done():
            running.set_result(None)

    loop.add_reader(reader, on_readable)
    try:
        hanging = asyncio.create_task(
            pool.run(crashy.announce_then_hang, [str(fifo)], [1], failure=failed_text), name="hang"
        )
        async with asyncio.timeout(30):
            await running
    finally:
        loop.remove_reader(reader)
        os.close(reader)
    began = time.monotonic()
    await pool.close()
    assert time.monotonic() - began < 5.0  # a 2 s grace, then the kill
    with pytest.raises(RuntimeError, match="closed"):
        async with asyncio.timeout(10):
            await hanging
    with pytest.raises(RuntimeError, match="closed"):
        await pool.run(crashy.slow_echo, ["x"], [1], failure=failed_text)
