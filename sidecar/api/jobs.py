"""`jobs:*`: params already checked against protocol/; the store does the work, the scheduler is
woken when a retry adds a job."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sidecar.api.refusals import database_refusals
from sidecar.errors import SidecarError
from sidecar.jobs.scheduler import JobScheduler
from sidecar.jobs.store import JobStore, Queue
from sidecar.rpc.dispatcher import Handler

DEFAULT_CLEAR_AGE_MS = 24 * 3600 * 1000


class JobsApi:
    def __init__(
        self, store: JobStore | None, scheduler: JobScheduler | None, unavailable: SidecarError | None
    ) -> None:
        # Without a usable database every jobs method answers with the reason (e.g. schema too old).
        self._store = store
        self._scheduler = scheduler
        self._unavailable = unavailable

    def handlers(self) -> dict[str, Handler]:
        return {
            "jobs:status": self.status,
            "jobs:deadLetter": self.dead_letter,
            "jobs:retry": self.retry,
            "jobs:acknowledge": self.acknowledge,
            "jobs:clearCompleted": self.clear_completed,
        }

    @contextmanager
    def _jobs(self) -> Iterator[JobStore]:
        """The store, with the database locked too long or full reported as such."""
        if self._store is None:
            raise self._unavailable or SidecarError()
        with database_refusals(self._store.db.path):
            yield self._store

    async def status(self) -> dict[str, Any]:
        with self._jobs() as jobs:
            return await jobs.stats()

    async def dead_letter(self, queue: str | None = None) -> list[dict[str, Any]]:
        with self._jobs() as jobs:
            entries = await jobs.dead_letters(None if queue is None else Queue(queue))
        return [entry.to_wire() for entry in entries]

    async def retry(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._jobs() as jobs:
            new_job_id = await jobs.retry_dead_letter(int(request["deadLetterId"]))
        if new_job_id is not None and self._scheduler is not None:
            self._scheduler.wake()
        return {"success": new_job_id is not None, "newJobId": new_job_id}

    async def acknowledge(self, ids: Sequence[int]) -> dict[str, Any]:
        with self._jobs() as jobs:
            return {"acknowledged": await jobs.acknowledge(ids)}

    async def clear_completed(self, older_than_ms: float | None = None) -> dict[str, Any]:
        age = DEFAULT_CLEAR_AGE_MS if older_than_ms is None else older_than_ms
        with self._jobs() as jobs:
            return {"cleared": await jobs.clear_completed(age)}
