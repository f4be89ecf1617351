"""`jobs:*`: params already checked against protocol/; the store does the work, the scheduler is
woken when a retry adds a job."""

from collections.abc import Sequence
from typing import Any

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

    def _jobs(self) -> JobStore:
        if self._store is None:
            raise self._unavailable or SidecarError()
        return self._store

    async def status(self) -> dict[str, Any]:
        return await self._jobs().stats()

    async def dead_letter(self, queue: str | None = None) -> list[dict[str, Any]]:
        entries = await self._jobs().dead_letters(None if queue is None else Queue(queue))
        return [entry.to_wire() for entry in entries]

    async def retry(self, request: dict[str, Any]) -> dict[str, Any]:
        new_job_id = await self._jobs().retry_dead_letter(int(request["deadLetterId"]))
        if new_job_id is not None and self._scheduler is not None:
            self._scheduler.wake()
        return {"success": new_job_id is not None, "newJobId": new_job_id}

    async def acknowledge(self, ids: Sequence[int]) -> dict[str, Any]:
        return {"acknowledged": await self._jobs().acknowledge(ids)}

    async def clear_completed(self, older_than_ms: float | None = None) -> dict[str, Any]:
        age = DEFAULT_CLEAR_AGE_MS if older_than_ms is None else older_than_ms
        return {"cleared": await self._jobs().clear_completed(age)}
