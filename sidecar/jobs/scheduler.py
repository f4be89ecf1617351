"""Runs the queues: one task per queue keeps every free slot of its concurrency busy.

It claims when woken (`wake()`: new jobs, a retry, a finished parent) or when the next retry falls
due, never on a fixed poll. It knows handlers only through `JobHandler`, and reports through the
injected event sink; it never imports `rpc/` or `api/`.
"""

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from sidecar.errors import PermanentFailure
from sidecar.jobs.coexistence import APP_STALE_LOCK_S, WorkerWatch
from sidecar.jobs.events import JobEvents
from sidecar.jobs.handlers import JobContext, JobHandler
from sidecar.jobs.store import WAITS_FOR_IDLE, ClaimedJob, DeadLetterEntry, JobStore, Queue
from sidecar.jobs.threads import JobThreads
from sidecar.log import get_logger
from sidecar.timestamps import now_iso
from sidecar.tools.discovery import Toolset

WORKER_PREFIX = "sidecar-"  # our job locks: `sidecar-<pid>-<random>`
CONCURRENCY: dict[Queue, int] = {
    Queue.EXIFTOOL: 2,
    Queue.THUMBNAIL: 2,
    Queue.FFPROBE: 2,
    Queue.VIDEO_PROXY: 1,
    Queue.LIVE_PHOTO: 1,
    Queue.BAGIT: 1,
    Queue.LOCATION_STATS: 1,
    Queue.GPS_ENRICHMENT: 1,
}
TIMEOUT_S: dict[Queue, float] = {
    Queue.EXIFTOOL: 60.0,
    Queue.THUMBNAIL: 120.0,
    Queue.FFPROBE: 60.0,
    Queue.VIDEO_PROXY: 6 * 3600.0,
    Queue.LIVE_PHOTO: 300.0,
    Queue.BAGIT: 6 * 3600.0,
    Queue.LOCATION_STATS: 300.0,
    Queue.GPS_ENRICHMENT: 60.0,
}
# After an unexpected database error in a queue loop or in writing a job's end (e.g. the app held
# the lock past our busy timeout): try again after this long (the loop sooner when woken).
ERROR_PAUSE_S = 1.0

log = get_logger(__name__)


class JobScheduler:
    def __init__(
        self,
        store: JobStore,
        handlers: Mapping[Queue, JobHandler],
        *,
        tools: Callable[[], Awaitable[Toolset]],
        archive_root: Callable[[], Awaitable[str | None]],
        events: JobEvents,
        concurrency: Mapping[Queue, int] | None = None,
        timeouts_s: Mapping[Queue, float] | None = None,
        worker_id: str | None = None,
    ) -> None:
        self._store = store
        self._handlers = dict(handlers)
        self._tools = tools
        self._archive_root = archive_root
        self._events = events
        self._concurrency = {**CONCURRENCY, **(concurrency or {})}
        self._timeouts_s = {**TIMEOUT_S, **(timeouts_s or {})}
        self.worker_id = worker_id or f"{WORKER_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # A thread for every job that can run at once (a job waits on one call at a time), so the
        # threads never hold a job back; they start only when a call finds none idle.
        self._threads = JobThreads(sum(max(n, 1) for n in self._concurrency.values()))
        self._woken = {queue: asyncio.Event() for queue in Queue}
        # A queue may have claimable jobs (set by wake() and when a retry falls due); a claim that
        # finds fewer than it asked for clears it, so a finished job alone does not cost a claim.
        self._dirty = dict.fromkeys(Queue, True)
        self._running: dict[asyncio.Task[None], ClaimedJob] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._stopped = asyncio.Event()
        self.watch = WorkerWatch(store, self.worker_id)

    def wake(self, queues: Iterable[Queue] | None = None) -> None:
        """Claim at once (all queues by default): call after committing new or retried jobs."""
        for queue in Queue if queues is None else queues:
            self._dirty[queue] = True
            self._woken[queue].set()

    async def run(self) -> None:
        """Release what an earlier run left `processing`, then serve until `stop()`."""
        others_before = now_iso(timedelta(seconds=-APP_STALE_LOCK_S))
        released = await self._store.release_stale(WORKER_PREFIX, others_before)
        if released:
            log.info("released stale jobs", extra={"action": "jobs.release_stale", "count": released})
        try:
            async with asyncio.TaskGroup() as tasks:
                running = lambda: [job.job_id for job in self._running.values()]  # noqa: E731
                tasks.create_task(self.watch.patrol(running, self._stop_requested), name="jobs-patrol")
                for queue, handler in self._handlers.items():
                    if not self._stopping:
                        self._loops.append(
                            tasks.create_task(self._serve(queue, handler), name=f"jobs-{queue.value}")
                        )
        finally:
            if self._stopping:
                await self._stopped.wait()  # stop() gives running jobs their grace
            else:
                await self._cancel_running()
                await self._threads.close()

    async def stop(self, grace_s: float) -> None:
        """Claim nothing more; give running jobs `grace_s` to finish, then cancel and release them
        (pending again, the stopped try not counted)."""
        self._stopping = True
        self._stop_requested.set()
        for event in self._woken.values():
            event.set()
        end = time.monotonic() + grace_s
        if self._loops:
            # A loop finishes its current claim (and releases what it got) before it returns.
            await asyncio.wait(self._loops, timeout=max(end - time.monotonic(), 0.001))
        if self._running:
            await asyncio.wait(list(self._running), timeout=max(end - time.monotonic(), 0.001))
        await self._cancel_running()
        await self._threads.close()  # a cancelled job's render or hashing may still be running
        for loop in self._loops:
            loop.cancel()
        self._stopped.set()

    async def _cancel_running(self) -> None:
        tasks = list(self._running)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, queue: Queue, handler: JobHandler) -> None:
        limit = max(self._concurrency.get(queue, 1), 1)
        woken = self._woken[queue]
        mine: set[asyncio.Task[None]] = set()
        while not self._stopping:
            woken.clear()
            delay: float | None = None
            try:
                free = limit - len(mine)
                if free > 0 and self._dirty[queue]:
                    self._dirty[queue] = False
                    claimed_at = now_iso()
                    jobs = await self._store.claim(queue, self.worker_id, free)
                    if self._stopping:
                        for job in jobs:
                            await self._store.release(job.job_id, worker_id=self.worker_id)
                        break
                    for job in jobs:
                        task = asyncio.create_task(self._run(job, handler), name=f"job-{job.job_id}")
                        self._running[task] = job
                        mine.add(task)
                        task.add_done_callback(lambda t: self._finished(t, mine, woken))
                    if len(jobs) == free:
                        self._dirty[queue] = True  # there may be more; claim when a slot frees
                    else:
                        delay = await self._store.next_wakeup(queue, after=claimed_at)
                elif free > 0:
                    delay = await self._store.next_wakeup(queue)
            except Exception:
                log.exception("queue loop error", extra={"action": "jobs.loop_error", "queue": queue.value})
                self._dirty[queue] = True
                delay = ERROR_PAUSE_S
            try:
                async with asyncio.timeout(delay):
                    await woken.wait()
            except TimeoutError:
                self._dirty[queue] = True  # a retry fell due

    def _finished(
        self, task: "asyncio.Task[None]", mine: set["asyncio.Task[None]"], woken: asyncio.Event
    ) -> None:
        mine.discard(task)
        job = self._running.pop(task, None)
        woken.set()
        if job is not None:
            # Queues waiting for this one to go idle may be able to claim now.
            self.wake(waiting for waiting, barrier in WAITS_FOR_IDLE.items() if barrier is job.queue)

    async def _run(self, job: ClaimedJob, handler: JobHandler) -> None:
        started = time.monotonic()
        timeout_s = self._timeouts_s.get(job.queue, TIMEOUT_S[job.queue])
        error: str | None = None
        retryable = True
        result: dict[str, Any] | None = None
        deadline = asyncio.timeout(timeout_s)
        try:
            context = JobContext(
                job_id=job.job_id,
                queue=job.queue,
                payload=job.payload,
                attempt=job.attempts,
                db=self._store.db,
                tools=await self._tools(),
                archive_root=await self._archive_root(),
                events=self._events,
                threads=self._threads,
            )
            async with deadline:
                result = await handler(context)
        except asyncio.CancelledError:
            # Stopped by shutdown: not an attempt. Shielded so the release runs to its end.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._store.release(job.job_id, worker_id=self.worker_id))
            raise
        except TimeoutError:
            error = f"timed out after {timeout_s:g} s" if deadline.expired() else "TimeoutError"
        except Exception as exc:
            error = str(exc) or type(exc).__name__
            retryable = not isinstance(exc, PermanentFailure)
        # The end of a job that ran is always written, even when shutdown cancels us meanwhile.
        end = asyncio.create_task(
            self._record_end(job, result, error, retryable, started), name=f"job-{job.job_id}-end"
        )
        try:
            await asyncio.shield(end)
        except asyncio.CancelledError:
            await end
            raise

    async def _record_end(
        self,
        job: ClaimedJob,
        result: dict[str, Any] | None,
        error: str | None,
        retryable: bool,
        started: float,
    ) -> None:
        """Write the job's end, again and again while the database refuses (the app holding its
        lock past our busy timeout): given up, the job would stay `processing` until a restart.
        Only a stop gives up; the next start releases the job."""
        while True:
            try:
                if error is None:
                    await self._finish(job, result, started)
                else:
                    await self._fail(job, error, retryable, started)
                return
            except Exception:
                log.exception(
                    "job bookkeeping failed",
                    extra={
                        "action": "jobs.bookkeeping_error",
                        "job_id": job.job_id,
                        "queue": job.queue.value,
                    },
                )
            if self._stopping:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ERROR_PAUSE_S):
                    await self._stop_requested.wait()

    async def _finish(self, job: ClaimedJob, result: dict[str, Any] | None, started: float) -> None:
        unblocked = await self._store.complete(job.job_id, result, worker_id=self.worker_id)
        if unblocked is None:
            await self._taken(job)
            return
        log.info("job done", extra={"action": "jobs.done", **_fields(job, started)})
        if unblocked:
            self.wake(unblocked)

    async def _fail(self, job: ClaimedJob, error: str, retryable: bool, started: float) -> None:
        dead = await self._store.fail(job.job_id, error, worker_id=self.worker_id, retryable=retryable)
        if dead is None:
            await self._taken(job)
            return
        fields = {**_fields(job, started), "error": error}
        if not dead:
            # Claim again rather than wait for the retry's time: it may have passed already (the
            # write waited out the app's lock longer than the backoff), and a wake-up is only
            # scheduled for retries still to come.
            self._dirty[job.queue] = True
            log.warning("job failed; will retry", extra={"action": "jobs.failed", **fields})
            return
        log.error("job dead", extra={"action": "jobs.dead", **fields, "dead_children": len(dead) - 1})
        for entry in dead:
            self._emit_dead(entry)

    async def _taken(self, job: ClaimedJob) -> None:
        """The job was taken from us meanwhile (another worker reset our lock): its end is theirs."""
        holder = await self._store.db.fetch_one("SELECT locked_by FROM jobs WHERE job_id = ?", (job.job_id,))
        self.watch.noticed(None if holder is None else holder[0], "took a job of ours")

    def _emit_dead(self, entry: DeadLetterEntry) -> None:
        self._events.dead_letter(entry)


def _fields(job: ClaimedJob, started: float) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "queue": job.queue.value,
        "attempt": job.attempts,
        "duration_ms": round((time.monotonic() - started) * 1000),
    }
