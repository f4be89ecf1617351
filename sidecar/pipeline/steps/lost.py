"""Files a lost source left unread (a card pulled mid-import): when the import stops, each is a
per-file error saying so; when it resumes, they are read again from where they were.

The files still to be hashed or copied when the run stops are marked failed with `UNREAD`, at the
step they did not reach, so the result names every file the import could not take; the session
ends failed and resumable. A resume reopens exactly those (scanned again if never hashed, hashed if
never copied) before its steps run, so it ends as an import that was never interrupted.
"""

from sidecar.pipeline.context import RunContext
from sidecar.pipeline.journal import FileState
from sidecar.pipeline.sources import UNREAD
from sidecar.pipeline.status import ImportStep
from sidecar.pipeline.steps.common import failed

# Per state, the step a file in it did not get through.
_NOT_REACHED = ((FileState.SCANNED, ImportStep.HASH), (FileState.HASHED, ImportStep.COPY))


def stop_message(lost: str, unread: int) -> str:
    return (
        f"The source {lost} is gone: was the card or drive removed? {unread} files were not read;"
        " put it back and resume the import"
    )


async def mark_unread(ctx: RunContext, lost: str) -> int:
    """Every file not yet hashed or copied becomes a per-file error naming the lost source;
    returns how many."""
    marked = 0
    for state, step in _NOT_REACHED:
        for sidecars in (False, True):
            async for page in ctx.pages(state, sidecars=sidecars, writes=False):
                updates = [failed(f, step, f"{UNREAD}: {lost}") for f in page]
                await ctx.journal.update_files(ctx.sid, updates)
                marked += len(updates)
    return marked


async def reopen_unread(ctx: RunContext) -> int:
    """Put the files a lost source left unread back where they were; returns how many."""
    return await ctx.journal.reopen_failed(ctx.sid, UNREAD)
