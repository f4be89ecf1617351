"""JobStore against a real SQLite file with the app's schema: claim order and atomicity,
dependencies, retries, dead letters and the bookkeeping behind `jobs:*`."""

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sidecar.api.jobs import JobsApi, dead_letter_entry
from sidecar.db.connection import Database
from sidecar.errors import SchemaTooOld
from sidecar.jobs.store import (
    _DEAD_LETTERS,
    _SELECT_CLAIMABLE,
    ClaimedJob,
    JobStore,
    NewJob,
    Priority,
    Queue,
    backoff_s,
    new_job_id,
)
from sidecar.rpc.contract import Contract
from sidecar.timestamps import now_iso
from tests.support.jobs import add_jobs, job_row

WORKER = "sidecar-test-1"
CONTRACT = Contract.load()


@pytest.fixture
def store(db: Database) -> JobStore:
    return JobStore(db)


async def execute(db: Database, sql: str, params: tuple[Any, ...] = ()) -> None:
    async with db.transaction() as conn:
        await conn.execute(sql, params)


async def fail_to_death(store: JobStore, queue: Queue, error: str = "boom") -> list[Any]:
    (job,) = await store.claim(queue, WORKER, 1)
    dead = await store.fail(job.job_id, error, worker_id=WORKER, retryable=False)
    assert dead is not None
    return dead


async def test_claim_orders_by_priority_then_age(db: Database, store: JobStore) -> None:
    low = NewJob(Queue.EXIFTOOL, {"n": "low"}, Priority.LOW)
    normal_old = NewJob(Queue.EXIFTOOL, {"n": "normal-old"})
    await add_jobs(db, low, normal_old, created_at="2025-01-01T00:00:00.000Z")
    normal_new = NewJob(Queue.EXIFTOOL, {"n": "normal-new"})
    high = NewJob(Queue.EXIFTOOL, {"n": "high"}, Priority.HIGH)
    await add_jobs(db, normal_new, high, created_at="2025-01-02T00:00:00.000Z")
    # Same priority and created_at: insertion order (rowid) decides.
    tie_a = NewJob(Queue.EXIFTOOL, {"n": "tie-a"}, Priority.LOW)
    tie_b = NewJob(Queue.EXIFTOOL, {"n": "tie-b"}, Priority.LOW)
    await add_jobs(db, tie_a, tie_b, created_at="2025-01-03T00:00:00.000Z")
    await add_jobs(db, NewJob(Queue.THUMBNAIL, {"n": "other queue"}, Priority.HIGH))

    first = await store.claim(Queue.EXIFTOOL, WORKER, 1)
    rest = await store.claim(Queue.EXIFTOOL, WORKER, 10)

    assert [j.payload["n"] for j in first + rest] == [
        "high",
        "normal-old",
        "normal-new",
        "low",
        "tie-a",
        "tie-b",
    ]


async def test_a_claim_walks_the_index_and_never_sorts_the_queue(db: Database) -> None:
    """With 100 000 jobs waiting, sorting them all on every claim took 230 ms of the write lock."""
    plan = await db.fetch_all(
        "EXPLAIN QUERY PLAN " + _SELECT_CLAIMABLE, (Queue.THUMBNAIL.value, now_iso(), None, None, 2)
    )
    details = [row["detail"] for row in plan]
    assert any("USING INDEX idx_jobs_queue_status_priority" in d for d in details), details
    assert not any("TEMP B-TREE" in d for d in details), details


async def test_listing_dead_letters_never_sorts_them_all(db: Database) -> None:
    """The renderer lists them; with 120 000 dead letters a sort of all of them took 124 ms a call."""
    sql = _DEAD_LETTERS.format(queues="?")
    plan = await db.fetch_all("EXPLAIN QUERY PLAN " + sql, (None, None, "thumbnail", 100))
    details = [row["detail"] for row in plan]
    assert not any("TEMP B-TREE" in d for d in details), details


async def test_claim_returns_post_claim_values(db: Database, store: JobStore) -> None:
    (job_id,) = await add_jobs(db, NewJob(Queue.FFPROBE, {"hash": "ab"}, Priority.HIGH))

    (job,) = await store.claim(Queue.FFPROBE, WORKER, 5)

    assert isinstance(job, ClaimedJob)
    assert (job.job_id, job.queue, job.priority, job.payload) == (job_id, Queue.FFPROBE, 50, {"hash": "ab"})
    assert (job.attempts, job.max_attempts, job.locked_by) == (1, 3, WORKER)
    row = await job_row(db, job_id)
    assert row["status"] == "processing"
    assert row["attempts"] == 1
    assert row["locked_by"] == WORKER
    assert row["locked_at"] == row["started_at"] == job.locked_at
    assert await store.claim(Queue.FFPROBE, WORKER, 5) == []


async def test_concurrent_claimers_never_get_the_same_job(tmp_path: Path) -> None:
    first_db = await Database.open(tmp_path / "x.db")
    second_db = await Database.open(tmp_path / "x.db")
    try:
        ids = await add_jobs(first_db, *(NewJob(Queue.THUMBNAIL, {"i": i}) for i in range(40)))
        stores = [JobStore(first_db), JobStore(second_db)]
        # Twenty claims of two at once, ten through each connection: if any two claims shared a
        # job, fewer than all forty would be handed out.
        batches = await asyncio.gather(
            *(store.claim(Queue.THUMBNAIL, f"w-{n}", 2) for _ in range(10) for n, store in enumerate(stores))
        )
    finally:
        await first_db.close()
        await second_db.close()

    claimed = [job.job_id for batch in batches for job in batch]
    assert [len(batch) for batch in batches] == [2] * 20
    assert sorted(claimed) == sorted(ids)
    by_worker = {job.locked_by for batch in batches[1::2] for job in batch}
    assert by_worker == {"w-1"}


async def test_child_waits_for_parent_and_runs_after_it_completes(db: Database, store: JobStore) -> None:
    parent = NewJob(Queue.EXIFTOOL, {"hash": "p"})
    child = NewJob(Queue.THUMBNAIL, {"hash": "c"}, Priority.HIGH, depends_on=parent.job_id)
    await add_jobs(db, parent, child)

    assert await store.claim(Queue.THUMBNAIL, WORKER, 5) == []
    (claimed,) = await store.claim(Queue.EXIFTOOL, WORKER, 5)
    assert await store.claim(Queue.THUMBNAIL, WORKER, 5) == []  # processing is not completed

    unblocked = await store.complete(claimed.job_id, {"ok": True}, worker_id=WORKER)

    assert unblocked == [Queue.THUMBNAIL]
    row = await job_row(db, parent.job_id)
    assert (row["status"], row["result"], row["locked_by"]) == ("completed", '{"ok":true}', None)
    assert row["completed_at"] is not None
    assert [j.job_id for j in await store.claim(Queue.THUMBNAIL, WORKER, 5)] == [child.job_id]


async def test_live_photo_waits_until_no_metadata_job_is_left(db: Database, store: JobStore) -> None:
    """A Live Photo needs the metadata of every file of its import (SPEC §6), more than one parent."""
    await add_jobs(db, NewJob(Queue.EXIFTOOL, {"n": 1}), NewJob(Queue.EXIFTOOL, {"n": 2}))
    [live] = await add_jobs(db, NewJob(Queue.LIVE_PHOTO, {"locid": "l"}))
    assert await store.claim(Queue.LIVE_PHOTO, WORKER, 1) == []
    claimed = await store.claim(Queue.EXIFTOOL, WORKER, 1)
    await store.complete(claimed[0].job_id, None, worker_id=WORKER)
    assert await store.claim(Queue.LIVE_PHOTO, WORKER, 1) == []  # one still pending
    claimed = await store.claim(Queue.EXIFTOOL, WORKER, 1)
    assert await store.claim(Queue.LIVE_PHOTO, WORKER, 1) == []  # and now processing
    # A dead metadata job ends the wait too: the Live Photo links what has metadata.
    await store.fail(claimed[0].job_id, "unreadable", worker_id=WORKER, retryable=False)
    [job] = await store.claim(Queue.LIVE_PHOTO, WORKER, 1)
    assert job.job_id == live


async def test_dead_parent_kills_its_children_transitively(db: Database, store: JobStore) -> None:
    parent = NewJob(Queue.EXIFTOOL, {"hash": "p"})
    child = NewJob(Queue.THUMBNAIL, {"hash": "c"}, depends_on=parent.job_id)
    sibling = NewJob(Queue.FFPROBE, {"hash": "s"}, depends_on=parent.job_id)
    grandchild = NewJob(Queue.VIDEO_PROXY, {"hash": "g"}, depends_on=child.job_id)
    unrelated = NewJob(Queue.THUMBNAIL, {"hash": "u"})
    await add_jobs(db, parent, child, sibling, grandchild, unrelated)

    entries = await fail_to_death(store, Queue.EXIFTOOL, "exiftool crashed")

    by_job = {entry.job_id: entry for entry in entries}
    assert entries[0].job_id == parent.job_id
    assert set(by_job) == {parent.job_id, child.job_id, sibling.job_id, grandchild.job_id}
    child_error = f"Dependency {parent.job_id} (exiftool) is dead: exiftool crashed"
    assert by_job[child.job_id].error == child_error
    assert by_job[sibling.job_id].error == child_error
    assert by_job[grandchild.job_id].error == f"Dependency {child.job_id} (thumbnail) is dead: {child_error}"
    assert by_job[grandchild.job_id].queue is Queue.VIDEO_PROXY
    for job in (parent, child, sibling, grandchild):
        row = await job_row(db, job.job_id)
        assert (row["status"], row["error"]) == ("dead", by_job[job.job_id].error)
    assert (await job_row(db, unrelated.job_id))["status"] == "pending"
    rows = await db.fetch_all("SELECT job_id, error, acknowledged FROM job_dead_letter ORDER BY id")
    assert [(r["job_id"], r["error"], r["acknowledged"]) for r in rows] == [
        (e.job_id, e.error, 0) for e in entries
    ]


async def test_retry_after_is_respected(db: Database, store: JobStore) -> None:
    (job_id,) = await add_jobs(db, NewJob(Queue.BAGIT, {"locid": "x"}))
    await execute(
        db, "UPDATE jobs SET retry_after = ? WHERE job_id = ?", (now_iso(timedelta(hours=1)), job_id)
    )

    assert await store.claim(Queue.BAGIT, WORKER, 1) == []
    wait = await store.next_wakeup(Queue.BAGIT)
    assert wait is not None and 3590 < wait <= 3600

    await execute(
        db, "UPDATE jobs SET retry_after = ? WHERE job_id = ?", (now_iso(-timedelta(seconds=1)), job_id)
    )

    assert await store.next_wakeup(Queue.BAGIT) is None  # already due: nothing to wait for
    assert [j.job_id for j in await store.claim(Queue.BAGIT, WORKER, 1)] == [job_id]


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [(0, 1.0), (1, 2.0), (2, 4.0), (5, 32.0), (6, 60.0), (30, 60.0)],
)
def test_backoff_is_capped_exponential_with_jitter(attempts: int, expected: float) -> None:
    assert backoff_s(attempts, rng=lambda: 0.5) == pytest.approx(expected)
    assert backoff_s(attempts, rng=lambda: 0.0) == pytest.approx(expected * 0.8)
    assert backoff_s(attempts, rng=lambda: 1.0) == pytest.approx(expected * 1.2)
    samples = [backoff_s(attempts) for _ in range(200)]
    assert all(expected * 0.8 <= s <= expected * 1.2 for s in samples)
    assert len(set(samples)) > 1  # jitter actually varies


async def test_failure_below_max_goes_back_to_pending_after_backoff(db: Database) -> None:
    store = JobStore(db, rng=lambda: 0.5)
    (job_id,) = await add_jobs(db, NewJob(Queue.EXIFTOOL, {"hash": "a"}))
    (job,) = await store.claim(Queue.EXIFTOOL, WORKER, 1)
    before = now_iso(timedelta(seconds=2))

    assert await store.fail(job.job_id, "flaky", worker_id=WORKER) == []

    after = now_iso(timedelta(seconds=2))
    row = await job_row(db, job_id)
    assert (row["status"], row["error"], row["last_error"]) == ("pending", None, "flaky")
    assert (row["locked_by"], row["locked_at"], row["attempts"]) == (None, None, 1)
    assert before <= row["retry_after"] <= after  # 1 s · 2^1, no jitter at rng 0.5
    assert await store.claim(Queue.EXIFTOOL, WORKER, 1) == []


async def test_max_attempts_makes_the_job_dead_with_a_dead_letter(db: Database, store: JobStore) -> None:
    (job_id,) = await add_jobs(db, NewJob(Queue.THUMBNAIL, {"hash": "h"}))
    results = []
    for _ in range(3):
        (job,) = await store.claim(Queue.THUMBNAIL, WORKER, 1)
        failed = await store.fail(job.job_id, f"try {job.attempts}", worker_id=WORKER)
        assert failed is not None
        results.append(failed)
        await execute(db, "UPDATE jobs SET retry_after = NULL WHERE job_id = ?", (job_id,))

    assert results[:2] == [[], []]
    (entry,) = results[2]
    assert (entry.job_id, entry.queue, entry.error, entry.attempts) == (job_id, Queue.THUMBNAIL, "try 3", 3)
    assert entry.payload == {"hash": "h"} and entry.acknowledged is False
    row = await job_row(db, job_id)
    assert (row["status"], row["error"], row["locked_by"]) == ("dead", "try 3", None)
    assert row["completed_at"] == entry.failed_at
    dlq = await db.fetch_one("SELECT * FROM job_dead_letter WHERE id = ?", (entry.id,))
    assert dlq is not None
    assert (dlq["job_id"], dlq["queue"], dlq["payload"], dlq["attempts"], dlq["acknowledged"]) == (
        job_id,
        "thumbnail",
        '{"hash":"h"}',
        3,
        0,
    )
    assert dlq["failed_at"].endswith("Z")
    assert await store.claim(Queue.THUMBNAIL, WORKER, 1) == []


async def test_finishing_only_acts_on_the_callers_processing_job(db: Database, store: JobStore) -> None:
    (job_id,) = await add_jobs(db, NewJob(Queue.EXIFTOOL, {}))
    assert await store.fail(job_id, "not claimed", worker_id=WORKER, retryable=False) is None
    (job,) = await store.claim(Queue.EXIFTOOL, WORKER, 1)

    assert await store.complete(job_id, None, worker_id="someone-else") is None
    assert await store.fail(job_id, "x", worker_id="someone-else", retryable=False) is None
    assert (await job_row(db, job_id))["status"] == "processing"

    await store.complete(job.job_id, None, worker_id=WORKER)
    assert await store.fail(job_id, "late", worker_id=WORKER, retryable=False) is None
    row = await job_row(db, job_id)
    assert (row["status"], row["result"], row["error"]) == ("completed", None, None)


async def test_stats_cover_every_queue_and_count_dead(db: Database, store: JobStore) -> None:
    await add_jobs(db, NewJob(Queue.EXIFTOOL, {}), NewJob(Queue.EXIFTOOL, {}), NewJob(Queue.BAGIT, {}))
    await fail_to_death(store, Queue.BAGIT)
    await store.claim(Queue.EXIFTOOL, WORKER, 1)

    stats = await store.stats()

    assert list(stats) == [q.value for q in Queue]
    assert stats["exiftool"] == {"pending": 1, "processing": 1, "completed": 0, "failed": 0, "dead": 0}
    assert stats["bagit"]["dead"] == 1
    assert stats["location-stats"] == dict.fromkeys(
        ("pending", "processing", "completed", "failed", "dead"), 0
    )
    assert CONTRACT.result_issues("jobs:status", stats) == []


async def test_dead_letters_shape_order_and_limit(db: Database, store: JobStore) -> None:
    async with db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO job_dead_letter (job_id, queue, payload, error, attempts, failed_at, acknowledged)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    f"job-{i}",
                    "thumbnail" if i % 2 else "exiftool",
                    f'{{"i": {i}}}',
                    f"e{i}",
                    3,
                    f"2025-01-01T00:{i // 60:02d}:{i % 60:02d}.000Z",
                    i % 3 == 0,
                )
                for i in range(105)
            ],
        )

    entries = await store.dead_letters()
    thumbs = await store.dead_letters(Queue.THUMBNAIL)

    assert len(entries) == 100
    assert [e.job_id for e in entries[:2]] == ["job-104", "job-103"]
    assert [e.failed_at for e in entries] == sorted((e.failed_at for e in entries), reverse=True)
    assert {e.queue for e in thumbs} == {Queue.THUMBNAIL} and len(thumbs) == 52
    wire = [dead_letter_entry(e) for e in entries]
    assert CONTRACT.result_issues("jobs:deadLetter", wire) == []
    assert wire[0] == {
        "id": entries[0].id,
        "jobId": "job-104",
        "originalJobId": "job-104",
        "queue": "exiftool",
        "payload": {"i": 104},
        "error": "e104",
        "attempts": 3,
        "failedAt": "2025-01-01T00:01:44.000Z",
        "acknowledged": False,
    }
    assert (wire[2]["jobId"], wire[2]["acknowledged"]) == ("job-102", True)  # acknowledged ones listed too
    # The event is the entry plus the later app's timestamp (api/jobs.py's JobNotifier adds it).
    assert (
        CONTRACT.notification_issues("jobs:deadLetter", {**wire[0], "timestamp": wire[0]["failedAt"]}) == []
    )


async def test_retry_dead_letter_keeps_queue_priority_payload(db: Database, store: JobStore) -> None:
    await add_jobs(db, NewJob(Queue.VIDEO_PROXY, {"hash": "v"}, Priority.HIGH))
    await execute(db, "UPDATE jobs SET max_attempts = 5")
    (entry,) = await fail_to_death(store, Queue.VIDEO_PROXY)

    new_id = await store.retry_dead_letter(entry.id)

    assert new_id is not None and new_id != entry.job_id
    row = await job_row(db, new_id)
    assert (row["queue"], row["priority"], row["max_attempts"], row["status"]) == (
        "video-proxy",
        50,
        5,
        "pending",
    )
    assert (row["payload"], row["depends_on"], row["attempts"]) == ('{"hash":"v"}', None, 0)
    assert (await store.dead_letters())[0].acknowledged is True
    # An acknowledged entry can be retried again: another job.
    again = await store.retry_dead_letter(entry.id)
    assert again is not None and again not in (new_id, entry.job_id)
    assert await store.retry_dead_letter(entry.id + 1000) is None
    assert (await store.stats())["video-proxy"]["pending"] == 2


async def test_acknowledge_counts_only_rows_it_changed(db: Database, store: JobStore) -> None:
    await add_jobs(db, *(NewJob(Queue.LIVE_PHOTO, {"i": i}) for i in range(3)))
    ids = [(await fail_to_death(store, Queue.LIVE_PHOTO))[0].id for _ in range(3)]

    assert await store.acknowledge([ids[0], ids[1], ids[1], 9999]) == 2
    assert await store.acknowledge(ids) == 1
    assert await store.acknowledge(ids) == 0
    assert await store.acknowledge([]) == 0
    assert all(e.acknowledged for e in await store.dead_letters())


async def test_clear_completed_keeps_parents_of_waiting_children(db: Database, store: JobStore) -> None:
    waited_on = NewJob(Queue.EXIFTOOL, {"n": "parent of pending"})
    running_parent = NewJob(Queue.EXIFTOOL, {"n": "parent of processing"})
    free = NewJob(Queue.EXIFTOOL, {"n": "no waiting child"})
    finished_parent = NewJob(Queue.EXIFTOOL, {"n": "parent of completed"})
    recent = NewJob(Queue.EXIFTOOL, {"n": "recent"})
    await add_jobs(db, waited_on, running_parent, free, finished_parent, recent)
    pending_child = NewJob(Queue.THUMBNAIL, {}, depends_on=waited_on.job_id)
    processing_child = NewJob(Queue.FFPROBE, {}, depends_on=running_parent.job_id)
    done_child = NewJob(Queue.BAGIT, {}, depends_on=finished_parent.job_id)
    await add_jobs(db, pending_child, processing_child, done_child)
    old = now_iso(-timedelta(days=2))
    await execute(
        db, "UPDATE jobs SET status = 'completed', completed_at = ? WHERE queue = 'exiftool'", (old,)
    )
    # A second ago, not now: `clearCompleted(0)` clears what completed before this millisecond, and
    # the whole test can run within one (it did, once).
    just_now = now_iso(-timedelta(seconds=1))
    await execute(db, "UPDATE jobs SET completed_at = ? WHERE job_id = ?", (just_now, recent.job_id))
    await execute(db, "UPDATE jobs SET status = 'processing' WHERE job_id = ?", (processing_child.job_id,))
    await execute(
        db,
        "UPDATE jobs SET status = 'completed', completed_at = ? WHERE job_id = ?",
        (just_now, done_child.job_id),
    )

    assert await store.clear_completed(24 * 3600 * 1000) == 2

    left = {r["job_id"] for r in await db.fetch_all("SELECT job_id FROM jobs")}
    assert free.job_id not in left and finished_parent.job_id not in left
    assert {waited_on.job_id, running_parent.job_id, recent.job_id, done_child.job_id} <= left
    assert await store.clear_completed(0) == 2  # recent and done_child; never the waited-on parents


async def test_release_stale_frees_processing_jobs_without_counting_again(
    db: Database, store: JobStore
) -> None:
    ids = await add_jobs(db, *(NewJob(Queue.EXIFTOOL, {"i": i}) for i in range(3)))
    await store.claim(Queue.EXIFTOOL, "old-run-1", 2)
    # The second is held by another worker (the app's), its lock fresh at first.
    await execute(db, "UPDATE jobs SET locked_by = 'worker-1a2b3c4d' WHERE job_id = ?", (ids[1],))

    assert await store.release_stale("old-run-", "2000-01-01T00:00:00.000Z") == 1  # ours only
    assert await store.release_stale("old-run-", "2000-01-01T00:00:00.000Z") == 0
    assert await store.release_stale("old-run-", "2999-01-01T00:00:00.000Z") == 1  # theirs, now stale

    rows = [await job_row(db, job_id) for job_id in ids]
    assert [(r["status"], r["locked_by"], r["locked_at"]) for r in rows] == [("pending", None, None)] * 3
    assert [r["attempts"] for r in rows] == [1, 1, 0]
    assert len(await store.claim(Queue.EXIFTOOL, WORKER, 5)) == 3


async def test_release_returns_a_stopped_job_without_consuming_an_attempt(
    db: Database, store: JobStore
) -> None:
    (job_id,) = await add_jobs(db, NewJob(Queue.EXIFTOOL, {}))
    await store.claim(Queue.EXIFTOOL, WORKER, 1)

    assert await store.release(job_id, worker_id="not-me") is False
    assert await store.release(job_id, worker_id=WORKER) is True

    row = await job_row(db, job_id)
    assert (row["status"], row["locked_by"], row["attempts"]) == ("pending", None, 0)


async def test_jobs_api_shapes_results(db: Database, store: JobStore) -> None:
    api = JobsApi(store, None, None)
    await add_jobs(db, NewJob(Queue.EXIFTOOL, {"x": 1}))
    (entry,) = await fail_to_death(store, Queue.EXIFTOOL)

    status = await api.status()
    letters = await api.dead_letter()
    retried = await api.retry({"deadLetterId": entry.id})
    missing = await api.retry({"deadLetterId": 4242})

    assert status["exiftool"]["dead"] == 1
    assert CONTRACT.result_issues("jobs:status", status) == []
    assert [e["jobId"] for e in letters] == [entry.job_id]
    assert await api.dead_letter("thumbnail") == []
    assert retried["success"] is True and CONTRACT.result_issues("jobs:retry", retried) == []
    assert missing == {"success": False, "newJobId": None}
    assert await api.acknowledge([entry.id]) == {"acknowledged": 0}  # retry acknowledged it
    assert await api.clear_completed() == {"cleared": 0}
    await execute(
        db, "UPDATE jobs SET status = 'completed', completed_at = ?", (now_iso(-timedelta(hours=1)),)
    )
    assert await api.clear_completed(None) == {"cleared": 0}
    assert await api.clear_completed(0) == {"cleared": 2}


async def test_jobs_api_without_database_reports_why() -> None:
    api = JobsApi(None, None, SchemaTooOld(missing=["jobs.retry_after"]))
    with pytest.raises(SchemaTooOld):
        await api.status()


def test_job_ids_are_distinct_version_4_uuids_in_their_text_form() -> None:
    ids = [new_job_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert (str(parsed), parsed.version, parsed.variant) == (text, 4, uuid.RFC_4122)
