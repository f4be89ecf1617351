"""The page loop alone: each page worked and committed exactly once, in order, whatever stops it
(issue 11: a page committed, then a stop raised inside its commit, was committed a second time)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.archive.media import MediaType
from sidecar.db.connection import Database
from sidecar.pipeline import failpoints
from sidecar.pipeline.journal import FileState, JournalFile
from sidecar.pipeline.pages import Page, PageStep, run_pages
from sidecar.pipeline.status import ImportStep
from sidecar.pipeline.stop import Cancelled, Interrupted, StopSignal


class Recorder:
    """Pages as numbers; notes every work start, work end and commit, and commits to a table."""

    def __init__(self, db: Database, stop: StopSignal, pages: int) -> None:
        self.db, self.stop, self.total = db, stop, pages
        self.log: list[str] = []
        self.fail_commit_of: int | None = None
        self.stop_inside_commit_of: int | None = None
        self.stop_before_page: int | None = None

    async def pages(self) -> AsyncIterator[Page]:
        for n in range(1, self.total + 1):
            if self.stop_before_page == n:
                self.stop.interrupt()
            self.stop.check()
            yield [_file(n)]

    async def work(self, page: Page) -> int:
        n = page[0].file_id
        self.log.append(f"work {n}")
        await asyncio.sleep(0)
        self.log.append(f"worked {n}")
        return n * 10

    async def record(self, conn: Any, page: Page, outcome: int) -> int:
        n = page[0].file_id
        assert outcome == n * 10
        await conn.execute("INSERT INTO committed (page) VALUES (?)", (n,))
        if self.fail_commit_of == n:
            raise RuntimeError(f"commit {n} failed")
        self.log.append(f"commit {n}")
        return n

    async def recorded(self, page: Page, n: int) -> None:
        if self.stop_inside_commit_of == n:
            # As the old step commits did: a stop check right after the page's transaction.
            self.stop.cancel()
            self.stop.check()

    async def unrecorded(self, page: Page, outcome: int) -> None:
        self.log.append(f"unrecorded {page[0].file_id} ({outcome})")

    def step(self) -> PageStep[int, int]:
        return PageStep(ImportStep.HASH, self.work, self.record, self.recorded, self.unrecorded)

    async def committed(self) -> list[int]:
        return [r[0] for r in await self.db.fetch_all("SELECT page FROM committed ORDER BY rowid")]


def _file(n: int) -> JournalFile:
    # Scanned, with no hash, target, parent or partners yet.
    return JournalFile(n, f"/src/{n}", 1, MediaType.IMAGE, "", FileState.SCANNED, *[None] * 10)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "pages.db")
    async with database.transaction() as conn:
        await conn.execute("CREATE TABLE committed (page INTEGER NOT NULL)")
    yield database
    await database.close()


@pytest.fixture(autouse=True)
def no_failpoints() -> Any:
    yield
    failpoints.disarm()


async def run(recorder: Recorder, overlap: bool = True) -> None:
    await run_pages(recorder.db, recorder.pages(), recorder.step(), recorder.stop, overlap=overlap)


async def test_every_page_is_worked_and_committed_once_in_order_the_next_working_meanwhile(
    db: Database,
) -> None:
    recorder = Recorder(db, StopSignal(), 4)
    await run(recorder)
    assert await recorder.committed() == [1, 2, 3, 4]
    # Page 2's work was handed out before page 1 was committed: the workers stay busy.
    assert recorder.log.index("work 2") < recorder.log.index("commit 1")


async def test_without_overlap_a_page_is_committed_before_the_next_is_worked(db: Database) -> None:
    recorder = Recorder(db, StopSignal(), 3)
    await run(recorder, overlap=False)
    assert recorder.log == [
        "work 1",
        "worked 1",
        "commit 1",
        "work 2",
        "worked 2",
        "commit 2",
        "work 3",
        "worked 3",
        "commit 3",
    ]


@pytest.mark.parametrize("stop_before", [1, 2, 3, 4])
async def test_a_stop_between_pages_commits_the_page_in_flight_once_and_works_no_more(
    db: Database, stop_before: int
) -> None:
    recorder = Recorder(db, StopSignal(), 4)
    recorder.stop_before_page = stop_before
    with pytest.raises(Interrupted):
        await run(recorder)
    # Pages before the stop: committed once each, the one in flight when it came included.
    assert await recorder.committed() == list(range(1, stop_before))
    assert f"work {stop_before}" not in recorder.log


@pytest.mark.parametrize("page", [1, 2, 3])
async def test_a_stop_raised_while_a_page_commits_never_commits_it_again(db: Database, page: int) -> None:
    """The reported loss: the commit's own stop check raised, and the loop committed the same page
    again (the journal then took the page's files for duplicates of themselves)."""
    recorder = Recorder(db, StopSignal(), 3)
    recorder.stop_inside_commit_of = page
    with pytest.raises(Cancelled):
        await run(recorder)
    committed = await recorder.committed()
    assert len(committed) == len(set(committed)), f"a page was committed twice: {committed}"
    assert committed[:page] == list(range(1, page + 1))


@pytest.mark.parametrize("point", ["page", "commit.before", "commit.inside", "commit.after"])
@pytest.mark.parametrize("nth", [1, 2, 3])
async def test_a_stop_at_any_failpoint_commits_every_handed_out_page_exactly_once(
    db: Database, point: str, nth: int
) -> None:
    stop = StopSignal()
    recorder = Recorder(db, stop, 4)

    async def interrupt(signal: StopSignal) -> None:
        signal.interrupt()

    failpoints.arm(f"hash.{point}", nth, interrupt)
    # A stop after the last page was handed out is the next step's to notice.
    with contextlib.suppress(Interrupted):
        await run(recorder)
    committed = await recorder.committed()
    handed_out = [int(entry.split()[1]) for entry in recorder.log if entry.startswith("work ")]
    assert stop.interrupted
    assert committed == handed_out, "every page whose work was handed out is committed, once"
    assert len(committed) <= nth + 1


async def test_a_failed_commit_rolls_back_its_page_keeps_the_error_and_still_records_the_page_in_flight(
    db: Database,
) -> None:
    recorder = Recorder(db, StopSignal(), 4)
    recorder.fail_commit_of = 2
    with pytest.raises(RuntimeError, match="commit 2 failed"):
        await run(recorder)
    # Page 2's insert was rolled back with its transaction; page 3 was in flight and is recorded.
    assert await recorder.committed() == [1, 3]
    assert "work 4" not in recorder.log
    # Page 2's work is handed back, with its outcome, to be undone (a copy page removes its copies).
    assert [entry for entry in recorder.log if entry.startswith("unrecorded")] == ["unrecorded 2 (20)"]


async def test_a_cancelled_loop_cancels_the_work_in_flight(db: Database) -> None:
    started = asyncio.Event()
    never = asyncio.Event()
    began: list[int] = []
    cancelled: list[int] = []
    stop = StopSignal()

    async def work(page: Page) -> int:
        began.append(page[0].file_id)
        started.set()
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.append(page[0].file_id)
            raise
        return 0

    async def record(conn: Any, page: Page, outcome: int) -> None:
        raise AssertionError("nothing is recorded")

    async def pages() -> AsyncIterator[Page]:
        yield [_file(1)]
        yield [_file(2)]

    loop = asyncio.create_task(
        run_pages(db, pages(), PageStep(ImportStep.COPY, work, record), stop, overlap=True)
    )
    await started.wait()
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    await asyncio.sleep(0)  # let every cancelled work run its handler
    assert began and sorted(cancelled) == sorted(began)
