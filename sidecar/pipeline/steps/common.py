"""What the byte steps share: entering a step (session row, then progress), byte work with live
per-file progress, and counting what a committed page changed."""

import os
from collections.abc import Callable, Sequence
from typing import TypeVar

from sidecar.pipeline.context import RunContext
from sidecar.pipeline.journal import FileState, FileUpdate, JournalFile
from sidecar.pipeline.status import ImportStep
from sidecar.pipeline.stop import ImportFailed

T = TypeVar("T")
R = TypeVar("R")


async def enter(ctx: RunContext, step: ImportStep, work_state: FileState, *, by_files: bool = False) -> None:
    """Start `step` over the files in `work_state`: the session row first (what the app reads after
    an event must already be true), then the progress with what is done and what is left."""
    if ctx.archive.lost_reason is not None:
        raise ImportFailed(ctx.archive.lost_reason)
    tally = await ctx.journal.tally(ctx.sid)
    total_files = tally.count(*FileState) - tally.failed_by_step.get(ImportStep.SCAN, 0)
    total_bytes = tally.size(*FileState)
    left_files = tally.count(work_state)
    left_bytes = tally.size(work_state)
    await ctx.sessions.set_status(ctx.sid, step.status, last_step=step, tally=tally)
    progress = ctx.progress
    progress.set_totals(total_files, total_bytes)
    progress.duplicates = tally.count(FileState.DUPLICATE, sidecars=False)
    progress.errors = tally.count(FileState.FAILED)
    progress.begin_step(
        step,
        work=left_files if by_files else left_bytes,
        files_processed=total_files - left_files,
        bytes_processed=total_bytes - left_bytes,
    )


async def byte_work(
    ctx: RunContext,
    fn: Callable[[list[T]], list[R]],
    page: Sequence[JournalFile],
    items: Sequence[T],
    failure: Callable[[T, str], R],
    max_in_flight: int | None = None,
) -> list[R]:
    """`fn` over a page's items in the pool, the progress moving per file as its batch completes."""

    def done(index: int, _: object) -> None:
        file = page[index]
        ctx.progress.advance(
            work=file.size, files=1, size=file.size, current_file=os.path.basename(file.path)
        )

    return await ctx.pool.run(
        fn,
        list(items),
        [f.size for f in page],
        on_item_done=done,
        failure=failure,
        max_in_flight=max_in_flight,
    )


def failed(file: JournalFile, step: ImportStep, message: str) -> FileUpdate:
    return FileUpdate(file.file_id, FileState.FAILED, error_step=step, error=message)


def count(ctx: RunContext, updates: Sequence[FileUpdate]) -> None:
    """Progress counts of what a committed page changed."""
    ctx.progress.count(
        duplicates=sum(1 for u in updates if u.state is FileState.DUPLICATE),
        errors=sum(1 for u in updates if u.state is FileState.FAILED),
    )
