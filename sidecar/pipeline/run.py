"""One import session carried through its steps, from wherever its journal says it got to.

The files go through hash → copy → validate → finalize window by window (see `windows.py`), and the
steps overlap: while the scan records folders and cuts windows, the first window is read from the
source, the one before it copied, the one before that validated and committed, and its background
jobs start. Each step is a module of `steps/` that pages through a window's files still in its
input state and commits each page once (`pages.run_pages`); a step starts a window only once the
step before it finished that window, and runs at most AHEAD windows ahead of the step after it
(bounded staging and memory). A crash loses at most the pages in flight, which a resume redoes (a
copy in place with the right content is kept), and the resume follows the windows the run cut.
"""

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

from sidecar import fs
from sidecar.pipeline.context import RunContext
from sidecar.pipeline.journal import FileState
from sidecar.pipeline.sources import SourceGuard
from sidecar.pipeline.status import ImportStep
from sidecar.pipeline.steps import copy, finalize, lost, scan, validate
from sidecar.pipeline.steps import hash as hashing
from sidecar.pipeline.stop import ImportFailed
from sidecar.pipeline.windows import Cutter, Window, WindowFeed

StepRun = Callable[[RunContext, Window], Awaitable[None]]

# How many windows a step may finish before the step after it finishes them: its slack. Bounds what
# is staged and in flight to AHEAD + 1 windows per step.
AHEAD = 2


async def run_import(ctx: RunContext, jobs_added: Callable[[], None] = lambda: None) -> None:
    """Run what is left of the session. Raises Cancelled, Interrupted or ImportFailed."""
    await asyncio.to_thread(ctx.archive.check_usable)
    ctx.state.sources = SourceGuard(ctx.session.source_paths)
    await asyncio.to_thread(ctx.state.sources.capture)
    scanning = ctx.session.last_step < ImportStep.HASH  # the scan has not finished
    feed = await _windows(ctx, scanning)
    if feed.windows or not scanning:  # a resume of a run whose steps may have begun
        await lost.reopen_unread(ctx)  # a card pulled last time is back (or fails them again)
        # The location's folders too: copies cut off by a vanished archive have no target left in
        # the journal.
        folders = [*await ctx.journal.target_folders(ctx.sid), *ctx.media_folders()]
        await asyncio.to_thread(fs.sweep_temps, folders)
    steps: list[tuple[ImportStep, StepRun]] = [
        (ImportStep.HASH, hashing.run),
        (ImportStep.COPY, partial(copy.run, targets=copy.Targets(ctx))),
        (ImportStep.VALIDATE, validate.run),
        (ImportStep.FINALIZE, finalize.run),
    ]
    try:
        await _Pipeline(ctx, steps, feed, scanning, jobs_added).run()
    finally:
        if ctx.state.jobs_committed:
            jobs_added()  # after a failure too: what was committed has its jobs
    if ctx.state.sources.lost is not None:
        unread = await lost.mark_unread(ctx, ctx.state.sources.lost)
        raise ImportFailed(lost.stop_message(ctx.state.sources.lost, unread))
    if ctx.state.stop_reason is not None:
        raise ImportFailed(ctx.state.stop_reason)


async def _windows(ctx: RunContext, scanning: bool) -> WindowFeed:
    """The windows the session's runs cut so far, and its recorded files past them to cut on."""
    cut_before = await ctx.journal.windows(ctx.sid)
    cutter = Cutter(given=len(cut_before))
    cutter.add(await ctx.journal.links(ctx.sid, after=max((w.last for w in cut_before), default=0)))

    async def record(seq: int, windows: list[Window]) -> None:
        async with ctx.db.transaction() as conn:
            await ctx.journal.add_windows(conn, ctx.sid, seq, windows)

    return WindowFeed(cut_before, cutter, record, scanned=not scanning)


class _Pipeline:
    def __init__(
        self,
        ctx: RunContext,
        steps: Sequence[tuple[ImportStep, StepRun]],
        feed: WindowFeed,
        scanning: bool,
        jobs_added: Callable[[], None],
    ) -> None:
        self._ctx = ctx
        self._steps = steps
        self._feed = feed
        self._scanning = scanning  # until the scan is done, it is the front step
        self._jobs_added = jobs_added
        self._finished = [0] * len(steps)  # windows each step is done with
        self._complete = [False] * len(steps)  # the step went through every window
        self._moved = asyncio.Condition()
        self._reported: ImportStep | None = None  # the step the progress and the session row name
        self._announcing = asyncio.Lock()

    async def run(self) -> None:
        await _begin(self._ctx)
        await self._announce()
        runs = [self._run_step(i) for i in range(len(self._steps))]
        if self._scanning:
            runs.insert(0, self._scan())
        outcomes = await asyncio.gather(*runs, return_exceptions=True)
        # The earliest step's error is the cause: a step after it only stopped because it did.
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _scan(self) -> None:
        try:
            done = await scan.run(self._ctx, self._feed)
        except BaseException:
            self._ctx.state.halted = True
            raise
        finally:
            await self._feed.close()  # the steps end with the windows they have
        if done:  # else the session stays at the scan, for its resume to go on with it
            self._scanning = False
            await self._announce()

    async def _run_step(self, index: int) -> None:
        _, run_step = self._steps[index]
        try:
            k = 0
            while (window := await self._feed.get(k)) is not None:
                async with self._moved:
                    await self._moved.wait_for(partial(self._may_start, index, k))
                await run_step(self._ctx, window)
                await self._done_with(index, k + 1)
                if index == len(self._steps) - 1 and self._ctx.state.jobs_committed and self._ctx.read_once:
                    self._jobs_added()  # its jobs start while later windows are still read
                k += 1
            self._complete[index] = True
        except BaseException:
            self._ctx.state.halted = True  # the other steps stop at their next page
            raise
        finally:
            # The steps after it go on with what it finished (validating and committing what was
            # copied when writing had to stop), or stop at once when halted.
            await self._done_with(index, sys.maxsize)
        await self._announce()

    def _may_start(self, index: int, window: int) -> bool:
        """The step before is done with the window, and the step after is at most AHEAD windows
        behind (so a step that is slow for a moment does not stall the reads before it)."""
        last = len(self._steps) - 1
        return (index == 0 or self._finished[index - 1] > window) and (
            index == last or self._finished[index + 1] >= window - AHEAD
        )

    async def _done_with(self, index: int, windows: int) -> None:
        async with self._moved:
            self._finished[index] = windows
            self._moved.notify_all()

    async def _announce(self) -> None:
        """The session row, then the progress, name the earliest step with work left."""
        async with self._announcing:
            if self._scanning:
                step = ImportStep.SCAN
            else:
                left = (i for i, done in enumerate(self._complete) if not done)
                step, _ = self._steps[next(left, len(self._steps) - 1)]
            if self._reported is not None and step <= self._reported:
                return
            self._reported = step
            ctx = self._ctx
            tally = await ctx.journal.tally(ctx.sid)
            await ctx.sessions.set_status(ctx.sid, step.status, last_step=step, tally=tally)
            ctx.progress.report(step)


async def _begin(ctx: RunContext) -> None:
    """The progress of every step from the journal: what is done already (a resume) and what is left."""
    if ctx.archive.lost_reason is not None:
        raise ImportFailed(ctx.archive.lost_reason)
    tally = await ctx.journal.tally(ctx.sid)
    total_files = tally.count(*FileState) - tally.failed_by_step.get(ImportStep.SCAN, 0)
    total_bytes = tally.size(*FileState)
    progress = ctx.progress
    progress.restore(
        files=total_files,
        size=total_bytes,
        duplicates=tally.count(FileState.DUPLICATE, sidecars=False),
        errors=tally.count(FileState.FAILED),
    )
    waiting = [FileState.SCANNED]  # the states whose files a step has still to see
    for step, next_state in (
        (ImportStep.HASH, FileState.HASHED),
        (ImportStep.COPY, FileState.COPIED),
        (ImportStep.VALIDATE, FileState.VALIDATED),
        (ImportStep.FINALIZE, None),
    ):
        files_done = total_files - tally.count(*waiting)
        bytes_done = total_bytes - tally.size(*waiting)
        if step is ImportStep.FINALIZE:
            progress.start(step, total=total_files, done=files_done, files=files_done, size=bytes_done)
        else:  # see common.work_of
            total, done = total_bytes + total_files, bytes_done + files_done
            progress.start(step, total=total, done=done, files=files_done, size=bytes_done)
        if next_state is not None:
            waiting.append(next_state)
