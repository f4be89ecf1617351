"""Step 1: walk the sources into the journal, one folder per commit.

A scan that did not finish is redone from its start (nothing is copied before it ends), so its
resume is simply a new scan; grouping (sidecars, RAW+JPEG, Live Photos) refers only within a
folder, so a folder is written once it is complete.
"""

import asyncio
import os
from collections.abc import Iterator, Sequence

from sidecar.pipeline.context import RunContext
from sidecar.pipeline.journal import FileState, NewFile
from sidecar.pipeline.pages import commit
from sidecar.pipeline.scanner import InputDone, ScanError, ScanItem, ScannedFile, Skipped, scan
from sidecar.pipeline.status import ImportStep

# Items taken from the walking thread at a time; the stop is checked between takes.
SCAN_CHUNK = 512


async def run(ctx: RunContext) -> None:
    await ctx.journal.restart_scan(ctx.sid)
    paths = ctx.session.source_paths
    await ctx.sessions.set_status(ctx.sid, ImportStep.SCAN.status, last_step=ImportStep.SCAN)
    ctx.progress.start(ImportStep.SCAN, total=len(paths))
    ctx.progress.report(ImportStep.SCAN)
    items = scan(paths, ctx.session.archive_root, lambda: ctx.stop.is_set)
    folder: list[ScanItem] = []
    next_id = 1
    while chunk := await asyncio.to_thread(_take, items, SCAN_CHUNK):
        for item in chunk:
            if folder and _folder_of(item) != _folder_of(folder[-1]):
                next_id = await _record_folder(ctx, folder, next_id)
                folder = []
                ctx.stop.check()  # between folders, like the other steps between pages
            folder.append(item)
        ctx.stop.check()
    await _record_folder(ctx, folder, next_id)
    ctx.stop.check()


async def _record_folder(ctx: RunContext, items: Sequence[ScanItem], next_id: int) -> int:
    """Journal one folder's files (ids in walk order); returns the next free id."""
    ids: dict[str, int] = {}
    for item in items:
        if isinstance(item, ScannedFile | ScanError):
            ids[item.path] = next_id
            next_id += 1
    rows: list[NewFile] = []
    skipped: list[Skipped] = []
    errors = 0
    for item in items:
        if isinstance(item, ScannedFile):
            rows.append(
                NewFile(
                    file_id=ids[item.path],
                    path=item.path,
                    size=item.size,
                    media_type=item.media_type,
                    extension=item.extension,
                    parent_id=ids.get(item.parent) if item.parent else None,
                    raw_pair_id=ids.get(item.raw_pair) if item.raw_pair else None,
                    live_pair_id=ids.get(item.live_pair) if item.live_pair else None,
                )
            )
        elif isinstance(item, ScanError):
            rows.append(
                NewFile(ids[item.path], item.path, 0, None, "", state=FileState.FAILED, error=item.message)
            )
            errors += 1
        elif isinstance(item, Skipped):
            skipped.append(item)
    if rows or skipped:
        await commit(
            ctx.db,
            ImportStep.SCAN,
            ctx.stop,
            lambda conn: ctx.journal.add_files(conn, ctx.sid, rows, skipped),
        )
    progress = ctx.progress
    for item in items:
        if isinstance(item, ScannedFile):
            name = os.path.basename(item.path)
            progress.advance(ImportStep.SCAN, files=1, size=item.size, current_file=name)
        elif isinstance(item, InputDone):
            progress.advance(ImportStep.SCAN, work=1)
    progress.count(errors=errors)
    found = [r for r in rows if r.state is FileState.SCANNED]
    progress.set_totals(progress.files_total + len(found), progress.bytes_total + sum(r.size for r in found))
    return next_id


def _take(items: Iterator[ScanItem], count: int) -> list[ScanItem]:
    chunk: list[ScanItem] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= count:
            break
    return chunk


def _folder_of(item: ScanItem) -> str:
    return "" if isinstance(item, InputDone) else os.path.dirname(item.path)
