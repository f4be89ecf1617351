"""Step 5: commit validated files to the app's tables.

One short `BEGIN IMMEDIATE` transaction per chunk writes the media rows, the import's single
`imports` row (counts added per chunk), the background jobs with `depends_on` naming rows in the
same transaction, and the journal rows as finalized. A crash loses at most an uncommitted chunk,
and a resumed finalize only sees files not yet finalized: nothing is inserted twice.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from sidecar.db.connection import insert_many
from sidecar.db.schema import imported_columns
from sidecar.jobs.store import NewJob, Priority, Queue, insert_jobs
from sidecar.pipeline.journal import FileState, FileUpdate, Journal, JournalFile, media_table
from sidecar.pipeline.media import MediaType
from sidecar.pipeline.sessions import SessionRecord

# Files per transaction: tens of milliseconds of SQLite work (measured), far under the app's 5 s
# patience; fewer, larger transactions finalize many small files faster (bench/import_bench.py).
CHUNK_FILES = 1000

_COUNT_COLUMN = {
    MediaType.IMAGE: "img_count",
    MediaType.VIDEO: "vid_count",
    MediaType.DOCUMENT: "doc_count",
    MediaType.MAP: "map_count",
}
_PREFIX = {MediaType.IMAGE: "img", MediaType.VIDEO: "vid", MediaType.DOCUMENT: "doc", MediaType.MAP: "map"}


@dataclass(frozen=True, slots=True)
class ChunkResult:
    finalized: int
    duplicates: int
    jobs: int


def display_path(path: str) -> str:
    """A path as text the database can store: undecodable bytes become U+FFFD (the journal keeps
    the exact bytes)."""
    return os.fsencode(path).decode("utf-8", "replace")


def _media_row(file: JournalFile, session: SessionRecord, now: str) -> tuple[list[str], tuple[Any, ...]]:
    prefix = _PREFIX[file.media_type]
    assert file.hash is not None and file.target is not None
    columns = list(imported_columns(prefix))
    values = (
        file.hash,
        os.path.basename(file.target),
        display_path(os.path.basename(file.path)),
        file.target,
        display_path(file.path),
        session.locid,
        None,
        session.username,
        now,
        session.user_id,
        session.username,
        file.size,
    )
    return columns, values


def jobs_for(file: JournalFile, session_id: str) -> list[NewJob]:
    """The background work one new file needs, with dependencies as SPEC §6 orders them."""
    assert file.hash is not None and file.target is not None
    base = {
        "hash": file.hash,
        "mediaType": file.media_type.value,
        "archivePath": file.target,
        "sessionId": session_id,
    }
    if file.raw_pair_hash:
        base["pairedHash"] = file.raw_pair_hash
    if file.live_pair_hash:
        base["livePairHash"] = file.live_pair_hash
    exiftool = NewJob(Queue.EXIFTOOL, base, Priority.HIGH)
    exiftool.payload["jobId"] = exiftool.job_id
    jobs = [exiftool]
    if file.media_type in (MediaType.IMAGE, MediaType.VIDEO):
        # After exiftool, so RAW previews and orientation are known.
        jobs.append(NewJob(Queue.THUMBNAIL, dict(base), Priority.NORMAL, depends_on=exiftool.job_id))
    if file.media_type is MediaType.VIDEO:
        ffprobe = NewJob(Queue.FFPROBE, dict(base), Priority.HIGH)
        ffprobe.payload["jobId"] = ffprobe.job_id
        jobs.append(ffprobe)
        jobs.append(NewJob(Queue.VIDEO_PROXY, dict(base), Priority.LOW, depends_on=ffprobe.job_id))
    return jobs


def location_jobs(locid: str, session_id: str) -> list[NewJob]:
    """Per touched location, once its files are committed."""
    payload = {"locid": locid, "sessionId": session_id}
    return [
        NewJob(Queue.LIVE_PHOTO, dict(payload), Priority.NORMAL),
        NewJob(Queue.BAGIT, dict(payload), Priority.LOW),
        NewJob(Queue.LOCATION_STATS, dict(payload), Priority.LOW),
    ]


class Finalizer:
    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    async def record(
        self, conn: aiosqlite.Connection, session: SessionRecord, files: Sequence[JournalFile], now: str
    ) -> ChunkResult:
        """Commit validated files (at most CHUNK_FILES, in the caller's short transaction). Sidecars
        get no row (the app has no table for them): a parent's validated sidecars are finalized with
        it, in this transaction, so no stop can keep a parent and drop its sidecar (a cancel removes
        what is not finalized, and a later import would take the sidecar of an archived file for a
        duplicate)."""
        media = [f for f in files if f.media_type is not MediaType.SIDECAR]
        taken = await _already_archived(conn, media)
        new = [f for f in media if f.hash not in taken.get(f.media_type, set())]
        await conn.execute(
            "INSERT OR IGNORE INTO imports (import_id, locid, import_date, auth_imp, img_count, vid_count,"
            " doc_count, map_count, notes) VALUES (?, ?, ?, ?, 0, 0, 0, 0, NULL)",
            (session.import_id, session.locid, now, session.username),
        )
        jobs: list[NewJob] = []
        for media_type in _PREFIX:
            of_type = [f for f in new if f.media_type is media_type]
            if not of_type:
                continue
            table, _ = media_table(media_type)
            rows = [_media_row(f, session, now) for f in of_type]
            await insert_many(conn, table, rows[0][0], (values for _, values in rows))
            column = _COUNT_COLUMN[media_type]
            await conn.execute(
                f"UPDATE imports SET {column} = {column} + ? WHERE import_id = ?",
                (len(of_type), session.import_id),
            )
            for file in of_type:
                jobs.extend(jobs_for(file, session.session_id))
        await insert_jobs(conn, jobs, now)
        await conn.execute(
            "UPDATE aus_import_sessions SET jobs_queued = jobs_queued + ? WHERE session_id = ?",
            (len(jobs), session.session_id),
        )
        new_ids = {f.file_id for f in new}
        updates = [
            FileUpdate(f.file_id, FileState.FINALIZED)
            if f.file_id in new_ids or f.media_type is MediaType.SIDECAR
            # Archived meanwhile by someone else (the app, another import): counted as a duplicate.
            else FileUpdate(f.file_id, FileState.DUPLICATE)
            for f in files
        ]
        await self._journal.update_files(session.session_id, updates, conn)
        await self._journal.finalize_sidecars_of(conn, session.session_id, sorted(new_ids))
        return ChunkResult(len(new) + (len(files) - len(media)), len(media) - len(new), len(jobs))

    async def queue_location_jobs(self, conn: aiosqlite.Connection, session: SessionRecord, now: str) -> int:
        """Per touched location, in the import's last transaction (with its completed status), so a
        crash can neither lose them nor queue them twice."""
        jobs = location_jobs(session.locid, session.session_id)
        await insert_jobs(conn, jobs, now)
        await conn.execute(
            "UPDATE aus_import_sessions SET jobs_queued = jobs_queued + ? WHERE session_id = ?",
            (len(jobs), session.session_id),
        )
        return len(jobs)


async def _already_archived(
    conn: aiosqlite.Connection, files: Sequence[JournalFile]
) -> dict[MediaType, set[str]]:
    found: dict[MediaType, set[str]] = {}
    for media_type in _PREFIX:
        hashes = [f.hash for f in files if f.media_type is media_type and f.hash]
        if not hashes:
            continue
        table, column = media_table(media_type)
        marks = ", ".join("?" * len(hashes))
        async with conn.execute(
            f"SELECT {column} FROM {table} WHERE {column} IN ({marks})", hashes
        ) as cursor:
            found[media_type] = {row[0] for row in await cursor.fetchall()}
    return found
