"""Sharing the `jobs` table with another worker: the app's own, if it still runs one.

The first app generation starts its job worker at boot on the same table and queue names
(bizzlechizzle/au-archive, electron/main/ipc-handlers/index.ts `initializeJobWorker(db)`), and at
every claim puts back to `pending` any job `processing` for over 5 minutes, whoever holds it
(electron/services/job-queue.ts `getNext`). So the sidecar keeps the locks of the jobs it runs
fresh (a long transcode is never taken for abandoned), never takes over a job another worker holds
unless that lock is older than the app's own limit, and notices another worker — a job locked by
a name not its own, or one of its own jobs taken from it — logs it loudly and shows it in
`sidecar:info`. A job taken from it is not recorded by it: the other worker's end stands.
"""

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from sidecar.jobs.store import JobStore
from sidecar.log import get_logger
from sidecar.timestamps import now_iso

# The app's stale-lock limit (job-queue.ts staleLockTimeoutMs) and how often we refresh ours.
APP_STALE_LOCK_S = 300.0
HEARTBEAT_S = 60.0

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OtherWorker:
    locked_by: str
    last_seen_at: str
    how: str  # "holds a job" | "took a job of ours"


class WorkerWatch:
    def __init__(self, store: JobStore, worker_id: str) -> None:
        self._store = store
        self.worker_id = worker_id
        self._others: dict[str, OtherWorker] = {}

    @property
    def others(self) -> list[OtherWorker]:
        return sorted(self._others.values(), key=lambda other: other.last_seen_at, reverse=True)

    def noticed(self, locked_by: str | None, how: str) -> None:
        name = locked_by or "(unknown)"
        if name not in self._others:
            log.error(
                "another job worker shares this database: remove the app's own job worker"
                " (see bridge/README.md) or stop the other sidecar",
                extra={"action": "jobs.competing_worker", "locked_by": name, "how": how},
            )
        self._others[name] = OtherWorker(name, now_iso(), how)

    async def patrol(self, running: Callable[[], list[str]], stop: asyncio.Event) -> None:
        """Until `stop`: refresh the locks of the jobs we run, and look for other workers' locks."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEARTBEAT_S):
                    await stop.wait()
            if stop.is_set():
                return
            try:
                await self._store.touch(running(), worker_id=self.worker_id)
                for locked_by in await self._store.other_lockers(self.worker_id):
                    self.noticed(locked_by, "holds a job")
            except Exception:  # the app holding the lock: the next round tries again
                log.warning(
                    "job lock refresh failed", exc_info=True, extra={"action": "jobs.heartbeat_error"}
                )
