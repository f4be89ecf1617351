"""One module per queue. A handler gets a JobContext and returns the job's result (JSON-able) or
raises: any exception fails this attempt, with its message as the job's error."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sidecar.db.connection import Database
from sidecar.jobs.events import JobEvents
from sidecar.jobs.store import Queue
from sidecar.jobs.threads import JobThreads
from sidecar.tools.discovery import Toolset


@dataclass(frozen=True, slots=True)
class JobContext:
    job_id: str
    queue: Queue
    payload: dict[str, Any]
    attempt: int  # 1 for the first try
    db: Database
    tools: Toolset
    archive_root: str | None  # --archive, else the app's settings.archive_folder at claim time
    events: JobEvents
    threads: JobThreads  # for CPU work: at background priority, unlike asyncio.to_thread's threads

    def progress(self, percent: float, message: str | None = None) -> None:
        """`jobs:progress` for this job (latest wins: a slow reader never piles them up)."""
        self.events.progress(self.queue, self.job_id, percent, message)


JobHandler = Callable[[JobContext], Awaitable[dict[str, Any] | None]]
