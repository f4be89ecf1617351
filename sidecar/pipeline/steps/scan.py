"""Step 1: walk the sources into the journal, one folder per commit, while the later steps already
work on what it found.

Grouping (sidecars, RAW+JPEG, Live Photos) refers only within a folder, so a folder is written once
it is complete, and its files are then there for the steps' windows (windows.py): the steps start
on the first window while the walk goes on. A scan that did not finish goes on where it stopped: it
passes over every file and skip it recorded, and finds its errors again where they still are.
"""

import asyncio
import os
from collections.abc import Iterator, Sequence

from sidecar.pipeline.context import RunContext
from sidecar.pipeline.journal import FileState, NewFile
from sidecar.pipeline.pages import commit
from sidecar.pipeline.scanner import InputDone, ScanError, ScanItem, ScannedFile, Skipped, scan
from sidecar.pipeline.status import ImportStep
from sidecar.pipeline.windows import WindowFeed

# Items taken from the walking thread at a time; the stop is checked between takes.
SCAN_CHUNK = 512


async def run(ctx: RunContext, feed: WindowFeed | None = None) -> bool:
    """Scan what is left to scan, handing `feed` the files it records, for the steps' windows. Returns
    False when the run must stop before the scan is done (a step failed, writing must stop, a source
    is gone): it goes on at the resume."""
    paths = ctx.session.source_paths
    ctx.progress.start(ImportStep.SCAN, total=len(paths))
    recorded, next_id = await ctx.journal.resume_scan(ctx.sid)
    items = scan(paths, ctx.session.archive_root, lambda: ctx.stop.is_set)
    folder: list[ScanItem] = []
    while chunk := await asyncio.to_thread(_take, items, SCAN_CHUNK):
        for item in chunk:
            if folder and _folder_of(item) != _folder_of(folder[-1]):
                if not await _may_go_on(ctx, folder):
                    return False
                next_id = await _record_folder(ctx, folder, next_id, recorded, feed)
                folder = []
                ctx.stop.check()  # between folders, like the other steps between pages
            folder.append(item)
        ctx.stop.check()
    if not await _may_go_on(ctx, folder):
        return False
    await _record_folder(ctx, folder, next_id, recorded, feed)
    ctx.stop.check()
    if feed is not None:
        await feed.scan_done()
    return True


async def _may_go_on(ctx: RunContext, items: Sequence[ScanItem]) -> bool:
    """Whether the scan goes on to record these items: not when another step failed or writing must
    stop, nor when an error among them is a source gone (a card pulled: not the folder's error, and
    the rest is scanned at the resume)."""
    state = ctx.state
    if state.halted or state.stop_reason is not None:
        return False
    errors = [item.path for item in items if isinstance(item, ScanError)]
    return not errors or not await asyncio.to_thread(lambda: any(map(state.sources.gone, errors)))


async def _record_folder(
    ctx: RunContext, items: Sequence[ScanItem], next_id: int, recorded: set[str], feed: WindowFeed | None
) -> int:
    """Journal one folder's files (ids in walk order) and hand them to `feed`; returns the next free
    id. Files and skips recorded by the run this one resumes are passed over."""
    new = [item for item in items if not isinstance(item, InputDone) and item.path not in recorded]
    ids: dict[str, int] = {}
    for item in new:
        if isinstance(item, ScannedFile | ScanError):
            ids[item.path] = next_id
            next_id += 1
    rows: list[NewFile] = []
    skipped: list[Skipped] = []
    errors = 0
    for item in new:
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
    for seen in items:  # found again too, at a resume
        if isinstance(seen, ScannedFile):
            name = os.path.basename(seen.path)
            progress.advance(ImportStep.SCAN, files=1, size=seen.size, current_file=name)
        elif isinstance(seen, InputDone):
            progress.advance(ImportStep.SCAN, work=1)
    progress.count(errors=errors)
    found = [r for r in rows if r.state is FileState.SCANNED]
    progress.grow(files=len(found), size=sum(r.size for r in found))
    if feed is not None:
        await feed.add([row.links for row in rows])
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
