"""How an import's files are cut into windows: runs of file ids that go through hash, copy,
validate and finalize together, so the first files are archived (rows, counts, background jobs)
while later ones are still being read, and later ones still scanned.

A window never separates files that belong together (a sidecar and its parent, a RAW+JPEG pair, a
Live Photo's image and video): copying a sidecar needs its parent's target, and a pair's jobs need
both hashes. The scan numbers files folder by folder and links only within a folder, so a window
edge is allowed wherever no link crosses it.

Windows grow: the first is small, so the first thumbnails come within seconds of the start; later
ones are larger, so the per-window work (one round of step starts and commits) stays small beside
the bytes. Near the end they shrink again, so little is left to copy, check and commit once the
last byte is read. For the same reason, of the windows cut once every file is known, one that is a
single group too big for the size of a window at its place (a clip: a file is never split) is read
before the others (right after the first window when the scan ended before any window could be
given out, as on a card of a few folders): its copy and re-read take long, and done while the rest
of the card is read they cost nothing, while at the end (a camera's clips sort after its photos)
they would follow the last read. Of identical files in one import the one read first is kept, so
the move can change which copy is the original, never what is archived.

Windows are cut as the scan records folder after folder (`Cutter`), each as soon as no file still
to come could change it, and journalled before any step starts them: a resume follows the windows
its run cut, in their order, and cuts on from there.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

# The first window, and the most any window grows to (files, bytes): a window's staged reads sit on
# the archive's disk until it is copied, and two windows are in flight at most.
FIRST_FILES = 64
FIRST_BYTES = 64 << 20
MAX_FILES = 2048
MAX_BYTES = 256 << 20


@dataclass(frozen=True, slots=True)
class Window:
    """File ids `first`..`last`, both included."""

    first: int
    last: int


# The whole import as one window: what the steps do when run on their own.
EVERYTHING = Window(0, 2**62)


@dataclass(frozen=True, slots=True)
class FileLinks:
    file_id: int
    size: int
    linked: tuple[int | None, ...]  # parent, RAW+JPEG partner, Live Photo partner


class Cutter:
    """Cuts windows as files come, in id order (a folder at a time: links never cross folders).

    `add` gives out each window that no later file can change: the taper to a quarter of what is
    left binds only near the end, so a window is certain once its files and bytes four times over
    have come after its start. `finish`, once every file is known, cuts the rest as `cut` would and
    reads its oversized groups first. `given` windows were cut before (a resume): the sizes go on
    from there."""

    def __init__(
        self,
        *,
        first_files: int = FIRST_FILES,
        first_bytes: int = FIRST_BYTES,
        max_files: int = MAX_FILES,
        max_bytes: int = MAX_BYTES,
        given: int = 0,
    ) -> None:
        self._first = (first_files, first_bytes)
        self._max = (max_files, max_bytes)
        growth = 1 << min(given, 62)
        self._limit = (min(first_files * growth, max_files), min(first_bytes * growth, max_bytes))
        self._given = given
        self._pending: list[FileLinks] = []
        self._pending_bytes = 0
        self._spans: dict[int, int] = {}  # a link spans the ids between its two ends

    def add(self, files: Sequence[FileLinks]) -> list[Window]:
        for f in files:
            for other in f.linked:
                if other is not None:
                    low, high = min(f.file_id, other), max(f.file_id, other)
                    self._spans[low] = max(self._spans.get(low, low), high)
        self._pending.extend(files)
        self._pending_bytes += sum(f.size for f in files)
        windows: list[Window] = []
        while (cut_here := self._next(final=False)) is not None:
            windows.append(self._take(*cut_here[:2]))
        return windows

    def finish(self) -> list[Window]:
        first = self._given == 0
        windows: list[Window] = []
        oversized: list[Window] = []  # read right after the import's first window
        while (cut_here := self._next(final=True)) is not None:
            count, nbytes, early = cut_here
            (oversized if early and (windows or not first) else windows).append(self._take(count, nbytes))
        return windows[:1] + oversized + windows[1:] if first else oversized + windows

    def _next(self, *, final: bool) -> tuple[int, int, bool] | None:
        """The next window's files and bytes, and whether it is one oversized group; None when there
        are no files, or (not final) when files still to come could change it."""
        pending = self._pending
        if not pending:
            return None
        left_files, left_bytes = len(pending), self._pending_bytes
        (first_files, first_bytes), (limit_files, limit_bytes) = self._first, self._limit
        if final:  # tapered: what follows the card's last read is the last window's work
            most_files = min(limit_files, max(first_files, left_files // 4))
            most_bytes = min(limit_bytes, max(first_bytes, left_bytes // 4))
        else:
            most_files, most_bytes = limit_files, limit_bytes
        count = nbytes = reach = at_edge = 0  # at_edge: the window's bytes before its last group
        for f in pending:
            count += 1
            nbytes += f.size
            reach = max(reach, self._spans.get(f.file_id, f.file_id))  # no edge before a link's far end
            if reach > f.file_id:
                continue
            if count >= most_files or nbytes >= most_bytes:
                # Not final: the taper, were the files so far all there is, would leave this window
                # as it is (a quarter of them is at least its files, more than its bytes).
                if not final and (left_files // 4 < count or left_bytes // 4 <= nbytes):
                    return None
                # A group bigger than this window may be: a clip, say.
                return count, nbytes, nbytes - at_edge > most_bytes
            at_edge = nbytes
        return (count, nbytes, False) if final else None

    def _take(self, count: int, nbytes: int) -> Window:
        window = Window(self._pending[0].file_id, self._pending[count - 1].file_id)
        del self._pending[:count]
        self._pending_bytes -= nbytes
        self._given += 1
        (max_files, max_bytes), (limit_files, limit_bytes) = self._max, self._limit
        self._limit = (min(limit_files * 2, max_files), min(limit_bytes * 2, max_bytes))
        return window


def cut(
    files: Sequence[FileLinks],
    *,
    first_files: int = FIRST_FILES,
    first_bytes: int = FIRST_BYTES,
    max_files: int = MAX_FILES,
    max_bytes: int = MAX_BYTES,
) -> list[Window]:
    """Windows over `files` (in file id order) that no link crosses, each the size of the one before
    it doubled, from (`first_files`, `first_bytes`) up to (`max_files`, `max_bytes`) but at most a
    quarter of what is left (never under the first size); a window closes once it
    reaches either limit at an edge no link crosses. Windows of one oversized group among the last
    ones (see Cutter) are read before them, after the first window."""
    cutter = Cutter(
        first_files=first_files, first_bytes=first_bytes, max_files=max_files, max_bytes=max_bytes
    )
    return cutter.add(files) + cutter.finish()


class WindowFeed:
    """A run's windows as they are cut: the scan cuts them from each folder it records (`cut`,
    journalled with the folder) and hands them on (`publish`); the steps take them in order (`get`)."""

    def __init__(self, windows: Sequence[Window], cutter: Cutter | None) -> None:
        """`windows` cut already; `cutter` cuts on while the scan runs (None: it is done)."""
        self.windows = list(windows)
        self._cutter = cutter
        self._last = cutter is None  # no window comes after these
        self._changed = asyncio.Condition()

    def cut(self, files: Sequence[FileLinks]) -> list[Window]:
        return self._cutter.add(files) if self._cutter is not None else []

    def finish(self) -> list[Window]:
        return self._cutter.finish() if self._cutter is not None else []

    async def publish(self, windows: Sequence[Window], *, last: bool = False) -> None:
        async with self._changed:
            self.windows.extend(windows)
            self._last = self._last or last
            self._changed.notify_all()

    async def close(self) -> None:
        """No more windows come: the scan is done or stopped."""
        await self.publish([], last=True)

    async def get(self, index: int) -> Window | None:
        """The window at `index` in reading order, once cut; None when none will be."""
        async with self._changed:
            await self._changed.wait_for(lambda: index < len(self.windows) or self._last)
        return self.windows[index] if index < len(self.windows) else None
