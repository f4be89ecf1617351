"""The sidecar's job queue beside the app's own job worker, played here with that worker's SQL
(bizzlechizzle/au-archive @38845de, electron/services/job-queue.ts `getNext` and `complete`): every
claim first resets any job `processing` for over 5 minutes to `pending`, whoever holds it, then
claims; a completion is written unconditionally."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from sidecar.db.connection import Database
from sidecar.jobs import coexistence
from sidecar.jobs.handlers import JobContext
from sidecar.jobs.scheduler import JobScheduler
from sidecar.jobs.store import JobStore, NewJob, Queue
from sidecar.timestamps import now_iso
from sidecar.tools.discovery import Toolset
from tests.support.jobs import RecordedEvents, add_jobs, job_row

APP_WORKER = "worker-1a2b3c4d"
BOUND_S = 10


class AppWorker:
    """The first generation's job worker, its statements as job-queue.ts issues them."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def reset_stale(self, stale_after_s: float = 300) -> int:
        threshold = now_iso(timedelta(seconds=-stale_after_s))
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE jobs SET status = 'pending', locked_by = NULL, locked_at = NULL"
                " WHERE status = 'processing' AND locked_at < ?",
                (threshold,),
            )
            return cursor.rowcount

    async def claim(self, job_id: str) -> bool:
        now = now_iso()
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE jobs SET status = 'processing', locked_by = ?, locked_at = ?, started_at = ?,"
                " attempts = attempts + 1 WHERE job_id = ? AND status = 'pending' AND locked_by IS NULL",
                (APP_WORKER, now, now, job_id),
            )
            return cursor.rowcount == 1

    async def complete(self, job_id: str, result: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE jobs SET status = 'completed', result = ?, completed_at = ?, locked_by = NULL,"
                " locked_at = NULL WHERE job_id = ?",
                (result, now_iso(), job_id),
            )


class EndingStore(JobStore):
    """The real store, telling the test when our scheduler has written (or tried to) a job's end."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.ended = asyncio.Event()

    async def complete(
        self, job_id: str, result: dict[str, Any] | None, *, worker_id: str
    ) -> list[Queue] | None:
        try:
            return await super().complete(job_id, result, worker_id=worker_id)
        finally:
            self.ended.set()


@pytest.fixture
async def transcoding(db: Database) -> AsyncIterator[tuple[JobScheduler, str, EndingStore, asyncio.Event]]:
    """Our scheduler running a long video-proxy job: (scheduler, job id, its store, let it finish)."""
    started, finish = asyncio.Event(), asyncio.Event()
    store = EndingStore(db)

    async def long_transcode(ctx: JobContext) -> dict[str, Any]:
        started.set()
        await finish.wait()
        return {"by": "sidecar"}

    async def tools() -> Toolset:
        return Toolset(None, None, None)

    async def archive_root() -> str | None:
        return "/archive"

    scheduler = JobScheduler(
        store,
        {Queue.VIDEO_PROXY: long_transcode},
        tools=tools,
        archive_root=archive_root,
        events=RecordedEvents(),
    )
    (job_id,) = await add_jobs(db, NewJob(Queue.VIDEO_PROXY, {"hash": "h"}))
    task = asyncio.create_task(scheduler.run(), name="jobs-under-test")
    async with asyncio.timeout(BOUND_S):
        await started.wait()
    yield scheduler, job_id, store, finish
    finish.set()
    await scheduler.stop(1)
    async with asyncio.timeout(BOUND_S):
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_long_job_keeps_its_lock_fresh_so_the_app_never_takes_it(
    db: Database, transcoding: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler, job_id, store, finish = transcoding
    # As if it had been transcoding for 10 minutes: the app's next claim would reset it...
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE jobs SET locked_at = ? WHERE job_id = ?", (now_iso(timedelta(minutes=-10)), job_id)
        )
    # ...but the lock is refreshed first (the heartbeat, run once here rather than waited for).
    await JobStore(db).touch([job_id], worker_id=scheduler.worker_id)
    assert await AppWorker(db).reset_stale() == 0
    finish.set()
    async with asyncio.timeout(BOUND_S):
        await store.ended.wait()
    assert (await job_row(db, job_id))["result"] == '{"by":"sidecar"}'
    assert scheduler.watch.others == []


async def test_a_job_the_app_took_from_us_keeps_the_app_s_end_and_the_other_worker_is_shown(
    db: Database, transcoding: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler, job_id, _, finish = transcoding
    noticed = asyncio.Event()
    notice = scheduler.watch.noticed

    def noticing(locked_by: str | None, how: str) -> None:
        notice(locked_by, how)
        noticed.set()

    monkeypatch.setattr(scheduler.watch, "noticed", noticing)
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE jobs SET locked_at = ? WHERE job_id = ?", (now_iso(timedelta(minutes=-10)), job_id)
        )
    app = AppWorker(db)
    assert await app.reset_stale() == 1
    assert await app.claim(job_id)
    await app.complete(job_id, '{"by":"app"}')

    finish.set()  # our transcode ends after the app's
    async with asyncio.timeout(BOUND_S):
        await noticed.wait()

    row = await job_row(db, job_id)
    assert (row["status"], row["result"], row["attempts"]) == ("completed", '{"by":"app"}', 2)
    [other] = scheduler.watch.others
    assert other.how == "took a job of ours"
    assert await db.fetch_all("SELECT * FROM job_dead_letter") == []


async def test_a_job_the_app_holds_is_noticed_and_never_taken_over(
    db: Database, transcoding: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler, _, _, _ = transcoding
    (theirs,) = await add_jobs(db, NewJob(Queue.THUMBNAIL, {"hash": "t"}))
    assert await AppWorker(db).claim(theirs)
    # The patrol's look around, run once here.
    for locked_by in await JobStore(db).other_lockers(scheduler.worker_id):
        scheduler.watch.noticed(locked_by, "holds a job")
    assert [(o.locked_by, o.how) for o in scheduler.watch.others] == [(APP_WORKER, "holds a job")]
    # A sidecar starting now releases what sidecars held (one sidecar per database: a lock of
    # ours at start is a crashed run's), and leaves the app's fresh lock alone.
    others_before = now_iso(timedelta(seconds=-coexistence.APP_STALE_LOCK_S))
    assert await JobStore(db).release_stale("sidecar-", others_before) == 1
    assert (await job_row(db, theirs))["locked_by"] == APP_WORKER
