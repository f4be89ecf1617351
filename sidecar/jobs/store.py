"""All SQL on the app's `jobs` and `job_dead_letter` tables.

Rows are shaped as the app's own queue writes them (reference/app-database.md §2.3-2.4):
ISO timestamps with `Z`, JSON payloads, priorities where higher runs first.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

import aiosqlite
import orjson

from sidecar.db.connection import insert_many


class Queue(StrEnum):
    EXIFTOOL = "exiftool"
    THUMBNAIL = "thumbnail"
    FFPROBE = "ffprobe"
    VIDEO_PROXY = "video-proxy"
    LIVE_PHOTO = "live-photo"
    BAGIT = "bagit"
    LOCATION_STATS = "location-stats"


class Priority(IntEnum):
    """The app's values; a higher priority runs first."""

    HIGH = 50
    NORMAL = 10
    LOW = 1


@dataclass(frozen=True, slots=True)
class NewJob:
    queue: Queue
    payload: dict[str, Any]
    priority: Priority = Priority.NORMAL
    depends_on: str | None = None
    job_id: str = field(default_factory=lambda: str(uuid.uuid4()))


_JOB_COLUMNS = (
    "job_id",
    "queue",
    "priority",
    "status",
    "payload",
    "depends_on",
    "attempts",
    "max_attempts",
    "created_at",
)
MAX_ATTEMPTS = 3


async def insert_jobs(conn: aiosqlite.Connection, jobs: Sequence[NewJob], now: str) -> None:
    """Insert jobs inside the caller's transaction, keeping the ids the caller chose, so that
    `depends_on` always names a row that exists (the app's addBulk replaced them: bug §12.1)."""
    await insert_many(
        conn,
        "jobs",
        _JOB_COLUMNS,
        (
            (
                job.job_id,
                job.queue.value,
                int(job.priority),
                "pending",
                orjson.dumps(job.payload).decode(),
                job.depends_on,
                0,
                MAX_ATTEMPTS,
                now,
            )
            for job in jobs
        ),
    )
