"""One import session carried through its steps, from wherever its journal says it got to.

This only sequences: each step is a module of `steps/` that pages through the files still in its
input state and commits each page once (`pages.run_pages`). A crash loses at most the pages in
flight, which a resume redoes (a copy in place with the right content is kept).
"""

import asyncio
from collections.abc import Callable

from sidecar import fs
from sidecar.pipeline.context import RunContext
from sidecar.pipeline.sources import SourceGuard
from sidecar.pipeline.status import ImportStep
from sidecar.pipeline.steps import copy, finalize, lost, scan, validate
from sidecar.pipeline.steps import hash as hashing
from sidecar.pipeline.stop import ImportFailed


async def run_import(ctx: RunContext, jobs_added: Callable[[], None] = lambda: None) -> None:
    """Run what is left of the session. Raises Cancelled, Interrupted or ImportFailed."""
    await asyncio.to_thread(ctx.archive.check_usable)
    ctx.state.sources = SourceGuard(ctx.session.source_paths)
    await asyncio.to_thread(ctx.state.sources.capture)
    if ctx.session.last_step < ImportStep.HASH:  # the scan never finished: nothing was copied yet
        await scan.run(ctx)
    else:
        await lost.reopen_unread(ctx)  # a card pulled last time is back (or fails them again)
        # The location's folders too: copies cut off by a vanished archive have no target left in
        # the journal.
        folders = [*await ctx.journal.target_folders(ctx.sid), *ctx.media_folders()]
        await asyncio.to_thread(fs.sweep_temps, folders)
    await hashing.run(ctx)
    await copy.run(ctx)
    await validate.run(ctx)
    try:
        await finalize.run(ctx)
    finally:
        # The queue starts on them once the import is done with the disks and the database (jobs
        # running beside the finalize slowed it by a fifth); after a failure too.
        if ctx.state.jobs_committed:
            jobs_added()
    if ctx.state.sources.lost is not None:
        unread = await lost.mark_unread(ctx, ctx.state.sources.lost)
        raise ImportFailed(lost.stop_message(ctx.state.sources.lost, unread))
    if ctx.state.stop_reason is not None:
        raise ImportFailed(ctx.state.stop_reason)
