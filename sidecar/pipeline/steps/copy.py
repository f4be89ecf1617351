"""Step 3: an independent, durable copy of every new file in the archive, at its content-addressed
place in the app's layout; a sidecar lands beside its parent (or in org-misc).

A copy already in place with the right content is kept (one read, no write), so a resume never
copies again what a stopped run had copied, whether or not the journal heard of it.
"""

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from sidecar import fs
from sidecar.archive.layout import UnsafeLocation, archive_name, contained, media_folder
from sidecar.archive.media import MediaType
from sidecar.pipeline.context import RunContext
from sidecar.pipeline.journal import FileState, FileUpdate, JournalFile
from sidecar.pipeline.pages import PageStep, run_pages
from sidecar.pipeline.status import ImportStep
from sidecar.pipeline.steps.common import byte_work, count, failed, skip
from sidecar.pipeline.windows import EVERYTHING, Window
from sidecar.workers.bytework import CopyOutcome, CopyRequest, copy_files, hash_files


@dataclass(frozen=True, slots=True)
class Copied:
    updates: list[FileUpdate]
    made: list[str]  # files this page created in the archive
    settled: list[JournalFile]  # files whose fate was decided without a copy (they follow a parent)
    archive_moved: bool  # made after the archive went away: not in the archive, not to be recorded


async def run(ctx: RunContext, window: Window = EVERYTHING, targets: "Targets | None" = None) -> None:
    targets = targets or Targets(ctx)
    step = PageStep(
        ImportStep.COPY,
        partial(_copy, ctx, targets),
        partial(_record, ctx),
        partial(_recorded, ctx),
        _unrecorded,
    )
    for sidecars in (False, True):
        # Sidecars after every parent's page is committed: they follow their parent's target.
        pages = ctx.pages(FileState.HASHED, sidecars=sidecars, window=window)
        await run_pages(ctx.db, pages, step, ctx.stop, overlap=not ctx.network)


async def _copy(ctx: RunContext, targets: "Targets", page: list[JournalFile]) -> Copied:
    planned, updates = await asyncio.to_thread(targets.plan, page)
    decided = {u.file_id for u in updates}
    settled = [f for f in page if f.file_id in decided]
    if ctx.state.sources.lost is not None:
        # The card is gone: what was staged from it is still copied in; the rest stays hashed.
        planned = [(f, request) for f, request in planned if request.source != f.path]
    made: list[str] = []
    if planned:
        requests = [request for _, request in planned]
        files = [f for f, _ in planned]
        outcomes = await byte_work(ctx, ImportStep.COPY, copy_files, files, requests, _copy_failure)
        failed_reads = [r.source for r, o in zip(requests, outcomes, strict=True) if o.error_kind == "source"]
        # A source that failed a read may be gone as a whole (the card pulled): then its files were
        # not read rather than bad, and stay hashed for the resume (see steps/lost.py).
        lost = await asyncio.to_thread(ctx.state.sources.gone, failed_reads[0]) if failed_reads else None
        for (file, request), outcome in zip(planned, outcomes, strict=True):
            if request.source != file.path and outcome.strategy == "hardlink":
                outcome = replace(outcome, strategy="copy")  # our own staged copy, linked in
            if outcome.created:
                made.append(request.target)
            if lost is not None and outcome.error_kind == "source":
                continue  # not read: stays hashed (see steps/lost.py)
            update = _copied(ctx, file, request.target, outcome)
            if update is not None:
                updates.append(update)
    return Copied(updates, made, settled, await asyncio.to_thread(ctx.archive.moved))


async def _record(ctx: RunContext, conn: Any, _: list[JournalFile], copied: Copied) -> Copied:
    if not copied.archive_moved:
        await ctx.journal.update_files(ctx.sid, copied.updates, conn)
    return copied


async def _recorded(ctx: RunContext, page: list[JournalFile], copied: Copied) -> None:
    if ctx.read_once:
        await asyncio.to_thread(fs.remove_files, [ctx.staged(f) for f in page])
    if copied.archive_moved:
        # On the disk under the archive's mount point, not in the archive: removed, and the files
        # stay hashed for the resume.
        ctx.state.must_stop(ctx.archive.lost_reason)
        await asyncio.to_thread(fs.remove_files, copied.made)
        return
    skip(ctx, ImportStep.COPY, copied.settled)
    count(ctx, ImportStep.COPY, page, copied.updates)


async def _unrecorded(_: list[JournalFile], copied: Copied) -> None:
    """The page's commit failed (the database full, the app holding its lock): the copies it made
    are known to nothing, so they go (a resume copies those files again)."""
    await asyncio.to_thread(fs.remove_files, copied.made)


def _copied(ctx: RunContext, file: JournalFile, target: str, outcome: CopyOutcome) -> FileUpdate | None:
    if outcome.error is None:
        return FileUpdate(file.file_id, FileState.COPIED, target=target, strategy=outcome.strategy)
    if outcome.error_kind == "cancelled":
        return None
    if outcome.error_kind == "disk_full":
        ctx.state.must_stop(outcome.error)  # the file stays hashed: a resume copies it once space is freed
        return None
    return failed(file, ImportStep.COPY, outcome.error)


class Targets:
    """Where each file of a page goes and where it is read from. Runs on a thread: it looks at the
    archive (each folder checked once per run to resolve inside the archive root)."""

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._folder = ctx.location_folder
        self._media_folders: dict[MediaType, str] = {}
        self._checked: set[str] = set()  # folders known to resolve inside the archive

    def plan(
        self, page: Sequence[JournalFile]
    ) -> tuple[list[tuple[JournalFile, CopyRequest]], list[FileUpdate]]:
        ctx = self._ctx
        planned: list[tuple[JournalFile, CopyRequest]] = []
        updates: list[FileUpdate] = []
        taken: set[str] = set()
        for file in page:
            assert file.hash is not None
            try:
                target = self._target(file, taken)
            except _FollowsParent as fate:
                updates.append(fate.update)
                continue
            except UnsafeLocation as exc:
                updates.append(failed(file, ImportStep.COPY, str(exc)))
                continue
            taken.add(target)
            staged = ctx.staged(file) if ctx.read_once else None
            if staged is not None and os.path.isfile(staged):
                # Linking our own staged file in costs no second read of the share (and the staged
                # file is removed right after, so the archive copy stays independent).
                request = CopyRequest(staged, target, file.hash, allow_hardlink=True)
            else:
                request = CopyRequest(file.path, target, file.hash, ctx.allow_hardlinks)
            planned.append((file, request))
        return planned, updates

    def _target(self, file: JournalFile, taken: set[str]) -> str:
        assert file.hash is not None
        if file.media_type is not MediaType.SIDECAR:
            return self._inside(self._media_folder(file.media_type), archive_name(file.hash, file.extension))
        if file.parent_id is not None:
            if file.parent_state is FileState.DUPLICATE:
                raise _FollowsParent(FileUpdate(file.file_id, FileState.DUPLICATE))
            if file.parent_state is FileState.FAILED:
                raise _FollowsParent(
                    failed(file, ImportStep.COPY, "Not archived: the file it belongs to failed")
                )
            if file.parent_target and file.parent_hash:
                beside = os.path.join(
                    os.path.dirname(file.parent_target), archive_name(file.parent_hash, file.extension)
                )
                # Never overwrite a sidecar already there (its name is the parent's hash, not its own),
                # but one with this sidecar's bytes is this one: copied by a run killed before it
                # recorded the copy (found by the crash torture: copied again to org-misc, it left
                # the first copy in the archive without a record).
                if beside not in taken and (not os.path.lexists(beside) or _holds(beside, file.hash)):
                    return self._inside(os.path.dirname(beside), os.path.basename(beside))
        return self._inside(self._media_folder(MediaType.SIDECAR), archive_name(file.hash, file.extension))

    def _media_folder(self, media_type: MediaType) -> str:
        """Built once per run: per file, the path building was most of a small file's planning."""
        folder = self._media_folders.get(media_type)
        if folder is None:
            loc12 = self._ctx.location.loc12
            folder = self._media_folders[media_type] = str(media_folder(self._folder, media_type, loc12))
        return folder

    def _inside(self, folder: str, name: str) -> str:
        """`folder/name`, the folder checked to resolve inside the archive. The name needs no check:
        archive_name allows only `<16 hex><.ext>`, and the copier refuses anything but a regular file
        under a target name and never follows a link when it renames."""
        if folder not in self._checked:
            contained(self._ctx.root, Path(folder))
            self._checked.add(folder)
        return os.path.join(folder, name)


def _holds(path: str, digest: str) -> bool:
    """Whether the file at `path` has the content `digest` (a sidecar: small, read on the planning
    thread)."""
    return hash_files([path])[0].hash == digest


class _FollowsParent(Exception):
    def __init__(self, update: FileUpdate) -> None:
        self.update = update


def _copy_failure(_: object, message: str) -> CopyOutcome:
    return CopyOutcome(False, None, 0, message, "source")
