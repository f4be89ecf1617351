"""Step 4: re-hash every copy from the medium (its cached pages dropped first) and compare.

A read error is retried, never a reason to delete a good copy; a mismatch is copied again once
(the copier replaces a damaged target atomically) and checked again, then it is the file's error.
"""

import asyncio
from dataclasses import dataclass
from functools import partial
from typing import Any

from sidecar.pipeline.context import RunContext
from sidecar.pipeline.journal import FileState, FileUpdate, JournalFile
from sidecar.pipeline.pages import PageStep, run_pages
from sidecar.pipeline.status import ImportStep
from sidecar.pipeline.steps.common import byte_work, count, failed
from sidecar.pipeline.windows import EVERYTHING, Window
from sidecar.workers.bytework import (
    CopyOutcome,
    CopyRequest,
    ValidateOutcome,
    ValidateRequest,
    copy_files,
    validate_files,
)


@dataclass(frozen=True, slots=True)
class Validated:
    outcomes: list[ValidateOutcome | None]  # None: not judged (a stop came before its retry)
    archive_moved: bool  # the copies were not missing, the archive was: they stay copied


async def run(ctx: RunContext, window: Window = EVERYTHING) -> None:
    step = PageStep(
        ImportStep.VALIDATE, partial(_validate, ctx), partial(_record, ctx), partial(_recorded, ctx)
    )
    for sidecars in (False, True):
        pages = ctx.pages(FileState.COPIED, sidecars=sidecars, writes=False, window=window)
        await run_pages(ctx.db, pages, step, ctx.stop, overlap=not ctx.network)


async def _validate(ctx: RunContext, page: list[JournalFile]) -> Validated:
    requests = [ValidateRequest(f.target or "", f.hash or "") for f in page]
    # Spread over the workers: the import's end waits for the re-read of the last window. Staging is
    # not spread: its batches wait on the one source medium, and more of them only kept every worker
    # from validating the window before (bench/README.md, the card's figures).
    outcomes = await byte_work(
        ctx, ImportStep.VALIDATE, validate_files, page, requests, _validate_failure, spread=True
    )
    reads = [o.from_medium for o in outcomes if o.error is None]
    if reads:
        ctx.state.from_medium = ctx.state.from_medium is not False and all(reads)
    again = [i for i, o in enumerate(outcomes) if not o.matches]
    if again and ctx.stop.is_set:
        # Stopping: what did not match stays copied, and the resume checks it again with its retry.
        unjudged = set(again)
        return Validated([None if i in unjudged else o for i, o in enumerate(outcomes)], False)
    if again:
        mismatched = [i for i in again if outcomes[i].error is None]
        if mismatched:
            copies = [CopyRequest(page[i].path, page[i].target or "", page[i].hash or "") for i in mismatched]
            sizes = [page[i].size for i in mismatched]
            await ctx.pool.run(copy_files, copies, sizes, failure=_copy_failure)
        retried = await ctx.pool.run(
            validate_files,
            [requests[i] for i in again],
            [page[i].size for i in again],
            failure=_validate_failure,
        )
        for i, outcome in zip(again, retried, strict=True):
            outcomes[i] = outcome
    return Validated(list(outcomes), await asyncio.to_thread(ctx.archive.moved))


async def _record(
    ctx: RunContext, conn: Any, page: list[JournalFile], validated: Validated
) -> list[FileUpdate]:
    if validated.archive_moved:
        return []
    updates = []
    for file, outcome in zip(page, validated.outcomes, strict=True):
        if outcome is None:
            continue
        if outcome.matches:
            updates.append(FileUpdate(file.file_id, FileState.VALIDATED))
        elif outcome.error is not None:
            updates.append(failed(file, ImportStep.VALIDATE, f"Could not re-read the copy: {outcome.error}"))
        else:
            message = (
                f"Hash mismatch: expected {file.hash}, got {outcome.hash}"
                " (the source changed while it was imported?)"
            )
            updates.append(failed(file, ImportStep.VALIDATE, message))
    await ctx.journal.update_files(ctx.sid, updates, conn)
    return updates


async def _recorded(ctx: RunContext, page: list[JournalFile], updates: list[FileUpdate]) -> None:
    count(ctx, ImportStep.VALIDATE, page, updates)


def _validate_failure(_: object, message: str) -> ValidateOutcome:
    return ValidateOutcome(None, False, False, message)


def _copy_failure(_: object, message: str) -> CopyOutcome:
    return CopyOutcome(False, None, 0, message, "source")
