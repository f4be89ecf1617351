"""What every step of one import run shares: a frozen context (the session, its location and
archive, the services) and a small mutable state (why writing must stop, what was committed).

Steps read the journal through `pages`, which is also where they notice a stop: between pages.
"""

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from sidecar.archive.layout import location_folder, media_folder
from sidecar.archive.media import MediaType
from sidecar.db.connection import Database
from sidecar.db.locations import Location
from sidecar.pipeline.finalizer import Finalizer
from sidecar.pipeline.journal import FileState, Journal, JournalFile
from sidecar.pipeline.progress import ImportProgress
from sidecar.pipeline.sessions import SessionRecord, Sessions
from sidecar.pipeline.sources import SourceGuard
from sidecar.pipeline.stop import ImportFailed, StopSignal
from sidecar.pipeline.windows import EVERYTHING, Window

# A page ends within about half a second of work, so a stop is noticed quickly.
PAGE_FILES = 2048
PAGE_BYTES = 512 << 20

T = TypeVar("T")
R = TypeVar("R")


class ByteWork(Protocol):
    """The byte-work pool as the steps use it (a BytePool; in-process tests may run it inline)."""

    def cancel(self) -> None: ...

    def clear_cancel(self) -> None: ...

    async def run(
        self,
        fn: Callable[[list[T]], list[R]],
        items: Sequence[T],
        sizes: Sequence[int],
        on_batch_done: Callable[[range], None] | None = None,
        *,
        failure: Callable[[T, str], R],
        max_in_flight: int | None = None,
        spread: bool = False,
    ) -> list[R]: ...


class ArchiveGuard:
    """Notices the archive root ceasing to be the folder the import started with (a drive
    unplugged leaves its mount point behind: an empty folder on another disk that copies must not
    go on filling)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.lost_reason: str | None = None
        self._identity: tuple[int, int] | None = None

    def check_usable(self) -> None:
        """At the start of a run, on a thread: raises ImportFailed when the root cannot be written."""
        if not os.path.isdir(self.root):
            raise ImportFailed(f"Archive folder does not exist: {self.root}")
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise ImportFailed(f"Archive folder is not writable: {self.root}")
        info = os.stat(self.root)
        self._identity = (info.st_dev, info.st_ino)

    def moved(self) -> bool:
        """Whether the root is gone or another folder now; runs on a thread."""
        if self.lost_reason is None and self._identity is not None:
            try:
                info = os.stat(self.root)
                lost = (info.st_dev, info.st_ino) != self._identity
            except OSError:
                lost = True
            if lost:
                self.lost_reason = f"Archive folder vanished during the import: {self.root}"
        return self.lost_reason is not None


@dataclass
class RunState:
    """What a run learns as it goes."""

    # Disk full, the archive or a source gone: steps that write stop, the import ends failed (resumable).
    stop_reason: str | None = None
    jobs_committed: bool = False  # the job queue has new work once the import is done
    from_medium: bool | None = None  # every validation read bypassed the page cache (None: none ran)
    sources: SourceGuard = field(default_factory=SourceGuard)  # run.py captures the inputs at start
    # A step of the run failed unexpectedly: the steps running beside it stop at their next page.
    halted: bool = False

    def must_stop(self, reason: str | None) -> None:
        if reason is not None and self.stop_reason is None:
            self.stop_reason = reason


@dataclass(frozen=True, slots=True)
class RunContext:
    db: Database
    sessions: Sessions
    journal: Journal
    finalizer: Finalizer
    pool: ByteWork
    session: SessionRecord
    location: Location
    progress: ImportProgress
    stop: StopSignal
    archive: ArchiveGuard
    allow_hardlinks: bool = False
    # Each file read once: hashed while it is staged for the copy (unless probably archived already).
    read_once: bool = False
    # Network sources: one batch of reads at a time, a page's reads not overlapping its commit.
    network: bool = False
    page_files: int = PAGE_FILES
    page_bytes: int = PAGE_BYTES
    state: RunState = field(default_factory=RunState)

    @property
    def sid(self) -> str:
        return self.session.session_id

    @property
    def root(self) -> Path:
        return Path(self.session.archive_root)

    @property
    def location_folder(self) -> Path:
        return location_folder(self.root, self.location)

    def media_folders(self) -> list[str]:
        return [str(media_folder(self.location_folder, kind, self.location.loc12)) for kind in MediaType]

    def staged(self, file: JournalFile) -> str:
        """Where a read-once import stages a file's single read, on the archive's filesystem."""
        return os.path.join(staging_folder(self.session), f"{file.file_id}{file.extension}")

    async def pages(
        self,
        state: FileState,
        *,
        sidecars: bool,
        writes: bool = True,
        reads_sources: bool = False,
        page_files: int | None = None,
        window: Window = EVERYTHING,
    ) -> AsyncIterator[list[JournalFile]]:
        """Pages of the window's files in `state`, in file order. Raises Cancelled or Interrupted
        between pages when told to stop; ends early when the archive went away, when another step
        failed, (for a step that `writes`) when writing must stop, or (for a step that
        `reads_sources`) when a source is gone."""
        after = window.first - 1
        while True:
            self.stop.check()
            if self.state.halted:
                return
            if writes and self.state.stop_reason is not None:
                return
            if reads_sources and self.state.sources.lost is not None:
                return
            if await asyncio.to_thread(self.archive.moved):
                self.state.must_stop(self.archive.lost_reason)
                return
            page = await self.journal.page(
                self.sid,
                state,
                sidecars=sidecars,
                after=after,
                last=window.last,
                max_files=min(self.page_files, page_files or self.page_files),
                max_bytes=self.page_bytes,
            )
            if not page:
                return
            after = page[-1].file_id
            yield page


def staging_folder(session: SessionRecord) -> str:
    """Where a read-once import stages its files: on the archive's filesystem, hidden, per session."""
    return os.path.join(session.archive_root, ".aus-staging", session.session_id)
