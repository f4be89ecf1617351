"""What the byte steps share: byte work with live per-file progress, and counting what a committed
page changed (a file that ends at one step is done for every step after it)."""

import os
from collections.abc import Callable, Sequence
from typing import TypeVar

from sidecar.archive.media import MediaType
from sidecar.pipeline.context import RunContext
from sidecar.pipeline.journal import FileState, FileUpdate, JournalFile
from sidecar.pipeline.status import ImportStep

T = TypeVar("T")
R = TypeVar("R")

# The states in which a file leaves the pipeline early: the steps after it never see the file.
_ENDED = (FileState.DUPLICATE, FileState.FAILED)


def work_of(file: JournalFile) -> int:
    """A file's work for a byte step's progress: its bytes, plus one so that empty files count."""
    return file.size + 1


async def byte_work(
    ctx: RunContext,
    step: ImportStep,
    fn: Callable[[list[T]], list[R]],
    page: Sequence[JournalFile],
    items: Sequence[T],
    failure: Callable[[T, str], R],
    max_in_flight: int | None = None,
    spread: bool = False,
) -> list[R]:
    """`fn` over a page's items in the pool, the progress moving as each batch of files completes."""

    def done(indices: range) -> None:
        files = [page[i] for i in indices]
        ctx.progress.advance(
            step,
            work=sum(work_of(f) for f in files),
            files=len(files),
            size=sum(f.size for f in files),
            current_file=os.path.basename(files[-1].path),
        )

    return await ctx.pool.run(
        fn,
        list(items),
        [f.size for f in page],
        on_batch_done=done,
        failure=failure,
        max_in_flight=max_in_flight,
        spread=spread,
    )


def failed(file: JournalFile, step: ImportStep, message: str) -> FileUpdate:
    return FileUpdate(file.file_id, FileState.FAILED, error_step=step, error=message)


def count(
    ctx: RunContext, step: ImportStep, page: Sequence[JournalFile], updates: Sequence[FileUpdate]
) -> None:
    """Progress counts of what a committed page of `step` changed: duplicates and errors, and the
    files that ended here, which the later steps will never see."""
    by_id = {f.file_id: f for f in page}
    ended = [(u.state, by_id[u.file_id]) for u in updates if u.state in _ENDED]
    ctx.progress.count(
        # A sidecar follows its parent: it is not a duplicate of its own (as in the result's counts).
        duplicates=sum(
            1 for state, f in ended if state is FileState.DUPLICATE and f.media_type is not MediaType.SIDECAR
        ),
        errors=sum(1 for state, _ in ended if state is FileState.FAILED),
    )
    for later in ImportStep:
        if later > step:
            skip(ctx, later, [f for _, f in ended])


def skip(ctx: RunContext, step: ImportStep, files: Sequence[JournalFile]) -> None:
    """`files` count as done for `step` without going through it."""
    if not files:
        return
    work = len(files) if step is ImportStep.FINALIZE else sum(work_of(f) for f in files)
    ctx.progress.advance(step, work=work, files=len(files), size=sum(f.size for f in files))
