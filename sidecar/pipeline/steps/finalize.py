"""Step 5: validated files get their rows in the app's tables, their import's counts and their
background jobs, one short transaction per page (see `Finalizer.record`). A resumed finalize sees
only files not yet finalized, so nothing is inserted twice."""

import os
from functools import partial
from typing import Any

from sidecar.pipeline.context import RunContext
from sidecar.pipeline.finalizer import CHUNK_FILES, ChunkResult
from sidecar.pipeline.journal import FileState, FileUpdate, JournalFile
from sidecar.pipeline.pages import PageStep, run_pages
from sidecar.pipeline.status import ImportStep
from sidecar.pipeline.steps.common import failed
from sidecar.pipeline.windows import EVERYTHING, Window
from sidecar.timestamps import now_iso


async def run(ctx: RunContext, window: Window = EVERYTHING) -> None:
    step = PageStep(ImportStep.FINALIZE, _orphans, partial(_record, ctx), partial(_recorded, ctx))
    for sidecars in (False, True):
        # Sidecars after their parents: one beside its parent is kept only if the parent got its row.
        # What was validated is committed even when writing copies had to stop (disk full).
        pages = ctx.pages(
            FileState.VALIDATED, sidecars=sidecars, writes=False, page_files=CHUNK_FILES, window=window
        )
        await run_pages(ctx.db, pages, step, ctx.stop, overlap=False)


async def _orphans(page: list[JournalFile]) -> list[FileUpdate]:
    """Sidecars copied beside a parent that did not get its row."""
    return [
        failed(f, ImportStep.FINALIZE, "Not archived: the file it belongs to was not archived")
        for f in page
        if f.parent_target
        and f.target
        and os.path.dirname(f.target) == os.path.dirname(f.parent_target)
        and f.parent_state is not FileState.FINALIZED
    ]


async def _record(
    ctx: RunContext, conn: Any, page: list[JournalFile], orphans: list[FileUpdate]
) -> tuple[list[FileUpdate], ChunkResult]:
    await ctx.journal.update_files(ctx.sid, orphans, conn)
    dropped = {u.file_id for u in orphans}
    kept = [f for f in page if f.file_id not in dropped]
    if not kept:
        return orphans, ChunkResult(0, 0, 0)
    return orphans, await ctx.finalizer.record(conn, ctx.session, kept, now_iso())


async def _recorded(
    ctx: RunContext, page: list[JournalFile], recorded: tuple[list[FileUpdate], ChunkResult]
) -> None:
    orphans, result = recorded
    if result.jobs:
        ctx.state.jobs_committed = True
    files, size = len(page) + result.sidecars_with_parents[0], sum(f.size for f in page)
    ctx.progress.advance(
        ImportStep.FINALIZE, work=files, files=files, size=size + result.sidecars_with_parents[1]
    )
    ctx.progress.count(duplicates=result.duplicates, errors=len(orphans))
