"""All SQL of an import's per-file journal (the session rows are `sessions.py`'s).

The journal is what makes an import resumable per file: each file's row records how far it got
(scanned → hashed → copied → validated → finalized, or duplicate / failed), so a resumed import
reads what is left instead of holding every file in memory.
"""

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sidecar.archive.media import MediaType
from sidecar.archive.tables import MEDIA_TABLES, media_table
from sidecar.db.connection import MAX_VARIABLES, Database, chunked, insert_many
from sidecar.pipeline.outcome import FileProblem
from sidecar.pipeline.scanner import Skipped
from sidecar.pipeline.status import ImportStep
from sidecar.pipeline.windows import FileLinks, Window


class FileState(StrEnum):
    SCANNED = "scanned"
    HASHED = "hashed"
    COPIED = "copied"
    VALIDATED = "validated"
    FINALIZED = "finalized"
    DUPLICATE = "duplicate"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class NewFile:
    file_id: int
    path: str
    size: int
    media_type: MediaType | None  # None for a scan error: the file was never classified
    extension: str
    parent_id: int | None = None
    raw_pair_id: int | None = None
    live_pair_id: int | None = None
    state: FileState = FileState.SCANNED
    error: str | None = None  # a scan error: the row is born failed

    @property
    def links(self) -> FileLinks:
        return FileLinks(self.file_id, self.size, (self.parent_id, self.raw_pair_id, self.live_pair_id))


# Per-file records of the steps (a 20 000-file import builds ~80 000 of each): not frozen, as a
# frozen dataclass's __init__ sets each field through object.__setattr__, which made building them
# 3× slower and a tenth of the event loop's samples on SMALL. Nothing changes one once built.
@dataclass(slots=True)
class JournalFile:
    file_id: int
    path: str
    size: int
    media_type: MediaType
    extension: str
    state: FileState
    hash: str | None
    target: str | None
    parent_id: int | None
    raw_pair_id: int | None
    live_pair_id: int | None
    # The parent's progress, for sidecars (which follow their parent into the archive).
    parent_state: FileState | None
    parent_hash: str | None
    parent_target: str | None
    # Partners' hashes (known from the hash step), handed to the jobs that use them.
    raw_pair_hash: str | None
    live_pair_hash: str | None


@dataclass(slots=True)  # not frozen: see JournalFile
class FileUpdate:
    file_id: int
    state: FileState
    hash: str | None = None
    target: str | None = None
    strategy: str | None = None
    error_step: ImportStep | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Tally:
    """Counts over a session's journal: (state, media type) → files and bytes."""

    files: dict[tuple[FileState, MediaType | None], int]
    bytes: dict[tuple[FileState, MediaType | None], int]
    failed_by_step: dict[ImportStep, int]
    strategies: dict[str, int]

    def count(self, *states: FileState, sidecars: bool | None = None) -> int:
        return sum(n for (s, m), n in self.files.items() if s in states and _is_kind(m, sidecars))

    def size(self, *states: FileState, sidecars: bool | None = None) -> int:
        return sum(n for (s, m), n in self.bytes.items() if s in states and _is_kind(m, sidecars))


def _is_kind(media_type: MediaType | None, sidecars: bool | None) -> bool:
    return sidecars is None or (media_type is MediaType.SIDECAR) == sidecars


_FILE_COLUMNS = (
    "session_id",
    "file_id",
    "source",
    "size",
    "media_type",
    "extension",
    "parent_id",
    "raw_pair_id",
    "live_pair_id",
    "state",
    "error_step",
    "error",
)
_STATES = {state.value: state for state in FileState}
_MEDIA_TYPES = {media_type.value: media_type for media_type in MediaType}

_PAGE_SQL = """
SELECT f.file_id, f.source, f.size, f.media_type, f.extension, f.state, f.hash, f.target,
       f.parent_id, f.raw_pair_id, f.live_pair_id, p.state, p.hash, p.target, r.hash, l.hash
FROM aus_import_files f
LEFT JOIN aus_import_files p ON p.session_id = f.session_id AND p.file_id = f.parent_id
LEFT JOIN aus_import_files r ON r.session_id = f.session_id AND r.file_id = f.raw_pair_id
LEFT JOIN aus_import_files l ON l.session_id = f.session_id AND l.file_id = f.live_pair_id
WHERE f.session_id = ? AND f.state = ? AND f.file_id > ? AND f.file_id <= ? AND (f.media_type = 'sidecar') = ?
ORDER BY f.file_id
LIMIT ?
"""


class Journal:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- sessions ------------------------------------------------------------------------------

    async def resume_scan(self, session_id: str) -> tuple[set[str], int]:
        """Before a scan goes on where its run stopped: every path it recorded (files and skips, which
        it passes over now) and the next free file id. Its errors are forgotten, to be found again
        where they still are (a folder that could not be read may be readable now)."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "DELETE FROM aus_import_files WHERE session_id = ? AND state = 'failed' AND error_step = ?",
                (session_id, ImportStep.SCAN.label),
            )
        rows = await self._db.fetch_all(
            "SELECT source FROM aus_import_files WHERE session_id = ?"
            " UNION ALL SELECT source FROM aus_import_skipped WHERE session_id = ?",
            (session_id, session_id),
        )
        last = await self._db.fetch_one(
            "SELECT coalesce(max(file_id), 0) FROM aus_import_files WHERE session_id = ?", (session_id,)
        )
        return {os.fsdecode(r[0]) for r in rows}, (last[0] if last else 0) + 1

    async def add_files(
        self, conn: Any, session_id: str, files: Sequence[NewFile], skipped: Sequence[Skipped]
    ) -> None:
        """In the caller's transaction: one scanned folder's files, and what it skipped."""
        await insert_many(
            conn,
            "aus_import_files",
            _FILE_COLUMNS,
            (
                (
                    session_id,
                    f.file_id,
                    os.fsencode(f.path),
                    f.size,
                    f.media_type.value if f.media_type else "",
                    f.extension,
                    f.parent_id,
                    f.raw_pair_id,
                    f.live_pair_id,
                    f.state.value,
                    ImportStep.SCAN.label if f.error else None,
                    f.error,
                )
                for f in files
            ),
        )
        if skipped:
            # Numbered on from the session's count, which is updated in the same transaction.
            async with conn.execute(
                "UPDATE aus_import_sessions SET skipped = skipped + ? WHERE session_id = ? RETURNING skipped",
                (len(skipped), session_id),
            ) as cursor:
                row = await cursor.fetchone()
            first = row[0] - len(skipped)
            await insert_many(
                conn,
                "aus_import_skipped",
                ("session_id", "seq", "source", "reason"),
                ((session_id, first + i, os.fsencode(s.path), s.reason) for i, s in enumerate(skipped)),
            )

    async def page(
        self,
        session_id: str,
        state: FileState,
        *,
        sidecars: bool,
        after: int,
        last: int,
        max_files: int,
        max_bytes: int,
    ) -> list[JournalFile]:
        """The next files in `state` after file_id `after` up to `last`, at most max_files and (past
        the first file) max_bytes, so every page ends soon enough to notice a cancel."""
        rows = await self._db.fetch_all(
            _PAGE_SQL, (session_id, state.value, after, last, int(sidecars), max_files)
        )
        page: list[JournalFile] = []
        total = 0
        for r in rows:
            total += r[2]
            if page and total > max_bytes:
                break
            page.append(
                JournalFile(
                    file_id=r[0],
                    path=os.fsdecode(r[1]),
                    size=r[2],
                    media_type=_MEDIA_TYPES[r[3]],  # by dict: an enum's call costs 13× as much
                    extension=r[4],
                    state=_STATES[r[5]],
                    hash=r[6],
                    target=r[7],
                    parent_id=r[8],
                    raw_pair_id=r[9],
                    live_pair_id=r[10],
                    parent_state=None if r[11] is None else _STATES[r[11]],
                    parent_hash=r[12],
                    parent_target=r[13],
                    raw_pair_hash=r[14],
                    live_pair_hash=r[15],
                )
            )
        return page

    async def links(self, session_id: str, after: int = 0) -> list[FileLinks]:
        """The id, size and links of every file after id `after`, in id order: what windows are cut
        from."""
        rows = await self._db.fetch_all(
            "SELECT file_id, size, parent_id, raw_pair_id, live_pair_id FROM aus_import_files"
            " WHERE session_id = ? AND file_id > ? ORDER BY file_id",
            (session_id, after),
        )
        return [FileLinks(r[0], r[1], (r[2], r[3], r[4])) for r in rows]

    async def add_windows(
        self, conn: Any, session_id: str, first_seq: int, windows: Sequence[Window]
    ) -> None:
        """In the caller's transaction: windows cut, numbered on from `first_seq` in reading order."""
        await insert_many(
            conn,
            "aus_import_windows",
            ("session_id", "seq", "first_id", "last_id"),
            ((session_id, first_seq + i, w.first, w.last) for i, w in enumerate(windows)),
        )

    async def windows(self, session_id: str) -> list[Window]:
        """The windows cut so far, in reading order."""
        rows = await self._db.fetch_all(
            "SELECT first_id, last_id FROM aus_import_windows WHERE session_id = ? ORDER BY seq",
            (session_id,),
        )
        return [Window(r[0], r[1]) for r in rows]

    async def update_files(self, session_id: str, updates: Iterable[FileUpdate], conn: Any = None) -> None:
        updates = list(updates)
        # A column that is SET has its indexes rewritten even when its value stays: the steps after
        # hashing leave `hash` out (SMALL, 20 000 files: their updates took 0.48 s of SQLite CPU, not 0.6).
        sets_hash = any(u.hash is not None for u in updates)
        sql = (
            "UPDATE aus_import_files SET state = ?,"
            + (" hash = COALESCE(?, hash)," if sets_hash else "")
            + " target = COALESCE(?, target), strategy = COALESCE(?, strategy), error_step = ?, error = ?"
            " WHERE session_id = ? AND file_id = ?"
        )
        rows = [
            (
                u.state.value,
                *((u.hash,) if sets_hash else ()),
                u.target,
                u.strategy,
                u.error_step.label if u.error_step else None,
                u.error,
                session_id,
                u.file_id,
            )
            for u in updates
        ]
        if conn is not None:
            await conn.executemany(sql, rows)
            return
        async with self._db.transaction() as own:
            await own.executemany(sql, rows)

    async def finalize_sidecars_of(self, conn: Any, session_id: str, parent_ids: Sequence[int]) -> list[int]:
        """In the caller's transaction: the validated sidecars of these parents are finalized; returns
        their sizes. Named index: without statistics SQLite would walk every file of the session for
        each chunk."""
        sizes: list[int] = []
        for chunk in chunked(parent_ids, MAX_VARIABLES):
            async with conn.execute(
                "UPDATE aus_import_files INDEXED BY aus_import_files_sidecars SET state = 'finalized'"
                " WHERE session_id = ? AND state = 'validated'"
                f" AND media_type = 'sidecar' AND parent_id IN ({', '.join('?' * len(chunk))})"
                " RETURNING size",
                (session_id, *chunk),
            ) as cursor:
                sizes.extend(r[0] for r in await cursor.fetchall())
        return sizes

    async def tally(self, session_id: str) -> Tally:
        rows = await self._db.fetch_all(
            "SELECT state, media_type, error_step, strategy, count(*), sum(size) FROM aus_import_files"
            " WHERE session_id = ? GROUP BY state, media_type, error_step, strategy",
            (session_id,),
        )
        files: dict[tuple[FileState, MediaType | None], int] = {}
        sizes: dict[tuple[FileState, MediaType | None], int] = {}
        by_step: dict[ImportStep, int] = {}
        strategies: dict[str, int] = {}
        for state, media, step, strategy, count, size in rows:
            key = (FileState(state), MediaType(media) if media else None)
            files[key] = files.get(key, 0) + count
            sizes[key] = sizes.get(key, 0) + (size or 0)
            if step:
                by_step[ImportStep.of_label(step)] = by_step.get(ImportStep.of_label(step), 0) + count
            if strategy:
                strategies[strategy] = strategies.get(strategy, 0) + count
        return Tally(files, sizes, by_step, strategies)

    async def failures(self, session_id: str, limit: int) -> list[FileProblem]:
        rows = await self._db.fetch_all(
            "SELECT source, error_step, error FROM aus_import_files WHERE session_id = ? AND state = 'failed'"
            " ORDER BY file_id LIMIT ?",
            (session_id, limit),
        )
        return [FileProblem(os.fsdecode(r[0]), ImportStep.of_label(r[1]), r[2] or "") for r in rows]

    async def skips(self, session_id: str, limit: int) -> list[Skipped]:
        rows = await self._db.fetch_all(
            "SELECT source, reason FROM aus_import_skipped WHERE session_id = ? ORDER BY seq LIMIT ?",
            (session_id, limit),
        )
        return [Skipped(os.fsdecode(r[0]), r[1]) for r in rows]

    async def unfinalized_targets(self, session_id: str) -> list[str]:
        """Archive paths this session wrote (or meant to) whose rows were never committed."""
        rows = await self._db.fetch_all(
            "SELECT DISTINCT target FROM aus_import_files WHERE session_id = ? AND target IS NOT NULL"
            " AND state != 'finalized'",
            (session_id,),
        )
        return [r[0] for r in rows]

    async def uncopy(self, session_id: str) -> None:
        """After a failure removed the uncommitted copies, their files go back to `hashed`, so a
        resume copies them again."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE aus_import_files SET state = 'hashed', target = NULL, strategy = NULL"
                " WHERE session_id = ? AND state IN ('copied', 'validated')",
                (session_id,),
            )

    async def reopen_failed(self, session_id: str, message_prefix: str) -> int:
        """Files failed with a message starting with `message_prefix` go back to where they were
        (`hashed` when they have a hash, else `scanned`), so a resume takes them again; returns how
        many."""
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE aus_import_files SET state = CASE WHEN hash IS NULL THEN 'scanned' ELSE 'hashed' END,"
                " error_step = NULL, error = NULL"
                " WHERE session_id = ? AND state = 'failed' AND substr(error, 1, ?) = ?",
                (session_id, len(message_prefix), message_prefix),
            )
            return int(cursor.rowcount)

    async def target_folders(self, session_id: str) -> list[str]:
        rows = await self._db.fetch_all(
            "SELECT DISTINCT target FROM aus_import_files WHERE session_id = ? AND target IS NOT NULL",
            (session_id,),
        )
        return sorted({os.path.dirname(r[0]) for r in rows})

    async def referenced(self, paths: Sequence[str]) -> set[str]:
        """Which of these archive paths a media row (any import, any location) points at."""
        found: set[str] = set()
        for chunk in chunked(paths, MAX_VARIABLES):
            marks = ", ".join("?" * len(chunk))
            for table in MEDIA_TABLES.values():
                column = table.path_column
                rows = await self._db.fetch_all(
                    f"SELECT {column} FROM {table.table} WHERE {column} IN ({marks})", chunk
                )
                found.update(r[0] for r in rows)
        return found

    async def probably_archived(self, files: Sequence[JournalFile]) -> set[int]:
        """Of these files, those whose name and size an app row of their media type already has
        (`<x>namo`, `file_size_bytes`): most likely duplicates, read without staging a copy."""
        found: set[int] = set()
        for media_type in {f.media_type for f in files if f.media_type is not MediaType.SIDECAR}:
            table = media_table(media_type)
            wanted: dict[tuple[str, int], list[int]] = {}
            for f in files:
                if f.media_type is media_type:
                    wanted.setdefault((os.path.basename(f.path), f.size), []).append(f.file_id)
            names = sorted({name for name, _ in wanted})
            for chunk in chunked(names, MAX_VARIABLES):
                rows = await self._db.fetch_all(
                    f"SELECT {table.column('namo')}, file_size_bytes FROM {table.table}"
                    f" WHERE {table.column('namo')} IN ({', '.join('?' * len(chunk))})",
                    chunk,
                )
                for name, size in rows:
                    found.update(wanted.get((name, size), ()))
        return found

    async def known_hashes(
        self, conn: Any, session_id: str, media_type: MediaType, files: Sequence[tuple[int, str]]
    ) -> set[str]:
        """Of these (file id, hash) pairs' hashes, those already archived for this media type or
        claimed by another file of this import (duplicates within one import are caught too, unlike
        the app). In the caller's transaction; a file's own row never counts. Named index: without
        statistics SQLite walked every file of the session for each chunk, a hash commit's time
        growing with the import (14 ms per chunk at 20 000 files)."""
        table = media_table(media_type)
        column = table.hash_column
        asking = {file_id for file_id, _ in files}
        found: set[str] = set()
        for chunk in chunked(sorted({digest for _, digest in files}), MAX_VARIABLES):
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT {column} FROM {table.table} WHERE {column} IN ({marks})"
            async with conn.execute(sql, chunk) as cursor:
                found.update(r[0] for r in await cursor.fetchall())
            async with conn.execute(
                f"SELECT hash, file_id FROM aus_import_files INDEXED BY aus_import_files_hash"
                f" WHERE session_id = ? AND media_type = ?"
                f" AND hash IN ({marks}) AND state IN ('hashed', 'copied', 'validated', 'finalized')",
                (session_id, media_type.value, *chunk),
            ) as cursor:
                found.update(digest for digest, file_id in await cursor.fetchall() if file_id not in asking)
        return found
