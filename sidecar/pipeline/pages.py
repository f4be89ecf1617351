"""The page loop every byte step runs on: each page's byte work, then its outcomes recorded in one
transaction, committed exactly once whatever stops the loop.

Pages are handed out and committed by two tasks: the hand-out pulls the next page from its source
(a journal query, or a wait for the next window) while the pages before it are still committed, so
neither holds the other up. A page leaves the hand-out queue *before* its commit begins, so nothing
that ends the loop (a stop between pages, an error in a commit, a cancelled task) can commit it a
second time; and a page whose work was handed out when the loop stops still has its outcomes
committed, so every copy it made is known to the journal (a cancel's cleanup must find it). Stops
are noticed between pages, by the page source.

Besides pages, a source may yield milestones (a window's end): each is reached, in order, once
every page before it is committed.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aiosqlite

from sidecar.db.connection import Database
from sidecar.log import get_logger
from sidecar.pipeline import failpoints
from sidecar.pipeline.journal import JournalFile
from sidecar.pipeline.status import ImportStep
from sidecar.pipeline.stop import StopSignal

Page = list[JournalFile]
W = TypeVar("W")
R = TypeVar("R")

log = get_logger(__name__)


async def _nothing_after(_: Page, __: object) -> None:
    return None


@dataclass(frozen=True, slots=True)
class PageStep(Generic[W, R]):
    """What a step does with a page: `work` off the event loop (the byte pool), `record` its outcomes
    inside the page's transaction, then `recorded` once that committed (counts, leftover files), or
    `unrecorded` when the commit failed (files the work made that nothing will ever know of)."""

    step: ImportStep
    work: Callable[[Page], Coroutine[Any, Any, W]]
    record: Callable[[aiosqlite.Connection, Page, W], Awaitable[R]]
    recorded: Callable[[Page, R], Awaitable[None]] = _nothing_after
    unrecorded: Callable[[Page, W], Awaitable[None]] = _nothing_after


async def commit(
    db: Database, step: ImportStep, stop: StopSignal, record: Callable[[aiosqlite.Connection], Awaitable[R]]
) -> R:
    """One page's commit: a transaction of its own, between the points where tests stop it."""
    await failpoints.reached(f"{step.label}.commit.before", stop)
    async with db.transaction() as conn:
        await failpoints.reached(f"{step.label}.commit.inside", stop)
        result = await record(conn)
    await failpoints.reached(f"{step.label}.commit.after", stop)
    return result


@dataclass(frozen=True, slots=True)
class Milestone:
    """Not a page: `reached()` runs once every page before it in the source is committed."""

    reached: Callable[[], Awaitable[None]]


async def barrier() -> AsyncIterator[Milestone]:
    """For a page source: yields a milestone and resumes once it is reached (what follows needs
    the pages before it committed, as a sidecar needs its parent's target)."""
    committed = asyncio.Event()

    async def reached() -> None:
        committed.set()

    yield Milestone(reached)
    await committed.wait()


async def run_pages(
    db: Database,
    pages: AsyncIterable[Page | Milestone],
    step: PageStep[W, R],
    stop: StopSignal,
    *,
    overlap: bool,
    windows_in_turn: bool = False,
) -> None:
    """Every page of `pages` through `step`, committed in order, and every milestone reached in its
    place. With `overlap`, a page's work runs while the page before it is committed, so the workers
    stay busy through the database writes; without, the next page is read only once the one before
    it is committed. With `windows_in_turn`, the work of a page past a milestone starts once the
    work before it is done (a card read window after window, so the first window is done first,
    not at the pace of a clip read beside it)."""
    label = step.step.label
    slots = asyncio.Semaphore(2 if overlap else 1)  # pages handed out and not yet committed
    handed_out: asyncio.Queue[tuple[Page, asyncio.Task[W]] | Milestone | None] = asyncio.Queue()
    works: set[asyncio.Task[W]] = set()

    async def hand_out() -> None:
        source = aiter(pages)
        past_milestone = False
        try:
            while True:
                await slots.acquire()
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    return
                if isinstance(item, Milestone):
                    slots.release()
                    handed_out.put_nowait(item)
                    past_milestone = True
                    continue
                if past_milestone and works and windows_in_turn:
                    # The first page past a window's end is in hand already; its work waits for
                    # the work before it (not for its commit).
                    await asyncio.wait(set(works))
                past_milestone = False
                work = asyncio.create_task(step.work(item), name=f"{label}-page")
                works.add(work)
                work.add_done_callback(works.discard)
                handed_out.put_nowait((item, work))
                await failpoints.reached(f"{label}.page", stop)
        finally:
            handed_out.put_nowait(None)  # the end: the commits stop once they reach it

    async def commit_next(entry: tuple[Page, asyncio.Task[W]]) -> None:
        page, work = entry
        outcome = await work
        try:
            result = await commit(db, step.step, stop, lambda conn: step.record(conn, page, outcome))
        except Exception:
            await step.unrecorded(page, outcome)
            raise
        await step.recorded(page, result)
        slots.release()

    producer = asyncio.create_task(hand_out(), name=f"{label}-pages")
    try:
        while (entry := await handed_out.get()) is not None:
            if isinstance(entry, Milestone):
                await entry.reached()
            else:
                await commit_next(entry)
    except asyncio.CancelledError:
        producer.cancel()
        for work in list(works):  # the run itself is being torn down: nothing waits for its pages
            work.cancel()
        raise
    except Exception:
        # A commit failed: no more pages are handed out, and the pages whose work was handed out
        # are still recorded (the pool's cancel flag ends their work quickly). The error that
        # stopped the loop first is the one that counts: the source's stop, else the commit's.
        stopped = producer.done() and not producer.cancelled() and producer.exception()
        producer.cancel()
        with contextlib.suppress(BaseException):
            await producer
        while (entry := handed_out.get_nowait()) is not None:
            if isinstance(entry, Milestone):
                continue  # the step did not get there
            try:
                await commit_next(entry)
            except Exception as exc:
                log.warning(
                    "a page in flight at a stop could not be recorded",
                    extra={"action": "import.page_lost", "step": label, "error": str(exc)},
                )
        if stopped:
            raise stopped from None
        raise
    await producer  # a stop the source raised, now that every page handed out is committed
