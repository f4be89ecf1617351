"""One import session carried through its five steps, file by file, from the journal.

Each step pages through the files still in its input state, hands the byte work to the process
pool, and commits each page's outcomes in one short transaction. A page ends within about half a
second of work, so cancel and shutdown are noticed quickly; a crash loses at most one page,
which a resume redoes (copies are idempotent: a target with the right content is kept).
"""

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar, cast

from sidecar.db.connection import Database
from sidecar.db.locations import Location
from sidecar.log import get_logger
from sidecar.pipeline.bytepool import BytePool
from sidecar.pipeline.finalizer import Finalizer
from sidecar.pipeline.journal import (
    FileState,
    FileUpdate,
    Journal,
    JournalFile,
    NewFile,
    SessionRecord,
    Step,
)
from sidecar.pipeline.layout import (
    UnsafeLocation,
    archive_name,
    contained,
    location_folder,
    media_folder,
)
from sidecar.pipeline.media import MediaType
from sidecar.pipeline.progress import ImportProgress
from sidecar.pipeline.scanner import InputDone, ScanError, ScanItem, ScannedFile, Skipped, scan
from sidecar.timestamps import now_iso
from sidecar.workers.bytework import (
    CopyOutcome,
    CopyRequest,
    HashOutcome,
    StageOutcome,
    StageRequest,
    ValidateOutcome,
    ValidateRequest,
    copy_files,
    hash_files,
    stage_files,
    validate_files,
)

PAGE_FILES = 2048
PAGE_BYTES = 512 << 20
SCAN_CHUNK = 512
TEMP_SUFFIX = ".aus-tmp"

log = get_logger(__name__)
T = TypeVar("T")
R = TypeVar("R")
W = TypeVar("W")


class Cancelled(Exception):
    """Import cancelled"""


class Interrupted(Exception):
    """The sidecar is shutting down; the session stays resumable"""


class ImportFailed(Exception):
    """The import cannot go on (archive unusable, disk full); the session stays resumable."""


@dataclass
class RunFlags:
    """Set from outside (cancel, shutdown), read between pages and by the scanner's thread."""

    cancelled: bool = False
    interrupted: bool = False

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled()
        if self.interrupted:
            raise Interrupted()


@dataclass
class ImportRun:
    db: Database
    journal: Journal
    finalizer: Finalizer
    pool: BytePool
    session: SessionRecord
    location: Location
    progress: ImportProgress
    allow_hardlinks: bool
    flags: RunFlags = field(default_factory=RunFlags)
    # Network sources: read each file once (hashed while staged), one batch at a time.
    read_once: bool = False
    jobs_added: Callable[[], None] = lambda: None
    from_medium: bool = True
    stop_reason: str | None = None  # set when copying had to stop early (disk full, archive gone)
    jobs_committed: bool = False
    _checked_folders: dict[Path, Path] = field(default_factory=dict)
    # The archive root's (st_dev, st_ino) at the start: an unplugged drive leaves its mount point
    # behind, an empty folder on another disk that copies must not go on filling.
    _root_identity: tuple[int, int] | None = None
    _archive_lost: bool = False

    @property
    def sid(self) -> str:
        return self.session.session_id

    @property
    def root(self) -> Path:
        return Path(self.session.archive_root)

    # -- the steps -----------------------------------------------------------------------------

    async def execute(self) -> None:
        """Run what is left of the session. Raises Cancelled, Interrupted or ImportFailed."""
        await asyncio.to_thread(self._check_archive_root)
        if self.session.last_step < 2:  # the scan never finished (hashing starts only after it)
            await self._scan()
        else:
            # The location's folders too: copies cut off by a vanished archive have no target left
            # in the journal.
            folders = [*await self.journal.target_folders(self.sid), *self._media_folders()]
            await asyncio.to_thread(sweep_temp_files, folders)
        await self._hash()
        await self._copy()
        await self._validate()
        try:
            await self._finalize()
        finally:
            # The queue starts on them once the import is done with the disks and the database
            # (jobs running beside the finalize slowed it by a fifth); after a failure too.
            if self.jobs_committed:
                self.jobs_added()
        if self.stop_reason is not None:
            raise ImportFailed(self.stop_reason)

    def _check_archive_root(self) -> None:
        root = self.session.archive_root
        if not os.path.isdir(root):
            raise ImportFailed(f"Archive folder does not exist: {root}")
        if not os.access(root, os.W_OK | os.X_OK):
            raise ImportFailed(f"Archive folder is not writable: {root}")
        info = os.stat(root)
        self._root_identity = (info.st_dev, info.st_ino)

    def _archive_moved(self) -> bool:
        """Whether the archive root is no longer the folder the import started with (unmounted,
        unplugged, replaced); the step then stops with that reason. Runs on a thread."""
        if not self._archive_lost and self._root_identity is not None:
            try:
                info = os.stat(self.session.archive_root)
                self._archive_lost = (info.st_dev, info.st_ino) != self._root_identity
            except OSError:
                self._archive_lost = True
            if self._archive_lost:
                self.stop_reason = f"Archive folder vanished during the import: {self.session.archive_root}"
        return self._archive_lost

    def _media_folders(self) -> list[str]:
        folder = location_folder(self.root, self.location)
        return [str(media_folder(folder, kind, self.location.loc12)) for kind in MediaType]

    async def _enter(self, step: int, status: str, work_state: FileState, *, by_files: bool = False) -> None:
        if self._archive_lost:
            raise ImportFailed(self.stop_reason)
        tally = await self.journal.tally(self.sid)
        total_files = tally.count(*FileState) - tally.failed_by_step.get(Step.SCAN, 0)
        total_bytes = tally.size(*FileState)
        left_files = tally.count(work_state)
        left_bytes = tally.size(work_state)
        # The session row first: what the app reads after an event must already be true.
        await self.journal.set_status(self.sid, status, last_step=step, tally=tally)
        self.progress.set_totals(total_files, total_bytes)
        self.progress.duplicates = tally.count(FileState.DUPLICATE, sidecars=False)
        self.progress.errors = tally.count(FileState.FAILED)
        self.progress.begin_step(
            step,
            work=left_files if by_files else left_bytes,
            files_processed=total_files - left_files,
            bytes_processed=total_bytes - left_bytes,
        )

    async def _scan(self) -> None:
        await self.journal.restart_scan(self.sid)
        paths = self.session.source_paths
        await self.journal.set_status(self.sid, "scanning", last_step=1)
        self.progress.begin_step(1, work=len(paths), files_processed=0, bytes_processed=0)
        items = scan(paths, self.session.archive_root, lambda: self.flags.cancelled or self.flags.interrupted)
        folder: list[ScanItem] = []
        next_id = 1
        while chunk := await asyncio.to_thread(_take, items, SCAN_CHUNK):
            for item in chunk:
                # Grouping refers only within a folder, so a folder is written once it is complete.
                if folder and _folder_of(item) != _folder_of(folder[-1]):
                    next_id = await self._record_folder(folder, next_id)
                    folder = []
                folder.append(item)
            self.flags.check()
        await self._record_folder(folder, next_id)
        self.flags.check()

    async def _record_folder(self, items: Sequence[ScanItem], next_id: int) -> int:
        ids: dict[str, int] = {}
        for item in items:
            if isinstance(item, ScannedFile | ScanError):
                ids[item.path] = next_id
                next_id += 1
        rows: list[NewFile] = []
        skipped = 0
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
                self.progress.advance(files=1, size=item.size, current_file=item.path)
            elif isinstance(item, ScanError):
                rows.append(
                    NewFile(
                        ids[item.path], item.path, 0, None, "", state=FileState.FAILED, error=item.message
                    )
                )
                self.progress.count(errors=1)
            elif isinstance(item, Skipped):
                skipped += 1
            elif isinstance(item, InputDone):
                self.progress.advance(work=1)
        if rows or skipped:
            await self.journal.add_files(self.sid, rows, skipped)
            self.progress.set_totals(
                self.progress.files_total + len(rows), self.progress.bytes_total + sum(r.size for r in rows)
            )
        return next_id

    async def _hash(self) -> None:
        await self._enter(2, "hashing", FileState.SCANNED)
        await self._each_page(FileState.SCANNED, self._read, self._commit_hashes)

    async def _commit_hashes(
        self, page: list[JournalFile], read: list[tuple[str | None, str | None, str | None]]
    ) -> None:
        updates: list[FileUpdate] = []
        hashed: list[tuple[JournalFile, str]] = []
        for file, (digest, error, kind) in zip(page, read, strict=True):
            if kind == "disk_full":
                self.stop_reason = error  # the file stays scanned; a resume reads it again
            elif digest is not None:
                hashed.append((file, digest))
            elif kind != "cancelled":
                updates.append(_failed(file, Step.HASH, error or "Hashing failed"))
        updates.extend(await self._classify_hashed(hashed))
        await self.journal.update_files(self.sid, updates)
        self._count(updates)
        if self.read_once:  # staged copies of files that will not be copied are not needed
            dropped = {u.file_id for u in updates if u.state is not FileState.HASHED}
            await asyncio.to_thread(remove_files, [self._staged(f) for f in page if f.file_id in dropped])
        self.flags.check()

    async def _read(self, page: Sequence[JournalFile]) -> list[tuple[str | None, str | None, str | None]]:
        """(hash, error, error kind) per file: a plain hash, or for network sources the single read
        that also stages the copy."""
        if not self.read_once:
            hashes = await self._pool_run(hash_files, page, [f.path for f in page])
            return [(o.hash, o.error, None) for o in hashes]
        requests = [StageRequest(f.path, self._staged(f)) for f in page]
        staged = await self._pool_run(stage_files, page, requests, max_in_flight=1)
        return [(o.hash, o.error, o.error_kind) for o in staged]

    def _staged(self, file: JournalFile) -> str:
        return os.path.join(staging_folder(self.session), f"{file.file_id}{file.extension}")

    async def _classify_hashed(self, hashed: Sequence[tuple[JournalFile, str]]) -> list[FileUpdate]:
        """Duplicates: the hash is archived already for this media type, or an earlier file of this
        import has it. Sidecars are never duplicates on their own (they follow their parent)."""
        known: dict[MediaType, set[str]] = {}
        for media_type in {f.media_type for f, _ in hashed if f.media_type is not MediaType.SIDECAR}:
            known[media_type] = await self.journal.known_hashes(
                self.sid, media_type, [h for f, h in hashed if f.media_type is media_type]
            )
        updates = []
        for file, digest in hashed:
            seen = known.get(file.media_type)
            if seen is not None and digest in seen:
                updates.append(FileUpdate(file.file_id, FileState.DUPLICATE, hash=digest))
            else:
                if seen is not None:
                    seen.add(digest)  # a later identical file in this page is a duplicate of this one
                updates.append(FileUpdate(file.file_id, FileState.HASHED, hash=digest))
        return updates

    async def _copy(self) -> None:
        await self._enter(3, "copying", FileState.HASHED)
        await self._each_page(FileState.HASHED, self._copy_page, self._commit_copies)

    async def _copy_page(self, page: list[JournalFile]) -> list[FileUpdate]:
        folder = location_folder(self.root, self.location)
        planned, updates = await asyncio.to_thread(self._plan_copies, page, folder)
        if planned:
            requests = [request for _, _, request in planned]
            outcomes = await self._pool_run(copy_files, [f for f, _, _ in planned], requests)
            for (file, target, request), outcome in zip(planned, outcomes, strict=True):
                if request.source != file.path and outcome.strategy == "hardlink":
                    outcome = replace(outcome, strategy="copy")  # our own staged copy, linked in
                update = self._copied(file, target, outcome)
                if update is not None:
                    updates.append(update)
        return updates

    async def _commit_copies(self, page: list[JournalFile], updates: list[FileUpdate]) -> None:
        if self.read_once:
            await asyncio.to_thread(remove_files, [self._staged(f) for f in page])
        if await asyncio.to_thread(self._archive_moved):
            # Made after the archive went away: on the disk under its mount point, not in the
            # archive. Removed and not recorded; the files stay hashed for the resume.
            made = [u.target for u in updates if u.state is FileState.COPIED and u.strategy and u.target]
            await asyncio.to_thread(remove_files, made)
            return
        await self.journal.update_files(self.sid, updates)
        self._count(updates)
        self.flags.check()

    def _plan_copies(
        self, page: Sequence[JournalFile], folder: Path
    ) -> tuple[list[tuple[JournalFile, str, CopyRequest]], list[FileUpdate]]:
        """Where each file goes and from where; runs on a thread (it looks at the archive)."""
        planned: list[tuple[JournalFile, str, CopyRequest]] = []
        updates: list[FileUpdate] = []
        taken: set[str] = set()
        for file in page:
            assert file.hash is not None
            try:
                target = self._target(file, folder, taken)
            except _FollowsParent as fate:
                updates.append(fate.update)
                continue
            except UnsafeLocation as exc:
                updates.append(_failed(file, Step.COPY, str(exc)))
                continue
            taken.add(target)
            staged = self._staged(file) if self.read_once else None
            if staged is not None and os.path.isfile(staged):
                # Linking our own staged file in costs no second read of the share (and the
                # staged file is removed right after, so the archive copy stays independent).
                request = CopyRequest(staged, target, file.hash, allow_hardlink=True)
            else:
                request = CopyRequest(file.path, target, file.hash, self.allow_hardlinks)
            planned.append((file, target, request))
        return planned, updates

    def _inside(self, folder: Path, name: str) -> str:
        """`folder/name`, the folder checked (once per run) to resolve inside the archive. The name
        needs no check: archive_name allows only `<16 hex><.ext>`, and the copier refuses anything but
        a regular file under a target name and never follows a link when it renames."""
        checked = self._checked_folders.get(folder)
        if checked is None:
            checked = self._checked_folders[folder] = contained(self.root, folder)
        return str(checked / name)

    def _target(self, file: JournalFile, folder: Path, taken: set[str]) -> str:
        assert file.hash is not None
        loc12 = self.location.loc12
        if file.media_type is not MediaType.SIDECAR:
            return self._inside(
                media_folder(folder, file.media_type, loc12), archive_name(file.hash, file.extension)
            )
        if file.parent_id is not None:
            if file.parent_state is FileState.DUPLICATE:
                raise _FollowsParent(FileUpdate(file.file_id, FileState.DUPLICATE))
            if file.parent_state is FileState.FAILED:
                raise _FollowsParent(_failed(file, Step.COPY, "Not archived: the file it belongs to failed"))
            if file.parent_target and file.parent_hash:
                beside = os.path.join(
                    os.path.dirname(file.parent_target), archive_name(file.parent_hash, file.extension)
                )
                # Never overwrite a sidecar already there (its name is the parent's hash, not its own).
                if beside not in taken and not os.path.lexists(beside):
                    return self._inside(Path(beside).parent, Path(beside).name)
        return self._inside(
            media_folder(folder, MediaType.SIDECAR, loc12), archive_name(file.hash, file.extension)
        )

    def _copied(self, file: JournalFile, target: str, outcome: CopyOutcome) -> FileUpdate | None:
        if outcome.error is None:
            return FileUpdate(file.file_id, FileState.COPIED, target=target, strategy=outcome.strategy)
        if outcome.error_kind == "cancelled":
            return None
        if outcome.error_kind == "disk_full":
            # The file stays hashed: a resume copies it once space is freed.
            self.stop_reason = outcome.error
            return None
        return _failed(file, Step.COPY, outcome.error)

    async def _validate(self) -> None:
        await self._enter(4, "validating", FileState.COPIED)
        await self._each_page(FileState.COPIED, self._validated, self._commit_validations, writes=False)

    async def _commit_validations(self, page: list[JournalFile], outcomes: list[ValidateOutcome]) -> None:
        if await asyncio.to_thread(self._archive_moved):
            return  # the copies were not missing, the archive was: they stay copied
        updates = []
        for file, outcome in zip(page, outcomes, strict=True):
            self.from_medium = self.from_medium and outcome.from_medium
            if outcome.matches:
                updates.append(FileUpdate(file.file_id, FileState.VALIDATED))
            elif outcome.error is not None:
                updates.append(_failed(file, Step.VALIDATE, f"Could not re-read the copy: {outcome.error}"))
            else:
                updates.append(
                    _failed(
                        file,
                        Step.VALIDATE,
                        f"Hash mismatch: expected {file.hash}, got {outcome.hash}"
                        " (the source changed while it was imported?)",
                    )
                )
        await self.journal.update_files(self.sid, updates)
        self._count(updates)

    async def _validated(self, page: Sequence[JournalFile]) -> list[ValidateOutcome]:
        """Re-hash from the medium. A read error is retried; a mismatch is copied again once (the
        copier replaces a damaged target) and checked again. Neither deletes a good copy."""
        requests = [ValidateRequest(f.target or "", f.hash or "") for f in page]
        outcomes = await self._pool_run(validate_files, page, requests)
        again = [i for i, o in enumerate(outcomes) if not o.matches]
        if not again:
            return outcomes
        self.flags.check()
        mismatched = [i for i in again if outcomes[i].error is None]
        if mismatched:
            copies = [
                CopyRequest(page[i].path, page[i].target or "", page[i].hash or "", False) for i in mismatched
            ]
            await self.pool.run(copy_files, copies, [page[i].size for i in mismatched], failure=_copy_failure)
        retried = await self.pool.run(
            validate_files,
            [requests[i] for i in again],
            [page[i].size for i in again],
            failure=_validate_failure,
        )
        for i, outcome in zip(again, retried, strict=True):
            outcomes[i] = outcome
        return outcomes

    async def _finalize(self) -> None:
        await self._enter(5, "finalizing", FileState.VALIDATED, by_files=True)
        for sidecars in (False, True):
            async for page in self._pages(FileState.VALIDATED, sidecars):
                # A sidecar beside its parent is kept only if the parent got its row.
                orphaned = [
                    _failed(f, Step.FINALIZE, "Not archived: the file it belongs to was not archived")
                    for f in page
                    if f.parent_target
                    and f.target
                    and os.path.dirname(f.target) == os.path.dirname(f.parent_target)
                    and f.parent_state is not FileState.FINALIZED
                ]
                if orphaned:
                    await self.journal.update_files(self.sid, orphaned)
                    self._count(orphaned)
                    dropped = {u.file_id for u in orphaned}
                    page = [f for f in page if f.file_id not in dropped]
                async for chunk, result in self.finalizer.commit(self.session, page, now_iso()):
                    self.jobs_committed = self.jobs_committed or result.jobs > 0
                    self.progress.advance(work=len(chunk), files=len(chunk), size=sum(f.size for f in chunk))
                    self.progress.count(duplicates=result.duplicates)

    # -- helpers -------------------------------------------------------------------------------

    async def _each_page(
        self,
        state: FileState,
        work: Callable[[list[JournalFile]], Coroutine[Any, Any, W]],
        commit: Callable[[list[JournalFile], W], Awaitable[None]],
        *,
        writes: bool = True,
    ) -> None:
        """Every page of files in `state` (parents, then sidecars): `work` (byte work in the pool),
        then `commit` (its outcomes to the journal), pages committed in order. A page's work runs
        while the page before it is committed, so the workers stay busy through the database writes
        and page queries, except for network sources (one read in flight at a time). A page whose
        work is in flight when the step stops still has its outcomes committed, so no copy it made
        goes unrecorded. A step that `writes`
        stops at a full disk (`stop_reason`); validation still checks what was written."""
        for sidecars in (False, True):
            ahead: tuple[list[JournalFile], asyncio.Task[W]] | None = None
            try:
                async for page in self._pages(state, sidecars):
                    if writes and self.stop_reason is not None:
                        break
                    # Known before the page before is committed, so a stop meanwhile cancels it.
                    previous, ahead = ahead, (page, asyncio.create_task(work(page), name=f"page-{self.sid}"))
                    if previous is not None:
                        await commit(previous[0], await previous[1])
                    if self.read_once:
                        await commit(page, await ahead[1])
                        ahead = None
                if ahead is not None:
                    await commit(ahead[0], await ahead[1])
                    ahead = None
            finally:
                if ahead is not None:
                    # A stop (cancel, shutdown, an error) while a page is in flight: the pool's cancel
                    # flag ends its work quickly; its outcomes are still recorded, so every copy it
                    # made is known to the journal and a cancel's cleanup can remove it.
                    with contextlib.suppress(Exception):
                        await commit(ahead[0], await ahead[1])
            if writes and self.stop_reason is not None:
                return

    async def _pages(self, state: FileState, sidecars: bool) -> AsyncIterator[list[JournalFile]]:
        after = 0
        while True:
            self.flags.check()
            if await asyncio.to_thread(self._archive_moved):
                return
            page = await self.journal.page(
                self.sid, state, sidecars=sidecars, after=after, max_files=PAGE_FILES, max_bytes=PAGE_BYTES
            )
            if not page:
                return
            after = page[-1].file_id
            yield page

    async def _pool_run(
        self,
        fn: Callable[[list[T]], list[R]],
        page: Sequence[JournalFile],
        items: Sequence[T],
        max_in_flight: int | None = None,
    ) -> list[R]:
        """Byte work for a page, with live progress per file as its batch completes."""

        def done(index: int, _: object) -> None:
            file = page[index]
            self.progress.advance(
                work=file.size, files=1, size=file.size, current_file=os.path.basename(file.path)
            )

        failure = cast(Callable[[T, str], R], _FAILURES[fn])
        return await self.pool.run(
            fn,
            list(items),
            [f.size for f in page],
            on_item_done=done,
            failure=failure,
            max_in_flight=max_in_flight,
        )

    def _count(self, updates: Sequence[FileUpdate]) -> None:
        self.progress.count(
            duplicates=sum(1 for u in updates if u.state is FileState.DUPLICATE),
            errors=sum(1 for u in updates if u.state is FileState.FAILED),
        )


class _FollowsParent(Exception):
    def __init__(self, update: FileUpdate) -> None:
        self.update = update


def _failed(file: JournalFile, step: Step, message: str) -> FileUpdate:
    return FileUpdate(file.file_id, FileState.FAILED, error_step=step, error=message)


def _hash_failure(_: object, message: str) -> HashOutcome:
    return HashOutcome(None, None, message)


def _copy_failure(_: object, message: str) -> CopyOutcome:
    return CopyOutcome(False, None, 0, message, "source")


def _validate_failure(_: object, message: str) -> ValidateOutcome:
    return ValidateOutcome(None, False, False, message)


def _stage_failure(_: object, message: str) -> StageOutcome:
    return StageOutcome(None, None, message, "source")


_FAILURES: dict[object, Callable[[object, str], object]] = {
    hash_files: _hash_failure,
    copy_files: _copy_failure,
    validate_files: _validate_failure,
    stage_files: _stage_failure,
}


def _take(items: Iterator[ScanItem], count: int) -> list[ScanItem]:
    chunk: list[ScanItem] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= count:
            break
    return chunk


def _folder_of(item: ScanItem) -> str:
    return "" if isinstance(item, InputDone) else os.path.dirname(item.path)


def staging_folder(session: SessionRecord) -> str:
    """Where a read-once import stages its files: on the archive's filesystem, hidden, per session."""
    return os.path.join(session.archive_root, ".aus-staging", session.session_id)


def remove_files(paths: Sequence[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def sweep_temp_files(folders: Sequence[str]) -> int:
    """Remove temp files a crash left behind (the copier names them `.<name>.<token>.aus-tmp`)."""
    removed = 0
    for folder in folders:
        try:
            entries = os.scandir(folder)
        except OSError:
            continue
        with entries:  # streamed, never listed: an org folder may hold 100 000 files
            for entry in entries:
                if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed += 1
    return removed
