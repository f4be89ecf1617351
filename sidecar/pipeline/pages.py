"""The page loop every byte step runs on: each page's byte work, then its outcomes recorded in one
transaction, committed exactly once whatever stops the loop.

A page leaves the pages in flight *before* its commit begins, so nothing that ends the loop (a stop
between pages, an error in a commit, a cancelled task) can commit it a second time; and a page
whose work is in flight when the loop stops still has its outcomes committed, so every copy it made
is known to the journal (a cancel's cleanup must find it). Stops are noticed between pages, by the
page source.
"""

import asyncio
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable, Coroutine
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


async def run_pages(
    db: Database, pages: AsyncIterable[Page], step: PageStep[W, R], stop: StopSignal, *, overlap: bool
) -> None:
    """Every page of `pages` through `step`, committed in order. With `overlap`, a page's work runs
    while the page before it is committed, so the workers stay busy through the database writes."""
    label = step.step.label
    in_flight: deque[tuple[Page, asyncio.Task[W]]] = deque()

    async def commit_oldest() -> None:
        page, work = in_flight.popleft()  # first: whatever happens below, never committed again
        outcome = await work
        try:
            result = await commit(db, step.step, stop, lambda conn: step.record(conn, page, outcome))
        except Exception:
            await step.unrecorded(page, outcome)
            raise
        await step.recorded(page, result)

    try:
        async for page in pages:
            in_flight.append((page, asyncio.create_task(step.work(page), name=f"{label}-page")))
            await failpoints.reached(f"{label}.page", stop)
            while len(in_flight) > (1 if overlap else 0):
                await commit_oldest()
        while in_flight:
            await commit_oldest()
    except asyncio.CancelledError:
        for _, work in in_flight:  # the run itself is being torn down: nothing waits for its pages
            work.cancel()
        raise
    except Exception:
        # Stopped with pages in flight: the pool's cancel flag ends their work quickly, and what
        # they did is still recorded. The error that stopped the loop is the one that counts.
        while in_flight:
            try:
                await commit_oldest()
            except Exception as exc:
                log.warning(
                    "a page in flight at a stop could not be recorded",
                    extra={"action": "import.page_lost", "step": label, "error": str(exc)},
                )
        raise
