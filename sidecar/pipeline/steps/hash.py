"""Step 2: the BLAKE3 hash of every scanned file, and which files are duplicates.

A duplicate's hash is already in its media type's table (any location, as in the app) or belongs
to an earlier file of this import; sidecars are never duplicates on their own (they follow their
parent). The one read of a file also stages its copy (see `RunContext.read_once`), unless an app
row already names a file of that name and size: that file is most likely a duplicate, so it is only
hashed, and a re-import of an archived card writes nothing. A wrong guess costs that file a second
read, at the copy.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sidecar import fs
from sidecar.archive.media import MediaType
from sidecar.pipeline.context import RunContext
from sidecar.pipeline.journal import FileState, FileUpdate, JournalFile
from sidecar.pipeline.pages import PageStep, run_pages
from sidecar.pipeline.status import ImportStep
from sidecar.pipeline.steps.common import byte_work, count, failed
from sidecar.pipeline.windows import EVERYTHING, Window
from sidecar.workers.bytework import HashOutcome, StageOutcome, StageRequest, hash_files, stage_files


@dataclass(frozen=True, slots=True)
class Read:
    hash: str | None
    error: str | None
    # "disk_full", "lost" (its source is gone) and "cancelled" leave the file as it was.
    error_kind: str | None


async def run(ctx: RunContext, window: Window = EVERYTHING) -> None:
    step = PageStep(ImportStep.HASH, partial(_read, ctx), partial(_record, ctx), partial(_recorded, ctx))
    for sidecars in (False, True):
        pages = ctx.pages(FileState.SCANNED, sidecars=sidecars, reads_sources=True, window=window)
        await run_pages(ctx.db, pages, step, ctx.stop, overlap=not ctx.network)


async def _read(ctx: RunContext, page: list[JournalFile]) -> list[Read]:
    archived = await ctx.journal.probably_archived(page) if ctx.read_once else None
    to_hash = [f for f in page if archived is None or f.file_id in archived]
    to_stage = [f for f in page if archived is not None and f.file_id not in archived]
    hashed, staged = await asyncio.gather(_hash(ctx, to_hash), _stage(ctx, to_stage))
    by_id = dict(zip([f.file_id for f in to_hash + to_stage], hashed + staged, strict=True))
    reads = [by_id[f.file_id] for f in page]
    failed_reads = [f.path for f, r in zip(page, reads, strict=True) if r.error_kind == "source"]
    # A source that failed a read may be gone as a whole (the card pulled): then its files were not
    # read rather than bad, and stay scanned for the resume (see steps/lost.py).
    lost = await asyncio.to_thread(ctx.state.sources.gone, failed_reads[0]) if failed_reads else None
    if lost is None:
        return reads
    gone = Read(None, f"The source {lost} is gone", "lost")
    return [gone if r.error_kind == "source" else r for r in reads]


async def _hash(ctx: RunContext, files: list[JournalFile]) -> list[Read]:
    if not files:
        return []
    hashes = await byte_work(ctx, ImportStep.HASH, hash_files, files, [f.path for f in files], _hash_failure)
    return [Read(o.hash, o.error, None if o.error is None else "source") for o in hashes]


async def _stage(ctx: RunContext, files: list[JournalFile]) -> list[Read]:
    """The single read that hashes a file while writing its staged copy."""
    if not files:
        return []
    requests = [StageRequest(f.path, ctx.staged(f)) for f in files]
    in_flight = 1 if ctx.network else None
    staged = await byte_work(
        ctx, ImportStep.HASH, stage_files, files, requests, _stage_failure, max_in_flight=in_flight
    )
    return [Read(o.hash, o.error, o.error_kind) for o in staged]


async def _record(ctx: RunContext, conn: Any, page: list[JournalFile], reads: list[Read]) -> list[FileUpdate]:
    updates: list[FileUpdate] = []
    hashed: list[tuple[JournalFile, str]] = []
    for file, read in zip(page, reads, strict=True):
        if read.error_kind == "disk_full":
            ctx.state.must_stop(read.error)  # the file stays scanned: a resume reads it again
        elif read.error_kind == "lost":
            pass  # stays scanned; the import goes on with what it read (see steps/lost.py)
        elif read.hash is not None:
            hashed.append((file, read.hash))
        elif read.error_kind != "cancelled":
            updates.append(failed(file, ImportStep.HASH, read.error or "Hashing failed"))
    updates.extend(await _classify(ctx, conn, hashed))
    await ctx.journal.update_files(ctx.sid, updates, conn)
    return updates


async def _classify(
    ctx: RunContext, conn: Any, hashed: Sequence[tuple[JournalFile, str]]
) -> list[FileUpdate]:
    known: dict[MediaType, set[str]] = {}
    for media_type in {f.media_type for f, _ in hashed if f.media_type is not MediaType.SIDECAR}:
        of_type = [(f.file_id, digest) for f, digest in hashed if f.media_type is media_type]
        known[media_type] = await ctx.journal.known_hashes(conn, ctx.sid, media_type, of_type)
    updates = []
    for file, digest in hashed:
        seen = known.get(file.media_type)
        if seen is not None and digest in seen:
            updates.append(FileUpdate(file.file_id, FileState.DUPLICATE, hash=digest))
        else:
            if seen is not None:
                seen.add(digest)  # a later identical file of this page is a duplicate of this one
            updates.append(FileUpdate(file.file_id, FileState.HASHED, hash=digest))
    return updates


async def _recorded(ctx: RunContext, page: list[JournalFile], updates: list[FileUpdate]) -> None:
    count(ctx, ImportStep.HASH, page, updates)
    if ctx.read_once:  # staged copies of files that will not be copied are not needed
        dropped = {u.file_id for u in updates if u.state is not FileState.HASHED}
        await asyncio.to_thread(fs.remove_files, [ctx.staged(f) for f in page if f.file_id in dropped])


def _hash_failure(_: object, message: str) -> HashOutcome:
    return HashOutcome(None, None, message)


def _stage_failure(_: object, message: str) -> StageOutcome:
    return StageOutcome(None, None, message, "source")
