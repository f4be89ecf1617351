"""How an import ends: completed, failed or cancelled, each leaving the archive invariant true
(every file under org-* has its row) in an order a kill at any point cannot break; and the
outcome it reports."""

import asyncio
import shutil
import sqlite3

from sidecar import fs
from sidecar.db.connection import Database
from sidecar.log import get_logger
from sidecar.pipeline.context import staging_folder
from sidecar.pipeline.finalizer import Finalizer
from sidecar.pipeline.journal import FileState, Journal
from sidecar.pipeline.outcome import MAX_LISTED, ImportOutcome
from sidecar.pipeline.sessions import SessionRecord, Sessions
from sidecar.pipeline.status import ImportStatus, ImportStep
from sidecar.timestamps import now_iso

log = get_logger(__name__)


class Ending:
    def __init__(self, db: Database, sessions: Sessions, journal: Journal, finalizer: Finalizer) -> None:
        self._db = db
        self._sessions = sessions
        self._journal = journal
        self._finalizer = finalizer

    async def complete(self, record: SessionRecord) -> None:
        """Completed: remove what failed validation (and killed copies) left behind, then the
        per-location jobs and the final status in one transaction. In this order, as a completed
        session is never looked at again: killed in between, its resume has only to finish."""
        await self.discard_unfinalized(record, resumable=False)
        tally = await self._journal.tally(record.session_id)
        now = now_iso()
        async with self._db.transaction() as conn:
            if tally.count(FileState.FINALIZED, sidecars=False):
                await self._finalizer.queue_location_jobs(conn, record, now)
            await self._sessions.write_status(
                conn,
                record.session_id,
                ImportStatus.COMPLETED,
                last_step=ImportStep.FINALIZE,
                can_resume=False,
                completed_at=now,
                tally=tally,
            )

    async def fail(self, record: SessionRecord, error: str) -> None:
        try:
            await self.discard_unfinalized(record, resumable=True)
            tally = await self._journal.tally(record.session_id)
            await self._sessions.set_status(
                record.session_id, ImportStatus.FAILED, can_resume=True, error=error, tally=tally
            )
        except sqlite3.OperationalError as exc:
            # The database that failed the import may refuse this too (still full, still locked):
            # the session then keeps its last step, resumable as after a crash, and the caller
            # still gets the failure.
            log.warning(
                "could not record the failure",
                extra={"action": "import.fail_unrecorded", "session": record.session_id, "error": str(exc)},
            )

    async def discard_unfinalized(self, record: SessionRecord, resumable: bool) -> None:
        """Keep the archive invariant: every file under org-* has its row. Copies this session made
        that were never committed are removed (unless some row uses that very file)."""
        sid = record.session_id
        targets = await self._journal.unfinalized_targets(sid)
        in_use = await self._journal.referenced(targets)
        folders = await self._journal.target_folders(sid)
        if resumable:
            # The journal first: a resume must never take a removed copy for a validated one (it
            # would write rows for files that are gone). If this write fails, the copies stay.
            await self._journal.uncopy(sid)
        await asyncio.to_thread(fs.remove_files, [t for t in targets if t not in in_use])
        await asyncio.to_thread(fs.sweep_temps, folders)
        await asyncio.to_thread(shutil.rmtree, staging_folder(record), True)

    async def outcome(
        self, sid: str, status: ImportStatus, started: str, error: str | None, from_medium: bool | None
    ) -> ImportOutcome:
        record = await self._sessions.load(sid)
        assert record is not None
        tally = await self._journal.tally(sid)
        everything = tuple(FileState)
        completed = now_iso()
        return ImportOutcome(
            session_id=sid,
            status=status,
            total_files=tally.count(*everything) - tally.failed_by_step.get(ImportStep.SCAN, 0),
            total_bytes=tally.size(*everything),
            skipped=record.skipped,
            duplicates=tally.count(FileState.DUPLICATE, sidecars=False),
            errors_by_step=dict(tally.failed_by_step),
            copied_bytes=tally.size(FileState.COPIED, FileState.VALIDATED, FileState.FINALIZED),
            strategy=max(tally.strategies, key=tally.strategies.__getitem__, default=None),
            finalized=tally.count(FileState.FINALIZED, sidecars=False),
            sidecars_finalized=tally.count(FileState.FINALIZED, sidecars=True),
            jobs_queued=record.jobs_queued,
            from_medium=from_medium,
            problems=tuple(await self._journal.failures(sid, MAX_LISTED)),
            skips=tuple(await self._journal.skips(sid, MAX_LISTED)),
            started_at=started,
            completed_at=completed,
            error=error,
        )

    async def cancel(self, record: SessionRecord, error: str) -> None:
        """The journal forgets the copies, they go, and only then is the status final: killed (or a
        write refused) anywhere in between, the session stays resumable and consistent. A final
        status first would leave the copies not yet removed without rows for good."""
        await self.discard_unfinalized(record, resumable=True)
        await self._sessions.set_status(
            record.session_id, ImportStatus.CANCELLED, can_resume=False, error=error, completed_at=now_iso()
        )
