"""One module per queue. A handler gets a JobContext and returns the job's result (JSON-able) or
raises: any exception fails this attempt, with its message as the job's error."""

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol

from sidecar.db.connection import Database
from sidecar.jobs.store import Queue
from sidecar.tools.discovery import Toolset


class JobEvents(Protocol):
    def emit(self, event: str, payload: dict[str, Any], latest_key: Hashable | None = None) -> None: ...


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

    def progress(self, percent: float, message: str | None = None) -> None:
        """`jobs:progress` for this job (latest wins: a slow reader never piles them up)."""
        payload: dict[str, Any] = {"queue": self.queue.value, "jobId": self.job_id, "progress": percent}
        if message is not None:
            payload["message"] = message
        self.events.emit("jobs:progress", payload, latest_key=("jobs:progress", self.job_id))


JobHandler = Callable[[JobContext], Awaitable[dict[str, Any] | None]]
