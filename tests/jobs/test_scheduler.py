"""JobScheduler with small handlers defined here, over a real SQLite file. No sleeps: every wait
is on an event or a store call, bounded by `asyncio.timeout`."""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest

from sidecar.db.connection import Database
from sidecar.jobs.handlers import JobContext, JobHandler
from sidecar.jobs.scheduler import JobScheduler
from sidecar.jobs.store import DeadLetterEntry, JobStore, NewJob, Queue
from sidecar.rpc.contract import Contract
from sidecar.tools.discovery import Toolset
from tests.support.jobs import RecordedEvents, add_jobs, job_row

BOUND_S = 5.0
CONTRACT = Contract.load()


class RecordingStore(JobStore):
    """The real store, telling the test when a job's end has been written."""

    def __init__(self, db: Database, **options: Any) -> None:
        super().__init__(db, **options)
        self.completed: asyncio.Queue[str] = asyncio.Queue()
        self.failed: asyncio.Queue[str] = asyncio.Queue()

    async def complete(
        self, job_id: str, result: dict[str, Any] | None, *, worker_id: str
    ) -> list[Queue] | None:
        unblocked = await super().complete(job_id, result, worker_id=worker_id)
        self.completed.put_nowait(job_id)
        return unblocked

    async def fail(
        self, job_id: str, error: str, *, worker_id: str, retryable: bool = True
    ) -> list[DeadLetterEntry] | None:
        dead = await super().fail(job_id, error, worker_id=worker_id, retryable=retryable)
        self.failed.put_nowait(job_id)
        return dead


@pytest.fixture
def store(db: Database) -> RecordingStore:
    return RecordingStore(db, backoff_base_s=0.001)


@pytest.fixture
async def start(store: RecordingStore) -> AsyncIterator[Callable[..., Any]]:
    started: list[tuple[JobScheduler, asyncio.Task[None]]] = []
    events = RecordedEvents()

    async def tools() -> Toolset:
        return Toolset(None, None, None)

    async def archive_root() -> str | None:
        return "/archive"

    async def make(
        handlers: Mapping[Queue, JobHandler], **options: Any
    ) -> tuple[JobScheduler, RecordedEvents]:
        scheduler = JobScheduler(
            store, handlers, tools=tools, archive_root=archive_root, events=events, **options
        )
        task = asyncio.create_task(scheduler.run(), name="jobs-test")
        started.append((scheduler, task))
        return scheduler, events

    yield make

    for scheduler, task in started:
        await scheduler.stop(0)
        async with asyncio.timeout(BOUND_S):
            await task


async def next_of(queue: "asyncio.Queue[Any]") -> Any:
    async with asyncio.timeout(BOUND_S):
        return await queue.get()


async def test_fills_every_free_slot(db: Database, store: RecordingStore, start: Any) -> None:
    running: list[str] = []
    two_running = asyncio.Event()
    release = asyncio.Event()

    async def handler(ctx: JobContext) -> dict[str, Any]:
        running.append(ctx.job_id)
        if len(running) == 2:
            two_running.set()
        await release.wait()
        return {"n": ctx.payload["n"]}

    ids = await add_jobs(db, *(NewJob(Queue.EXIFTOOL, {"n": n}) for n in range(3)))
    scheduler, _ = await start({Queue.EXIFTOOL: handler})
    scheduler.wake()

    async with asyncio.timeout(BOUND_S):
        await two_running.wait()
    assert sorted(running) == sorted(ids[:2])  # both slots at once, oldest first
    assert [(await job_row(db, i))["status"] for i in ids] == ["processing", "processing", "pending"]

    release.set()
    done = {await next_of(store.completed) for _ in range(3)}
    assert done == set(ids)
    assert (await job_row(db, ids[2]))["result"] == '{"n":2}'


async def test_wake_starts_new_work_immediately(db: Database, store: RecordingStore, start: Any) -> None:
    seen: asyncio.Queue[JobContext] = asyncio.Queue()

    async def handler(ctx: JobContext) -> None:
        seen.put_nowait(ctx)

    (first,) = await add_jobs(db, NewJob(Queue.THUMBNAIL, {"hash": "first"}))
    scheduler, _ = await start({Queue.THUMBNAIL: handler})
    assert scheduler.worker_id.startswith("sidecar-")
    # The start-up claim found one job for two slots: the queue is now idle, with nothing due, and
    # claims again only when woken (there is no poll that would find the next job).
    assert (await next_of(seen)).job_id == first
    assert await next_of(store.completed) == first
    (job_id,) = await add_jobs(db, NewJob(Queue.THUMBNAIL, {"hash": "abc"}))
    scheduler.wake([Queue.THUMBNAIL])

    ctx = await next_of(seen)
    assert (ctx.job_id, ctx.queue, ctx.payload, ctx.attempt) == (job_id, Queue.THUMBNAIL, {"hash": "abc"}, 1)
    assert (ctx.archive_root, ctx.db, ctx.tools) == ("/archive", db, Toolset(None, None, None))
    assert await next_of(store.completed) == job_id
    assert (await job_row(db, job_id))["status"] == "completed"
    assert "jobs-thumbnail" in {t.get_name() for t in asyncio.all_tasks()}


async def test_children_run_once_their_parent_completes(
    db: Database, store: RecordingStore, start: Any
) -> None:
    order: list[str] = []

    async def handler(ctx: JobContext) -> None:
        order.append(ctx.payload["name"])

    parent = NewJob(Queue.EXIFTOOL, {"name": "parent"})
    child = NewJob(Queue.THUMBNAIL, {"name": "child"}, depends_on=parent.job_id)
    await add_jobs(db, parent, child)
    scheduler, _ = await start({Queue.EXIFTOOL: handler, Queue.THUMBNAIL: handler})
    scheduler.wake()

    assert {await next_of(store.completed), await next_of(store.completed)} == {parent.job_id, child.job_id}
    assert order == ["parent", "child"]


async def test_failing_job_is_retried_then_dead_with_a_notification(
    db: Database, store: RecordingStore, start: Any, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[int] = []

    async def handler(ctx: JobContext) -> None:
        attempts.append(ctx.attempt)
        raise RuntimeError(f"boom {ctx.attempt}")

    parent = NewJob(Queue.FFPROBE, {"hash": "f"})
    child = NewJob(Queue.THUMBNAIL, {"hash": "f"}, depends_on=parent.job_id)
    await add_jobs(db, parent, child)
    with caplog.at_level(logging.INFO, logger="sidecar.jobs.scheduler"):
        scheduler, events = await start({Queue.FFPROBE: handler})
        scheduler.wake()
        first = await next_of(events.dead)
        second = await next_of(events.dead)

    assert attempts == [1, 2, 3]  # each retry came after its backoff, without any wake()
    assert (first["jobId"], first["queue"], first["error"], first["attempts"]) == (
        parent.job_id,
        "ffprobe",
        "boom 3",
        3,
    )
    assert second["jobId"] == child.job_id
    assert second["error"] == f"Dependency {parent.job_id} (ffprobe) is dead: boom 3"
    for payload in (first, second):
        assert CONTRACT.notification_issues("jobs:deadLetter", payload) == []
    parent_row = await job_row(db, parent.job_id)
    assert (parent_row["status"], parent_row["attempts"], parent_row["error"]) == ("dead", 3, "boom 3")
    assert (await job_row(db, child.job_id))["status"] == "dead"
    actions = [getattr(r, "action", None) for r in caplog.records]
    assert actions.count("jobs.failed") == 2 and actions.count("jobs.dead") == 1


async def test_a_retried_job_can_succeed(db: Database, store: RecordingStore, start: Any) -> None:
    async def handler(ctx: JobContext) -> dict[str, Any]:
        if ctx.attempt == 1:
            raise ValueError("first try fails")
        return {"attempt": ctx.attempt}

    (job_id,) = await add_jobs(db, NewJob(Queue.LIVE_PHOTO, {}))
    scheduler, events = await start({Queue.LIVE_PHOTO: handler})
    scheduler.wake()

    assert await next_of(store.completed) == job_id
    found = await job_row(db, job_id)
    assert (found["status"], found["attempts"], found["last_error"], found["result"]) == (
        "completed",
        2,
        "first try fails",
        '{"attempt":2}',
    )
    assert events.sent == []


async def test_hanging_job_times_out(db: Database, store: RecordingStore, start: Any) -> None:
    cancelled = asyncio.Event()

    async def handler(ctx: JobContext) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    (job_id,) = await add_jobs(db, NewJob(Queue.BAGIT, {}))
    async with db.transaction() as conn:
        await conn.execute("UPDATE jobs SET max_attempts = 1")
    scheduler, events = await start({Queue.BAGIT: handler}, timeouts_s={Queue.BAGIT: 0.05})
    scheduler.wake()

    entry = await next_of(events.dead)
    assert (entry["jobId"], entry["error"], entry["attempts"]) == (job_id, "timed out after 0.05 s", 1)
    assert cancelled.is_set()
    assert (await job_row(db, job_id))["status"] == "dead"


async def test_stop_releases_a_running_job_without_using_an_attempt(
    db: Database, store: RecordingStore, start: Any
) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def handler(ctx: JobContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    (job_id,) = await add_jobs(db, NewJob(Queue.VIDEO_PROXY, {}))
    scheduler, _ = await start({Queue.VIDEO_PROXY: handler})
    scheduler.wake()
    async with asyncio.timeout(BOUND_S):
        await started.wait()
    assert (await job_row(db, job_id))["attempts"] == 1

    await scheduler.stop(0.01)

    assert cancelled.is_set()
    found = await job_row(db, job_id)
    assert (found["status"], found["attempts"], found["locked_by"], found["locked_at"]) == (
        "pending",
        0,
        None,
        None,
    )
    assert store.completed.empty() and store.failed.empty()


async def test_stop_lets_a_job_finish_within_the_grace(
    db: Database, store: RecordingStore, start: Any
) -> None:
    started = asyncio.Event()
    finish = asyncio.Event()

    async def handler(ctx: JobContext) -> None:
        started.set()
        await finish.wait()

    (job_id,) = await add_jobs(db, NewJob(Queue.EXIFTOOL, {}))
    scheduler, _ = await start({Queue.EXIFTOOL: handler})
    scheduler.wake()
    async with asyncio.timeout(BOUND_S):
        await started.wait()

    stopping = asyncio.create_task(scheduler.stop(BOUND_S))
    finish.set()
    async with asyncio.timeout(BOUND_S):
        await stopping

    assert (await job_row(db, job_id))["status"] == "completed"


async def test_a_queue_without_handler_is_not_run(db: Database, store: RecordingStore, start: Any) -> None:
    async def handler(ctx: JobContext) -> None:
        return None

    orphan, served = await add_jobs(db, NewJob(Queue.LOCATION_STATS, {}), NewJob(Queue.EXIFTOOL, {}))
    scheduler, _ = await start({Queue.EXIFTOOL: handler})
    scheduler.wake()

    assert await next_of(store.completed) == served
    names = {t.get_name() for t in asyncio.all_tasks()}
    assert "jobs-exiftool" in names and "jobs-location-stats" not in names
    found = await job_row(db, orphan)
    assert (found["status"], found["attempts"]) == ("pending", 0)


async def test_run_releases_jobs_left_processing_by_an_earlier_run(
    db: Database, store: RecordingStore, start: Any
) -> None:
    async def handler(ctx: JobContext) -> None:
        return None

    (job_id,) = await add_jobs(db, NewJob(Queue.EXIFTOOL, {}))
    await store.claim(Queue.EXIFTOOL, "sidecar-crashed", 1)

    await start({Queue.EXIFTOOL: handler})

    assert await next_of(store.completed) == job_id
    assert (await job_row(db, job_id))["attempts"] == 2  # the interrupted try counted
