"""Step 5: commit validated files to the app's tables.

One short `BEGIN IMMEDIATE` transaction per chunk writes the media rows, the import's single
`imports` row (counts added per chunk), the background jobs with `depends_on` naming rows in the
same transaction, and the journal rows as finalized. A crash loses at most an uncommitted chunk,
and a resumed finalize only sees files not yet finalized: nothing is inserted twice.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiosqlite

from sidecar.archive.files import ArchivedFile
from sidecar.archive.media import MediaType
from sidecar.archive.tables import MEDIA_TABLES, media_table
from sidecar.db.connection import insert_many
from sidecar.db.schema import imported_columns
from sidecar.pipeline.journal import FileState, FileUpdate, Journal, JournalFile
from sidecar.pipeline.sessions import SessionRecord

# Files per transaction: tens of milliseconds of SQLite work (measured), far under the app's 5 s
# patience; fewer, larger transactions finalize many small files faster (bench/import_bench.py).
CHUNK_FILES = 1000


@dataclass(frozen=True, slots=True)
class ChunkResult:
    finalized: int
    duplicates: int
    jobs: int
    # Sidecars of this chunk's files finalized with them, from later pages: (files, bytes).
    sidecars_with_parents: tuple[int, int] = (0, 0)


def display_path(path: str) -> str:
    """A path as text the database can store: undecodable bytes become U+FFFD (the journal keeps
    the exact bytes)."""
    return os.fsencode(path).decode("utf-8", "replace")


def _media_row(file: JournalFile, session: SessionRecord, now: str) -> tuple[list[str], tuple[Any, ...]]:
    assert file.hash is not None and file.target is not None
    table = media_table(file.media_type)
    values = {
        table.column("hash"): file.hash,
        table.column("nam"): os.path.basename(file.target),
        table.column("namo"): display_path(os.path.basename(file.path)),
        table.column("loc"): file.target,
        table.column("loco"): display_path(file.path),
        "locid": session.locid,
        "subid": session.subid,
        "auth_imp": session.author,
        table.column("add"): now,
        "imported_by_id": session.user_id,
        "imported_by": session.username,
        "file_size_bytes": file.size,
        "is_contributed": session.is_contributed,
        "contribution_source": session.contribution_source,
    }
    columns = list(imported_columns(table.prefix))
    return columns, tuple(values[column] for column in columns)


class JobPlanner(Protocol):
    """The background jobs of new files and of a touched location, queued in the caller's
    transaction (jobs/planning.py); returns how many were queued."""

    async def queue_files(
        self, conn: aiosqlite.Connection, files: Sequence[ArchivedFile], session_id: str, now: str
    ) -> int: ...

    async def queue_location(
        self, conn: aiosqlite.Connection, locid: str, subid: str | None, session_id: str, now: str
    ) -> int: ...


class Finalizer:
    def __init__(self, journal: Journal, jobs: JobPlanner) -> None:
        self._journal = journal
        self._jobs = jobs

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
        archived: list[ArchivedFile] = []
        for media_type, table in MEDIA_TABLES.items():
            of_type = [f for f in new if f.media_type is media_type]
            if not of_type:
                continue
            rows = [_media_row(f, session, now) for f in of_type]
            await insert_many(conn, table.table, rows[0][0], (values for _, values in rows))
            column = table.count_column
            await conn.execute(
                f"UPDATE imports SET {column} = {column} + ? WHERE import_id = ?",
                (len(of_type), session.import_id),
            )
            archived.extend(_archived(f) for f in of_type)
        jobs = await self._jobs.queue_files(conn, archived, session.session_id, now)
        await _count_jobs(conn, session, jobs)
        new_ids = {f.file_id for f in new}
        updates = [
            FileUpdate(f.file_id, FileState.FINALIZED)
            if f.file_id in new_ids or f.media_type is MediaType.SIDECAR
            # Archived meanwhile by someone else (the app, another import): counted as a duplicate.
            else FileUpdate(f.file_id, FileState.DUPLICATE)
            for f in files
        ]
        await self._journal.update_files(session.session_id, updates, conn)
        sidecars = await self._journal.finalize_sidecars_of(conn, session.session_id, sorted(new_ids))
        return ChunkResult(
            len(new) + (len(files) - len(media)), len(media) - len(new), jobs, (len(sidecars), sum(sidecars))
        )

    async def queue_location_jobs(self, conn: aiosqlite.Connection, session: SessionRecord, now: str) -> int:
        """Per touched location, in the import's last transaction (with its completed status), so a
        crash can neither lose them nor queue them twice."""
        jobs = await self._jobs.queue_location(conn, session.locid, session.subid, session.session_id, now)
        await _count_jobs(conn, session, jobs)
        return jobs


async def _count_jobs(conn: aiosqlite.Connection, session: SessionRecord, jobs: int) -> None:
    await conn.execute(
        "UPDATE aus_import_sessions SET jobs_queued = jobs_queued + ? WHERE session_id = ?",
        (jobs, session.session_id),
    )


def _archived(file: JournalFile) -> ArchivedFile:
    assert file.hash is not None and file.target is not None
    return ArchivedFile(file.hash, file.media_type, file.target, file.raw_pair_hash, file.live_pair_hash)


async def _already_archived(
    conn: aiosqlite.Connection, files: Sequence[JournalFile]
) -> dict[MediaType, set[str]]:
    found: dict[MediaType, set[str]] = {}
    for media_type, table in MEDIA_TABLES.items():
        hashes = [f.hash for f in files if f.media_type is media_type and f.hash]
        if not hashes:
            continue
        marks = ", ".join("?" * len(hashes))
        column = table.hash_column
        async with conn.execute(
            f"SELECT {column} FROM {table.table} WHERE {column} IN ({marks})", hashes
        ) as cursor:
            found[media_type] = {row[0] for row in await cursor.fetchall()}
    return found
