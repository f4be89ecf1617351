"""All SQL on the app's `jobs` and `job_dead_letter` tables.

Rows are shaped as the app's own queue writes them (reference/app-database.md §2.3-2.4):
ISO timestamps with `Z`, JSON payloads, priorities where higher runs first.
"""

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Any

import aiosqlite
import orjson

from sidecar.db.connection import MAX_VARIABLES, Database, chunked, insert_many
from sidecar.timestamps import iso, now_iso


class Queue(StrEnum):
    EXIFTOOL = "exiftool"
    THUMBNAIL = "thumbnail"
    FFPROBE = "ffprobe"
    VIDEO_PROXY = "video-proxy"
    LIVE_PHOTO = "live-photo"
    BAGIT = "bagit"
    LOCATION_STATS = "location-stats"
    GPS_ENRICHMENT = "gps-enrichment"  # the later app's queue (its IMPORT_QUEUES.GPS_ENRICHMENT)


class Priority(IntEnum):
    """The app's values; a higher priority runs first."""

    HIGH = 50
    NORMAL = 10
    LOW = 1


def new_job_id() -> str:
    """A random (version 4) UUID as text, the form of the app's job ids, made from 16 random bytes
    at half the cost of `str(uuid.uuid4())`: an import makes two or more per file."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@dataclass(slots=True)  # not frozen: an import builds two or more per file (see JournalFile)
class NewJob:
    queue: Queue
    payload: dict[str, Any]
    priority: Priority = Priority.NORMAL
    depends_on: str | None = None
    job_id: str = field(default_factory=new_job_id)


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


# --- The queue itself: claiming, finishing, dead letters (JobStore) -------------------------------

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
BACKOFF_JITTER = 0.2  # ±20 %
DEAD_LETTER_LIMIT = 100
_STATUSES = ("pending", "processing", "completed", "failed", "dead")

# A queue whose jobs wait until another queue has nothing left to do. `depends_on` names one
# parent; a `live-photo` job needs every metadata job of its import first (SPEC §6), and waiting for
# the whole metadata queue to be idle guarantees that with one indexed lookup per claim.
WAITS_FOR_IDLE: dict[Queue, Queue] = {Queue.LIVE_PHOTO: Queue.EXIFTOOL, Queue.GPS_ENRICHMENT: Queue.EXIFTOOL}

# Oldest is first inserted (rowid), which is `created_at`'s order for rows written as they are
# created: ordered so, the claim walks the app's (queue, status, priority) index, whose entries end
# in the rowid, and stops at the first claimable rows. Ordered by created_at, SQLite had to sort
# every pending job of the queue, each checked for its parent, on every claim: 230 ms with 100 000
# thumbnails waiting, holding the write lock the app waits on.
_SELECT_CLAIMABLE = """
SELECT j.job_id FROM jobs AS j
WHERE j.queue = ? AND j.status = 'pending' AND j.locked_by IS NULL
  AND (j.retry_after IS NULL OR j.retry_after <= ?)
  AND (j.depends_on IS NULL
       OR EXISTS (SELECT 1 FROM jobs AS p WHERE p.job_id = j.depends_on AND p.status = 'completed'))
  AND (? IS NULL
       OR NOT EXISTS (SELECT 1 FROM jobs AS w WHERE w.queue = ? AND w.status IN ('pending', 'processing')))
ORDER BY j.priority DESC, j.rowid ASC
LIMIT ?"""
_CLAIM = """
UPDATE jobs SET status = 'processing', locked_by = ?, locked_at = ?, started_at = ?, attempts = attempts + 1
WHERE job_id = ? AND status = 'pending' AND locked_by IS NULL
RETURNING job_id, queue, priority, payload, depends_on, attempts, max_attempts, locked_by, locked_at"""
_COMPLETE = """
UPDATE jobs SET status = 'completed', result = ?, error = NULL, completed_at = ?,
                locked_by = NULL, locked_at = NULL
WHERE job_id = ? AND status = 'processing' AND locked_by = ?"""
_WAITING_CHILD_QUEUES = "SELECT DISTINCT queue FROM jobs WHERE depends_on = ? AND status = 'pending'"
_SELECT_OWNED = """
SELECT job_id, queue, payload, attempts, max_attempts FROM jobs
WHERE job_id = ? AND status = 'processing' AND locked_by = ?"""
_RETRY_LATER = """
UPDATE jobs SET status = 'pending', error = NULL, last_error = ?, retry_after = ?,
                locked_by = NULL, locked_at = NULL
WHERE job_id = ? AND status = 'processing' AND locked_by = ?"""
_BURY_OWNED = """
UPDATE jobs SET status = 'dead', error = ?, completed_at = ?, locked_by = NULL, locked_at = NULL
WHERE job_id = ? AND status = 'processing' AND locked_by = ?"""
_PENDING_CHILDREN = """
SELECT job_id, queue, payload, attempts FROM jobs WHERE depends_on = ? AND status = 'pending'"""
_BURY_PENDING = """
UPDATE jobs SET status = 'dead', error = ?, completed_at = ?, locked_by = NULL, locked_at = NULL
WHERE job_id = ? AND status = 'pending'"""
_INSERT_DEAD_LETTER = """
INSERT INTO job_dead_letter (job_id, queue, payload, error, attempts, failed_at, acknowledged)
VALUES (?, ?, ?, ?, ?, ?, 0) RETURNING id"""
# Left `processing` by an earlier run of ours (our locks start with the prefix), or by another
# worker longer ago than the app's own stale-lock limit (its locks are its own until then).
_RELEASE_STALE = """
UPDATE jobs SET status = 'pending', locked_by = NULL, locked_at = NULL
WHERE status = 'processing'
  AND (locked_by IS NULL OR substr(locked_by, 1, length(?)) = ? OR locked_at IS NULL OR locked_at < ?)"""
_TOUCH = """
UPDATE jobs SET locked_at = ? WHERE status = 'processing' AND locked_by = ? AND job_id IN ({ids})"""
_OTHER_LOCKERS = """
SELECT DISTINCT locked_by FROM jobs
WHERE status = 'processing' AND locked_by IS NOT NULL AND locked_by != ?"""
_RELEASE = """
UPDATE jobs SET status = 'pending', locked_by = NULL, locked_at = NULL, started_at = NULL,
                attempts = max(attempts - 1, 0)
WHERE job_id = ? AND status = 'processing' AND locked_by = ?"""
_STATS = "SELECT queue, status, COUNT(*) AS n FROM jobs GROUP BY queue, status"
# Newest first is last inserted (rows are written as jobs die): walking the table backwards stops
# after `limit` rows. The unary `+` keeps SQLite off the (queue, acknowledged) index, through which
# it sorted every dead letter by failed_at on each call (124 ms with 120 000 of them).
_DEAD_LETTERS = """
SELECT id, job_id, queue, payload, error, attempts, failed_at, acknowledged FROM job_dead_letter
WHERE (? IS NULL OR +queue = ?) AND +queue IN ({queues})
ORDER BY id DESC
LIMIT ?"""
_DEAD_LETTER_WITH_JOB = """
SELECT d.queue, d.payload, j.priority, j.max_attempts FROM job_dead_letter AS d
LEFT JOIN jobs AS j ON j.job_id = d.job_id
WHERE d.id = ?"""
_INSERT_RETRY = """
INSERT INTO jobs (job_id, queue, priority, status, payload, depends_on, attempts, max_attempts, created_at)
VALUES (?, ?, ?, 'pending', ?, NULL, 0, ?, ?)"""
_ACKNOWLEDGE_ONE = "UPDATE job_dead_letter SET acknowledged = 1 WHERE id = ?"
_ACKNOWLEDGE = "UPDATE job_dead_letter SET acknowledged = 1 WHERE acknowledged = 0 AND id IN ({ids})"
_CLEAR_COMPLETED = """
DELETE FROM jobs
WHERE status = 'completed' AND completed_at < ?
  AND NOT EXISTS (SELECT 1 FROM jobs AS c
                  WHERE c.depends_on = jobs.job_id AND c.status IN ('pending', 'processing'))"""
_NEXT_RETRY = """
SELECT MIN(retry_after) AS due FROM jobs
WHERE queue = ? AND status = 'pending' AND retry_after IS NOT NULL AND retry_after > ?"""


def backoff_s(
    attempts: int,
    *,
    base_s: float = BACKOFF_BASE_S,
    cap_s: float = BACKOFF_CAP_S,
    jitter: float = BACKOFF_JITTER,
    rng: Callable[[], float] = random.random,
) -> float:
    """The app's `min(base · 2^attempts, cap)`, then ±`jitter` so retries of a batch spread out.

    `attempts` counts tries made so far (1 after the first failure); `rng` returns a float in [0, 1).
    """
    delay = min(base_s * 2.0 ** max(attempts, 0), cap_s)
    return delay * (1.0 + jitter * (2.0 * rng() - 1.0))


def parse_payload(text: str | None) -> dict[str, Any]:
    """A job's payload as an object; anything else the app may have stored comes back as `{"raw": …}`."""
    try:
        value = orjson.loads(text or "")
    except orjson.JSONDecodeError:
        return {"raw": text}
    return value if isinstance(value, dict) else {"raw": value}


def _parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job as it is after the claim (status `processing`, `attempts` already counting this try)."""

    job_id: str
    queue: Queue
    priority: int
    payload: dict[str, Any]
    depends_on: str | None
    attempts: int
    max_attempts: int
    locked_by: str
    locked_at: str


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    id: int
    job_id: str
    queue: Queue
    payload: dict[str, Any]
    error: str | None
    attempts: int | None
    failed_at: str
    acknowledged: bool


QueueStats = dict[str, int]


class JobStore:
    """The queue's bookkeeping. Every write is one short `BEGIN IMMEDIATE` transaction; a finish
    (`complete`, `fail`, `release`) only acts on a job still `processing` under the caller's lock."""

    def __init__(
        self,
        db: Database,
        *,
        backoff_base_s: float = BACKOFF_BASE_S,
        backoff_cap_s: float = BACKOFF_CAP_S,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.db = db
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._rng = rng

    async def claim(self, queue: Queue, worker_id: str, limit: int) -> list[ClaimedJob]:
        if limit <= 0:
            return []
        now = now_iso()
        claimed: list[ClaimedJob] = []
        async with self.db.transaction() as conn:
            barrier = WAITS_FOR_IDLE.get(queue)
            barrier_name = None if barrier is None else barrier.value
            params = (queue.value, now, barrier_name, barrier_name, limit)
            async with conn.execute(_SELECT_CLAIMABLE, params) as cursor:
                ids = [row[0] for row in await cursor.fetchall()]
            for job_id in ids:
                async with conn.execute(_CLAIM, (worker_id, now, now, job_id)) as cursor:
                    row = await cursor.fetchone()
                if row is not None:
                    claimed.append(
                        ClaimedJob(
                            job_id=row["job_id"],
                            queue=Queue(row["queue"]),
                            priority=row["priority"],
                            payload=parse_payload(row["payload"]),
                            depends_on=row["depends_on"],
                            attempts=row["attempts"],
                            max_attempts=row["max_attempts"],
                            locked_by=row["locked_by"],
                            locked_at=row["locked_at"],
                        )
                    )
        return claimed

    async def complete(
        self, job_id: str, result: dict[str, Any] | None, *, worker_id: str
    ) -> list[Queue] | None:
        """Mark the job completed; returns the queues holding children it may have unblocked, or
        None when the job was no longer ours (nothing is written then)."""
        encoded = None if result is None else orjson.dumps(result).decode()
        async with self.db.transaction() as conn:
            cursor = await conn.execute(_COMPLETE, (encoded, now_iso(), job_id, worker_id))
            if cursor.rowcount == 0:
                return None
            async with conn.execute(_WAITING_CHILD_QUEUES, (job_id,)) as rows:
                return [Queue(row[0]) for row in await rows.fetchall() if row[0] in _QUEUE_NAMES]

    async def fail(
        self, job_id: str, error: str, *, worker_id: str, retryable: bool = True
    ) -> list[DeadLetterEntry] | None:
        """Below `max_attempts`: pending again after a backoff. Otherwise the job is dead, and so is
        every pending job depending on it (transitively); returns their dead-letter entries, this
        job's first. Empty when it was retried; None when the job was no longer ours."""
        now = now_iso()
        async with self.db.transaction() as conn:
            async with conn.execute(_SELECT_OWNED, (job_id, worker_id)) as cursor:
                row = await cursor.fetchone()
            if row is None:
                return None
            attempts: int = row["attempts"]
            if retryable and attempts < row["max_attempts"]:
                delay = backoff_s(
                    attempts, base_s=self._backoff_base_s, cap_s=self._backoff_cap_s, rng=self._rng
                )
                retry_after = now_iso(timedelta(seconds=delay))
                await conn.execute(_RETRY_LATER, (error, retry_after, job_id, worker_id))
                return []
            await conn.execute(_BURY_OWNED, (error, now, job_id, worker_id))
            entry = await _dead_letter(conn, job_id, row["queue"], row["payload"], error, attempts, now)
            return [entry, *await _bury_children(conn, job_id, row["queue"], error, now)]

    async def release_stale(self, own_prefix: str, others_locked_before: str) -> int:
        """Put back to pending the jobs an earlier run of ours left `processing` (locks starting with
        `own_prefix`), and another worker's older than `others_locked_before`. Attempts stay as they
        are: the interrupted try counts, so a job that crashes the process cannot loop forever."""
        async with self.db.transaction() as conn:
            cursor = await conn.execute(_RELEASE_STALE, (own_prefix, own_prefix, others_locked_before))
            return cursor.rowcount

    async def touch(self, job_ids: Sequence[str], *, worker_id: str) -> None:
        """Refresh the locks of jobs we are running (another worker takes an old lock for abandoned)."""
        for chunk in chunked(job_ids, MAX_VARIABLES):
            async with self.db.transaction() as conn:
                sql = _TOUCH.format(ids=", ".join("?" * len(chunk)))
                await conn.execute(sql, (now_iso(), worker_id, *chunk))

    async def other_lockers(self, worker_id: str) -> list[str]:
        """Who else holds jobs now."""
        return [row[0] for row in await self.db.fetch_all(_OTHER_LOCKERS, (worker_id,))]

    async def release(self, job_id: str, *, worker_id: str) -> bool:
        """A job stopped by shutdown: pending again, and the stopped try is not counted."""
        async with self.db.transaction() as conn:
            cursor = await conn.execute(_RELEASE, (job_id, worker_id))
            return cursor.rowcount > 0

    async def stats(self) -> dict[str, QueueStats]:
        stats = {queue.value: dict.fromkeys(_STATUSES, 0) for queue in Queue}
        for row in await self.db.fetch_all(_STATS):
            if row["queue"] in stats and row["status"] in _STATUSES:
                stats[row["queue"]][row["status"]] = row["n"]
        return stats

    async def dead_letters(
        self, queue: Queue | None = None, limit: int = DEAD_LETTER_LIMIT
    ) -> list[DeadLetterEntry]:
        """Newest first, acknowledged ones included (as the app lists them)."""
        name = None if queue is None else queue.value
        sql = _DEAD_LETTERS.format(queues=", ".join("?" * len(_QUEUE_NAMES)))
        rows = await self.db.fetch_all(sql, (name, name, *_QUEUE_NAMES, limit))
        return [
            DeadLetterEntry(
                id=row["id"],
                job_id=row["job_id"],
                queue=Queue(row["queue"]),
                payload=parse_payload(row["payload"]),
                error=row["error"],
                attempts=row["attempts"],
                failed_at=row["failed_at"],
                acknowledged=bool(row["acknowledged"]),
            )
            for row in rows
        ]

    async def retry_dead_letter(self, dead_letter_id: int) -> str | None:
        """A new pending job with the entry's queue and payload and the dead job's priority and
        max_attempts, and the entry acknowledged. None when there is no such entry. Retrying an
        entry again (already acknowledged) is allowed and makes another job, as in the app."""
        job_id = new_job_id()
        async with self.db.transaction() as conn:
            async with conn.execute(_DEAD_LETTER_WITH_JOB, (dead_letter_id,)) as cursor:
                row = await cursor.fetchone()
            if row is None:
                return None
            priority = int(Priority.NORMAL) if row["priority"] is None else row["priority"]
            max_attempts = MAX_ATTEMPTS if row["max_attempts"] is None else row["max_attempts"]
            await conn.execute(
                _INSERT_RETRY, (job_id, row["queue"], priority, row["payload"], max_attempts, now_iso())
            )
            await conn.execute(_ACKNOWLEDGE_ONE, (dead_letter_id,))
        return job_id

    async def acknowledge(self, ids: Sequence[int]) -> int:
        """Returns how many entries changed (already acknowledged ones do not count)."""
        unique = sorted(set(ids))
        if not unique:
            return 0
        changed = 0
        async with self.db.transaction() as conn:
            for chunk in chunked(unique, MAX_VARIABLES):
                cursor = await conn.execute(_ACKNOWLEDGE.format(ids=", ".join("?" * len(chunk))), chunk)
                changed += cursor.rowcount
        return changed

    async def clear_completed(self, older_than_ms: float) -> int:
        """Delete completed jobs finished more than `older_than_ms` ago, except parents that a
        pending or processing job still depends on."""
        threshold = now_iso(-timedelta(milliseconds=older_than_ms))
        async with self.db.transaction() as conn:
            cursor = await conn.execute(_CLEAR_COMPLETED, (threshold,))
            return cursor.rowcount

    async def next_wakeup(self, queue: Queue, after: str | None = None) -> float | None:
        """Seconds until the earliest `retry_after` of a pending job of the queue that lies after
        `after` (default now); None when there is none. Earlier ones were already claimable."""
        now = datetime.now(UTC)
        row = await self.db.fetch_one(_NEXT_RETRY, (queue.value, after or iso(now)))
        if row is None or row["due"] is None:
            return None
        try:
            due = _parse_iso(row["due"])
        except ValueError:
            return None
        if due.tzinfo is None:
            due = due.replace(tzinfo=UTC)
        return max((due - now).total_seconds(), 0.0)


_QUEUE_NAMES = tuple(queue.value for queue in Queue)


async def _dead_letter(
    conn: aiosqlite.Connection,
    job_id: str,
    queue: str,
    payload: str,
    error: str,
    attempts: int | None,
    failed_at: str,
) -> DeadLetterEntry:
    async with conn.execute(_INSERT_DEAD_LETTER, (job_id, queue, payload, error, attempts, failed_at)) as cur:
        row = await cur.fetchone()
    assert row is not None  # RETURNING always yields the inserted row
    return DeadLetterEntry(
        id=row[0],
        job_id=job_id,
        queue=Queue(queue),
        payload=parse_payload(payload),
        error=error,
        attempts=attempts,
        failed_at=failed_at,
        acknowledged=False,
    )


async def _bury_children(
    conn: aiosqlite.Connection, parent_id: str, parent_queue: str, parent_error: str, now: str
) -> list[DeadLetterEntry]:
    """Every pending job depending (transitively) on a dead job dies too, naming its own parent."""
    entries: list[DeadLetterEntry] = []
    frontier = [(parent_id, parent_queue, parent_error)]
    while frontier:
        dead_id, dead_queue, dead_error = frontier.pop(0)
        async with conn.execute(_PENDING_CHILDREN, (dead_id,)) as cursor:
            children = list(await cursor.fetchall())
        for child in children:
            error = f"Dependency {dead_id} ({dead_queue}) is dead: {dead_error}"
            cursor = await conn.execute(_BURY_PENDING, (error, now, child["job_id"]))
            if cursor.rowcount == 0:
                continue
            queue = child["queue"] if child["queue"] in _QUEUE_NAMES else dead_queue
            entries.append(
                await _dead_letter(
                    conn, child["job_id"], queue, child["payload"], error, child["attempts"], now
                )
            )
            frontier.append((child["job_id"], child["queue"], error))
    return entries
