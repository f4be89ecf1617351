"""All SQL of an import's session: the app's `import_sessions` row and our `aus_import_sessions`
row beside it (what the app's row cannot hold: the location values, archive root and user)."""

import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from sidecar.db.connection import Database
from sidecar.pipeline.journal import FileState, Tally
from sidecar.pipeline.outcome import ResumableSession
from sidecar.pipeline.status import ImportStatus
from sidecar.timestamps import now_iso


@dataclass(frozen=True, slots=True)
class SessionRecord:
    session_id: str
    locid: str
    status: ImportStatus
    last_step: int
    can_resume: bool
    started_at: str
    source_paths: list[str]
    request: dict[str, Any]
    archive_root: str
    import_id: str
    user_id: str | None
    username: str | None
    skipped: int
    jobs_queued: int

    # What the import was asked to write into every row (the request's attribution).
    @property
    def subid(self) -> str | None:
        return self.request.get("subid")

    @property
    def author(self) -> str | None:
        """`auth_imp`: who took the media, as the request says, else the importing user."""
        return self.request.get("auth_imp") or self.username

    @property
    def is_contributed(self) -> int:
        return int(bool(self.request.get("is_contributed")))

    @property
    def contribution_source(self) -> str | None:
        return self.request.get("contribution_source")

    @classmethod
    def pending(
        cls,
        locid: str,
        source_paths: list[str],
        request: dict[str, Any],
        archive_root: str,
        user: tuple[str, str] | None,
    ) -> "SessionRecord":
        """A new import, queued: its session and its `imports` row get fresh ids."""
        return cls(
            session_id=str(uuid.uuid4()),
            locid=locid,
            status=ImportStatus.PENDING,
            last_step=0,
            can_resume=True,
            started_at=now_iso(),
            source_paths=source_paths,
            request=request,
            archive_root=archive_root,
            import_id=str(uuid.uuid4()),
            user_id=user[0] if user else None,
            username=user[1] if user else None,
            skipped=0,
            jobs_queued=0,
        )


class Sessions:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, record: SessionRecord) -> None:
        """Written before step 1, so even a crash in the scan leaves a resumable session."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO import_sessions (session_id, locid, status, source_paths, started_at,"
                " can_resume, last_step) VALUES (?, ?, 'pending', ?, ?, 1, 0)",
                (
                    record.session_id,
                    record.locid,
                    orjson.dumps(record.source_paths).decode(),
                    record.started_at,
                ),
            )
            await conn.execute(
                "INSERT INTO aus_import_sessions (session_id, request, archive_root, import_id, user_id,"
                " username, queued_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.session_id,
                    orjson.dumps(record.request).decode(),
                    record.archive_root,
                    record.import_id,
                    record.user_id,
                    record.username,
                    record.started_at,
                ),
            )

    async def load(self, session_id: str) -> SessionRecord | None:
        row = await self._db.fetch_one(
            "SELECT s.session_id, s.locid, s.status, s.last_step, s.can_resume, s.started_at, s.source_paths,"
            " a.request, a.archive_root, a.import_id, a.user_id, a.username, a.skipped, a.jobs_queued"
            " FROM import_sessions s JOIN aus_import_sessions a ON a.session_id = s.session_id"
            " WHERE s.session_id = ?",
            (session_id,),
        )
        if row is None:
            return None
        return SessionRecord(
            session_id=row[0],
            locid=row[1],
            status=ImportStatus(row[2]),
            last_step=row[3] or 0,
            can_resume=bool(row[4]),
            started_at=row[5],
            source_paths=orjson.loads(row[6]),
            request=orjson.loads(row[7]),
            archive_root=row[8],
            import_id=row[9],
            user_id=row[10],
            username=row[11],
            skipped=row[12],
            jobs_queued=row[13],
        )

    async def resumable(self) -> list[ResumableSession]:
        rows = await self._db.fetch_all(
            "SELECT s.session_id, s.locid, s.status, s.last_step, s.started_at, s.total_files,"
            " s.processed_files FROM import_sessions s"
            " JOIN aus_import_sessions a ON a.session_id = s.session_id"
            " WHERE s.can_resume = 1 AND s.status NOT IN ('completed', 'cancelled')"
            " ORDER BY s.started_at DESC, s.rowid DESC"
        )
        return [
            ResumableSession(
                session_id=r[0],
                locid=r[1],
                status=ImportStatus(r[2]),
                last_step=r[3] or 0,
                started_at=r[4],
                total_files=r[5] or 0,
                processed_files=r[6] or 0,
            )
            for r in rows
        ]

    async def set_status(
        self,
        session_id: str,
        status: ImportStatus,
        *,
        last_step: int | None = None,
        can_resume: bool = True,
        error: str | None = None,
        completed_at: str | None = None,
        tally: Tally | None = None,
    ) -> None:
        async with self._db.transaction() as conn:
            await self.write_status(
                conn,
                session_id,
                status,
                last_step=last_step,
                can_resume=can_resume,
                error=error,
                completed_at=completed_at,
                tally=tally,
            )

    async def write_status(
        self,
        conn: Any,
        session_id: str,
        status: ImportStatus,
        *,
        last_step: int | None = None,
        can_resume: bool = True,
        error: str | None = None,
        completed_at: str | None = None,
        tally: Tally | None = None,
    ) -> None:
        """The same as set_status, inside the caller's transaction."""
        await conn.execute(
            "UPDATE import_sessions SET status = ?, last_step = COALESCE(?, last_step), can_resume = ?,"
            " error = ?, completed_at = ? WHERE session_id = ?",
            (status.value, last_step, int(can_resume), error, completed_at, session_id),
        )
        if tally is not None:
            all_states = tuple(FileState)
            await conn.execute(
                "UPDATE import_sessions SET total_files = ?, total_bytes = ?, processed_files = ?,"
                " duplicate_files = ?, error_files = ?, processed_bytes = ? WHERE session_id = ?",
                (
                    tally.count(*all_states, sidecars=False),
                    tally.size(*all_states),
                    tally.count(FileState.FINALIZED, sidecars=False),
                    tally.count(FileState.DUPLICATE, sidecars=False),
                    tally.count(FileState.FAILED),
                    tally.size(FileState.COPIED, FileState.VALIDATED, FileState.FINALIZED),
                    session_id,
                ),
            )

    # -- files ---------------------------------------------------------------------------------
