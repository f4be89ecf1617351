"""For the job handlers' tests: an event sink that checks every payload against `protocol/`, and
the type of the `make_context` fixture."""

import asyncio
from collections.abc import Callable, Hashable
from typing import Any

from sidecar.api.jobs import JobNotifier
from sidecar.db.connection import Database
from sidecar.jobs.handlers import JobContext
from sidecar.jobs.store import NewJob, insert_jobs
from sidecar.timestamps import now_iso
from tests.support.client import CONTRACT

# The queues the apps run (SPEC §7 and the later app's gps-enrichment), written out independently
# of sidecar/jobs/store.py's Queue, so a queue renamed or lost there fails the tests.
APP_QUEUES = (
    "exiftool",
    "thumbnail",
    "ffprobe",
    "video-proxy",
    "live-photo",
    "bagit",
    "location-stats",
    "gps-enrichment",
)


class RecordedEvents(JobNotifier):
    """The jobs' events as the app receives them (through the real JobNotifier), each payload
    validated as the wire contract says."""

    def __init__(self) -> None:
        super().__init__(self)
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.dead: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # jobs:deadLetter, to await

    def emit(self, event: str, payload: dict[str, Any], latest_key: Hashable | None = None) -> None:
        issues = CONTRACT.notification_issues(event, payload)
        assert not issues, f"{event} payload breaks protocol/: {issues}"
        self.sent.append((event, payload))
        if event == "jobs:deadLetter":
            self.dead.put_nowait(payload)

    def of(self, event: str) -> list[dict[str, Any]]:
        return [payload for name, payload in self.sent if name == event]


# The `make_context` fixture: a JobContext for (queue, payload, *, tools=None, attempt=1).
ContextMaker = Callable[..., JobContext]


async def add_jobs(db: Database, *jobs: NewJob, created_at: str | None = None) -> list[str]:
    """Queue jobs as an import does (one transaction); returns their ids."""
    async with db.transaction() as conn:
        await insert_jobs(conn, jobs, created_at or now_iso())
    return [job.job_id for job in jobs]


async def job_row(db: Database, job_id: str) -> dict[str, Any]:
    row = await db.fetch_one("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
    assert row is not None
    return dict(row)
