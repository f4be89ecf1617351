"""Imports, one at a time, first come first served: start, resume, cancel, status.

A queued import already has its `pending` session row. Each import ends in an ImportOutcome (counts,
never per-file arrays) and a `completed` event, whatever its status; an import interrupted by
shutdown stays resumable and its caller is told so.
"""

import asyncio
import os
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sidecar.archive.layout import UnsafeLocation, location_folder
from sidecar.db import settings
from sidecar.db.connection import Database
from sidecar.db.errors import database_refusal
from sidecar.db.locations import Location, find_location, sublocation_of
from sidecar.errors import (
    ArchiveNotConfigured,
    InvalidParams,
    LocationNotFound,
    SessionNotFound,
    SessionNotResumable,
    ShuttingDown,
)
from sidecar.log import get_logger
from sidecar.pipeline.context import PAGE_FILES, ArchiveGuard, ByteWork, RunContext
from sidecar.pipeline.ending import Ending
from sidecar.pipeline.events import ImportEvents
from sidecar.pipeline.finalizer import Finalizer, JobPlanner
from sidecar.pipeline.journal import Journal
from sidecar.pipeline.outcome import ImportOutcome, QueueView, ResumableSession
from sidecar.pipeline.progress import ImportProgress
from sidecar.pipeline.run import run_import
from sidecar.pipeline.sessions import SessionRecord, Sessions
from sidecar.pipeline.sources import ReadOnce, network_sources, reads_once
from sidecar.pipeline.status import ImportStatus
from sidecar.pipeline.stop import Cancelled, ImportFailed, Interrupted, StopSignal
from sidecar.timestamps import now_iso

# At shutdown the running page may finish for this long before in-flight copies are stopped.
SHUTDOWN_PAGE_GRACE_S = 4.0
# The location values an import keeps with its session (its folder is named from them).
# What an import keeps of its request with its session: the location values its folder is named
# from, and what goes into every row it writes.
_KEPT_FIELDS = (
    "locid",
    "loc12",
    "address_state",
    "type",
    "slocnam",
    "subid",
    "auth_imp",
    "is_contributed",
    "contribution_source",
)

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ImportRequest:
    """What `import:v2:start` asks for, its params already checked against protocol/."""

    paths: tuple[str, ...]
    locid: str
    loc12: str | None = None
    address_state: str | None = None
    type: str | None = None
    slocnam: str | None = None
    subid: str | None = None  # a sub-location of the location
    auth_imp: str | None = None  # who took the media, when not the importing user
    is_contributed: bool = False
    contribution_source: str | None = None


@dataclass
class _Ticket:
    session_id: str
    done: "asyncio.Future[ImportOutcome]"
    stop: StopSignal = field(default_factory=StopSignal)
    progress: ImportProgress | None = None


class ImportOrchestrator:
    def __init__(
        self,
        db: Database,
        pool: ByteWork,
        events: ImportEvents,
        jobs: JobPlanner,
        archive_root: Callable[[], Awaitable[str | None]],
        allow_hardlinks: bool = False,
        read_once: ReadOnce = ReadOnce.AUTO,
        jobs_added: Callable[[], None] = lambda: None,
        page_files: int = PAGE_FILES,
    ) -> None:
        self._db = db
        self._pool = pool
        self._events = events
        self._find_archive = archive_root
        self._allow_hardlinks = allow_hardlinks
        self._read_once = read_once
        self._jobs_added = jobs_added  # wakes the job scheduler: new work starts at once
        self._page_files = page_files
        self._journal = Journal(db)
        self._sessions = Sessions(db)
        self._finalizer = Finalizer(self._journal, jobs)
        self._ending = Ending(db, self._sessions, self._journal, self._finalizer)
        self._queue: deque[_Ticket] = deque()
        self._wakeup = asyncio.Event()
        self._current: _Ticket | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def db_path(self) -> Path:
        return self._db.path

    # -- the methods behind import:v2:* ---------------------------------------------------------

    async def start(self, request: ImportRequest) -> ImportOutcome:
        """Check the location, write the pending session, queue it, and resolve when it ends."""
        archive_root = await self._archive_root()
        row = await find_location(self._db, request.locid)
        if row is None:
            raise LocationNotFound(locid=request.locid)
        if request.subid is not None and not await sublocation_of(self._db, request.subid, row.locid):
            message = f"not a sub-location of location {row.locid}: {request.subid}"
            raise InvalidParams([{"path": "/0/subid", "message": message}])
        values = {name: getattr(request, name) for name in _KEPT_FIELDS}
        try:
            location_folder(Path(archive_root), _location(row, values))
        except UnsafeLocation as exc:
            raise InvalidParams([{"path": "/0", "message": str(exc)}]) from None
        user = await settings.current_user(self._db)
        record = SessionRecord.pending(
            row.locid,
            _absolute(request.paths),
            values,
            archive_root,
            (user.user_id, user.username) if user else None,
        )
        await self._sessions.create(record)
        log.info("import queued", extra={"action": "import.queued", "session": record.session_id})
        return await self._enqueue(record.session_id)

    async def resume(self, session_id: str) -> ImportOutcome:
        record = await self._sessions.load(session_id)
        if record is None:
            raise SessionNotFound(sessionId=session_id)
        if not record.can_resume or record.status.final:
            raise SessionNotResumable(sessionId=session_id, status=record.status.value)
        if self._ticket(session_id) is not None:
            raise SessionNotResumable("Session is already running or queued", sessionId=session_id)
        return await self._enqueue(session_id)

    async def cancel(self, session_id: str) -> bool:
        """Whether a running or queued import was cancelled."""
        current = self._current
        if current is not None and current.session_id == session_id:
            current.stop.cancel()
            self._pool.cancel()  # in-flight copies stop at their next chunk
            return True
        queued = next((t for t in self._queue if t.session_id == session_id), None)
        if queued is None:
            return False
        self._queue.remove(queued)
        started = now_iso()
        await self._sessions.set_status(
            session_id,
            ImportStatus.CANCELLED,
            can_resume=False,
            error="Import cancelled",
            completed_at=started,
        )
        outcome = await self._ending.outcome(
            session_id, ImportStatus.CANCELLED, started, "Import cancelled", None
        )
        self._events.completed(outcome)
        queued.done.set_result(outcome)
        return True

    def status(self) -> QueueView:
        queued = tuple(t.session_id for t in self._queue)
        current = self._current
        if current is None or current.progress is None:
            return QueueView(None, None, queued)
        return QueueView(current.session_id, current.progress.snapshot(), queued)

    async def resumable(self) -> list[ResumableSession]:
        active = {t.session_id for t in self._queue} | (
            {self._current.session_id} if self._current else set()
        )
        return [s for s in await self._sessions.resumable() if s.session_id not in active]

    # -- the worker ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Runs queued imports one after another until cancelled."""
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            ticket = self._queue.popleft()
            self._current = ticket
            self._idle.clear()
            try:
                await self._execute(ticket)
            except Exception as exc:
                # Even bookkeeping can fail (the app holding the database past the busy timeout):
                # that ends this import's call with an error, never the loop that runs the others.
                log.exception(
                    "import bookkeeping failed",
                    extra={"action": "import.crash", "session": ticket.session_id},
                )
                if not ticket.done.done():
                    ticket.done.set_exception(exc)
            finally:
                self._current = None
                self._idle.set()

    async def shutdown(self) -> None:
        """Stop taking work; the running import stops at a page boundary and stays resumable."""
        for ticket in self._queue:
            if not ticket.done.done():
                ticket.done.set_exception(ShuttingDown(sessionId=ticket.session_id))
        self._queue.clear()
        current = self._current
        if current is None:
            return
        current.stop.interrupt()
        try:
            async with asyncio.timeout(SHUTDOWN_PAGE_GRACE_S):
                await self._idle.wait()
        except TimeoutError:
            self._pool.cancel()  # a long copy in flight: stop it at its next chunk
            await self._idle.wait()

    async def _enqueue(self, session_id: str) -> ImportOutcome:
        ticket = _Ticket(session_id, asyncio.get_running_loop().create_future())
        self._queue.append(ticket)
        self._wakeup.set()
        # Shielded: if the caller goes away the import still runs to its end.
        return await asyncio.shield(ticket.done)

    def _ticket(self, session_id: str) -> _Ticket | None:
        if self._current is not None and self._current.session_id == session_id:
            return self._current
        return next((t for t in self._queue if t.session_id == session_id), None)

    async def _execute(self, ticket: _Ticket) -> None:
        sid = ticket.session_id
        started = now_iso()
        record = await self._sessions.load(sid)
        assert record is not None
        progress = ImportProgress(sid, self._events, record.status)
        ticket.progress = progress
        log.info("import started", extra={"action": "import.start", "session": sid, "resumed": record.status})
        status, error = ImportStatus.FAILED, None
        ctx: RunContext | None = None
        try:
            row = await find_location(self._db, record.locid)
            if row is None:
                raise ImportFailed("Location not found")
            ctx = RunContext(
                db=self._db,
                sessions=self._sessions,
                journal=self._journal,
                finalizer=self._finalizer,
                pool=self._pool,
                session=record,
                location=_location(row, record.request),
                progress=progress,
                stop=ticket.stop,
                archive=ArchiveGuard(record.archive_root),
                allow_hardlinks=self._allow_hardlinks,
                read_once=await asyncio.to_thread(
                    reads_once, self._read_once, record.source_paths, record.archive_root
                ),
                network=await asyncio.to_thread(network_sources, record.source_paths),
                page_files=self._page_files,
            )
            await run_import(ctx, self._jobs_added)
            await self._ending.complete(record)
            self._jobs_added()
            status = ImportStatus.COMPLETED
        except Cancelled:
            status, error = ImportStatus.CANCELLED, "Import cancelled"
            await self._ending.cancel(record, error)
        except Interrupted:
            progress.close()
            log.info("import interrupted", extra={"action": "import.interrupted", "session": sid})
            ticket.done.set_exception(
                ShuttingDown("The sidecar is shutting down; the import is resumable", sessionId=sid)
            )
            return
        except ImportFailed as exc:
            error = str(exc)
            await self._ending.fail(record, error)
        except Exception as exc:
            refusal = database_refusal(exc, self._db.path)
            if refusal is not None:
                error = refusal.message
                log.warning(
                    "import stopped by the database",
                    extra={"action": "import.db_error", "session": sid, "error": str(exc)},
                )
            else:
                incident = uuid.uuid4().hex[:12]
                log.exception(
                    "import failed", extra={"action": "import.error", "session": sid, "incident": incident}
                )
                error = f"Internal error (incident {incident})"
            await self._ending.fail(record, error)
        finally:
            self._pool.clear_cancel()
        progress.finish(status)
        progress.close()
        outcome = await self._ending.outcome(
            sid, status, started, error, ctx.state.from_medium if ctx else None
        )
        log.info("import ended", extra={"action": "import.end", "session": sid, "status": status})
        self._events.completed(outcome)
        if not ticket.done.done():
            ticket.done.set_result(outcome)

    async def _archive_root(self) -> str:
        folder = await self._find_archive()
        if folder is None:
            raise ArchiveNotConfigured()
        return folder


def _location(row: Location, request: dict[str, Any]) -> Location:
    """The folder comes from the location's row, falling back to the values the import was given."""
    return replace(
        row,
        slocnam=row.slocnam if row.slocnam is not None else request.get("slocnam"),
        type=row.type if row.type is not None else request.get("type"),
        address_state=row.address_state if row.address_state is not None else request.get("address_state"),
    )


def _absolute(paths: Sequence[str]) -> list[str]:
    # The app sends absolute paths; a relative one would depend on where the sidecar was started.
    return [os.path.abspath(p) for p in paths]
