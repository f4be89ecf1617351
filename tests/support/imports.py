"""An import run in process: the real database, journal, steps and worker functions, without the
sidecar process or its pool (the byte work runs on a thread), for tests of one step at a time."""

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sidecar.db.connection import Database
from sidecar.db.locations import find_location
from sidecar.jobs.planning import ImportJobs
from sidecar.pipeline import failpoints
from sidecar.pipeline.context import ArchiveGuard, RunContext
from sidecar.pipeline.finalizer import Finalizer
from sidecar.pipeline.journal import FileState, Journal
from sidecar.pipeline.outcome import ImportOutcome, ProgressSnapshot
from sidecar.pipeline.progress import ImportProgress
from sidecar.pipeline.sessions import SessionRecord, Sessions
from sidecar.pipeline.stop import Interrupted, StopSignal
from sidecar.workers import bytework
from tests.support.archive import add_location

LOCID = "5e1f0c3a-7d2b-4c89-9a61-2b7e4d0f8c13"
T = TypeVar("T")
Step = Callable[[RunContext], Awaitable[object]]
R = TypeVar("R")


# The worker functions keep per-process state (one read buffer): a pool worker runs one call at a
# time, and so must this process.
_ONE_CALL_AT_A_TIME = threading.Lock()


def _call(fn: Callable[[list[T]], list[R]], item: T) -> R:
    with _ONE_CALL_AT_A_TIME:
        [outcome] = fn([item])
    return outcome


class InlinePool:
    """The byte pool's interface over the same worker functions, one item at a time on a thread."""

    def __init__(self) -> None:
        self._cancel = threading.Event()
        self.calls: list[tuple[str, int]] = []  # (function, items) per run

    def cancel(self) -> None:
        self._cancel.set()

    def clear_cancel(self) -> None:
        self._cancel.clear()

    async def run(
        self,
        fn: Callable[[list[T]], list[R]],
        items: Sequence[T],
        sizes: Sequence[int],
        on_batch_done: Callable[[range], None] | None = None,
        *,
        failure: Callable[[T, str], R],
        max_in_flight: int | None = None,
        spread: bool = False,  # one item per batch here: spread already
    ) -> list[R]:
        self.calls.append((fn.__name__, len(items)))
        bytework.init_worker(self._cancel)
        outcomes: list[R] = []
        for index, item in enumerate(items):
            outcome = await asyncio.to_thread(_call, fn, item)
            outcomes.append(outcome)
            if on_batch_done is not None:  # one item per batch here
                on_batch_done(range(index, index + 1))
        return outcomes


@dataclass
class RecordedEvents:
    progress_events: list[ProgressSnapshot] = field(default_factory=list)
    outcomes: list[ImportOutcome] = field(default_factory=list)

    def progress(self, snapshot: ProgressSnapshot) -> None:
        self.progress_events.append(snapshot)

    def completed(self, outcome: ImportOutcome) -> None:
        self.outcomes.append(outcome)


@dataclass
class Harness:
    """One location and one import session in a fresh database and archive."""

    db: Database
    archive: Path
    session: SessionRecord
    pool: InlinePool = field(default_factory=InlinePool)
    events: RecordedEvents = field(default_factory=RecordedEvents)
    read_once: bool = True  # as the sidecar imports by default (`--read-once never`: False)

    @property
    def journal(self) -> Journal:
        return Journal(self.db)

    async def context(self, *, page_files: int = 4, read_once: bool | None = None) -> RunContext:
        """A fresh run of the session (as a resume is), reading the session as it is now."""
        session = await Sessions(self.db).load(self.session.session_id)
        assert session is not None
        location = await find_location(self.db, session.locid)
        assert location is not None
        guard = ArchiveGuard(session.archive_root)
        await asyncio.to_thread(guard.check_usable)
        return RunContext(
            db=self.db,
            sessions=Sessions(self.db),
            journal=self.journal,
            finalizer=Finalizer(self.journal, ImportJobs()),
            pool=self.pool,
            session=session,
            location=location,
            progress=ImportProgress(session.session_id, self.events, session.status),
            stop=StopSignal(),
            archive=guard,
            read_once=self.read_once if read_once is None else read_once,
            page_files=page_files,
        )

    async def files(self) -> dict[str, tuple[str, str | None, str | None]]:
        """Source file name → (state, hash, error step) from the journal."""
        rows = await self.db.fetch_all(
            "SELECT source, state, hash, error_step FROM aus_import_files WHERE session_id = ?"
            " ORDER BY file_id",
            (self.session.session_id,),
        )
        return {Path(bytes(r[0]).decode()).name: (r[1], r[2], r[3]) for r in rows}

    async def snapshot(self) -> dict[str, Any]:
        """What a run left: the journal's files, the archive's files, the media rows, the jobs."""
        archived = {
            str(p.relative_to(self.archive)): p.read_bytes()
            for p in self.archive.rglob("*")
            if p.is_file() and STAGING not in p.parts
        }
        media = await self.db.fetch_all("SELECT imghash, imgloc, imgnamo, imgloco FROM imgs ORDER BY imghash")
        jobs = await self.db.fetch_all("SELECT queue, count(*) FROM jobs GROUP BY queue ORDER BY queue")
        imports = await self.db.fetch_all("SELECT img_count FROM imports")
        return {
            "files": await self.files(),
            "archive": archived,
            "rows": [
                (h, str(Path(loc).relative_to(self.archive)), name, source) for h, loc, name, source in media
            ],
            "jobs": [tuple(r) for r in jobs],
            "imports": [tuple(r) for r in imports],
        }

    async def run(self, steps: Sequence[Step], **context: Any) -> RunContext:
        """The steps in order over one run's context (as ImportRun sequences them)."""
        ctx = await self.context(**context)
        for step in steps:
            await step(ctx)
        return ctx

    async def count(self, state: FileState) -> int:
        row = await self.db.fetch_one(
            "SELECT count(*) FROM aus_import_files WHERE session_id = ? AND state = ?",
            (self.session.session_id, state.value),
        )
        assert row is not None
        return int(row[0])


# Where a read-once import keeps the reads it staged for the copy: not the archive (a run's own,
# by session; the copy step empties it), so a snapshot leaves it out.
STAGING = ".aus-staging"


# The `new_harness` fixture of tests/pipeline/steps: a fresh harness over the same card.
NewHarness = Callable[[], Awaitable[Harness]]


async def open_harness(tmp_path: Path, sources: Sequence[Path], *, read_once: bool = True) -> Harness:
    archive = tmp_path / "archive"
    archive.mkdir(parents=True)
    db_path = tmp_path / "au-archive.db"
    db = await Database.open(db_path)
    location = add_location(db_path, locid=LOCID)  # one id, so runs' archive paths compare
    session = SessionRecord.pending(
        location.locid, [str(p) for p in sources], dict(location.params), str(archive), ("user-1", "alice")
    )
    await Sessions(db).create(session)
    return Harness(db, archive, session, read_once=read_once)


def stop_at(point: str, nth: int, how: Callable[[StopSignal], None] = StopSignal.interrupt) -> None:
    """Arm a failpoint that tells the run to stop, the way a cancel or a shutdown would."""

    async def stop(signal: StopSignal) -> None:
        how(signal)

    failpoints.arm(point, nth, stop)


async def stop_at_every_commit(
    new_harness: Callable[[], Awaitable[Harness]], before: Sequence[Step], step: Step, point: str
) -> int:
    """Run `step` stopped (as by a shutdown) at each time it reaches `point` in turn, then resumed
    by a fresh run: each must end exactly as an uninterrupted run. Returns how many stops landed."""
    reference = await new_harness()
    await reference.run([*before, step])
    expected = await reference.snapshot()
    for nth in itertools.count(1):
        harness = await new_harness()
        await harness.run(before)
        stop_at(point, nth)
        ctx = await harness.context()
        with contextlib.suppress(Interrupted):  # a stop after the last page: the step completes
            await step(ctx)
        failpoints.disarm()
        if not ctx.stop.is_set:  # the step reached `point` fewer than nth times
            return nth - 1
        await harness.run([step])  # the resume
        resumed = await harness.snapshot()
        for key, value in expected.items():
            assert resumed[key] == value, (
                f"{key} after a stop at {point} #{nth} and a resume: {_diff(resumed[key], value)}"
            )
    raise AssertionError("unreachable")


def _diff(actual: Any, expected: Any) -> str:
    if isinstance(actual, dict) and isinstance(expected, dict):
        keys = sorted(set(actual) | set(expected))
        return "; ".join(
            f"{k}: {actual.get(k)} != {expected.get(k)}" for k in keys if actual.get(k) != expected.get(k)
        )
    return f"{actual} != {expected}"
