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
last byte is read, and the last quarter or so of the window read last is a window of its own. For
the same reason, of the windows cut once every file is known, one that is a single group too big
for the size of a window at its place (a clip: a file is never split) is read before the others
(right after the first window when the scan ended before any window could be given out, as on a
card of a few folders): its copy and re-read take long, and done while the rest of the card is read
they cost nothing, while at the end (a camera's clips sort after its photos) they would follow the
last read. Of identical files in one import the one read first is kept, so the move can change
which copy is the original, never what is archived.

Windows are cut while the scan records folder after folder (`Cutter`), each when the reading step
wants one: while the scan runs at full size from what it found, once it is done tapered over what
is left. Each is journalled before any step starts it: a resume follows the windows its run cut,
in their order, and cuts on from there.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
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
    """Cuts windows from files as they come, in id order (a folder at a time: links never cross
    folders), when a step wants one.

    `add` takes files; `next` cuts a window at its full size from those, once enough have come to
    fill it (the scan still runs: what is left is unknown, so nothing tapers); `finish`, once every
    file is known, cuts the rest as `cut` does, tapered, its oversized groups first. `given` windows
    were cut before (a resume): the sizes go on from there."""

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

    def add(self, files: Sequence[FileLinks]) -> None:
        for f in files:
            for other in f.linked:
                if other is not None:
                    low, high = min(f.file_id, other), max(f.file_id, other)
                    self._spans[low] = max(self._spans.get(low, low), high)
        self._pending.extend(files)
        self._pending_bytes += sum(f.size for f in files)

    def next(self) -> Window | None:
        """A full window of the files come so far; None until they fill one."""
        cut_here = self._next(final=False)
        return None if cut_here is None else self._take(*cut_here[:2])

    def finish(self) -> list[Window]:
        first = self._given == 0
        files = list(self._pending)
        windows: list[Window] = []
        oversized: list[Window] = []  # read first (after the import's first window, if among these)
        while (cut_here := self._next(final=True)) is not None:
            count, nbytes, early = cut_here
            (oversized if early and (windows or not first) else windows).append(self._take(count, nbytes))
        ordered = windows[:1] + oversized + windows[1:] if first else oversized + windows
        if windows and ordered[-1] == windows[-1]:  # the one read last is tapered, not one group
            ordered[-1:] = self._split_last(ordered[-1], files)
        return ordered

    def _split_last(self, window: Window, files: Sequence[FileLinks]) -> list[Window]:
        """The window read last, as two: about its last quarter alone (at an edge no link crosses).
        What follows the source's last byte is that window's copy, re-read and commit, so the
        smaller it is, the sooner the import ends; the rest of it is checked while it is read. A
        window of a quarter of the first size in bytes or less stays whole (its tail is short)."""
        inside = [f for f in files if window.first <= f.file_id <= window.last]
        total = sum(f.size for f in inside)
        if total <= self._first[1] // 4:
            return [window]
        reach = before = 0
        edge: int | None = None  # the split comes after inside[edge]
        for i, f in enumerate(inside[:-1]):
            before += f.size
            if total - before < total // 4:
                break
            reach = max(reach, self._spans.get(f.file_id, f.file_id))
            if reach <= f.file_id:  # no link crosses the edge after f
                edge = i
        if edge is None:
            return [window]
        return [Window(window.first, inside[edge].file_id), Window(inside[edge + 1].file_id, window.last)]

    def _next(self, *, final: bool) -> tuple[int, int, bool] | None:
        """The next window's files and bytes, and whether it is one oversized group; None when there
        are no files, or (not final) when they do not fill a window yet."""
        pending = self._pending
        if not pending:
            return None
        (first_files, first_bytes), (limit_files, limit_bytes) = self._first, self._limit
        if final:  # tapered: what follows the card's last read is the last window's work
            most_files = min(limit_files, max(first_files, len(pending) // 4))
            most_bytes = min(limit_bytes, max(first_bytes, self._pending_bytes // 4))
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
    quarter of what is left (never under the first size); a window closes once it reaches either
    limit at an edge no link crosses. Windows of one oversized group among the last ones (see
    Cutter) are read before them, after the first window; the window read last leaves about its
    last quarter to a window of its own."""
    cutter = Cutter(
        first_files=first_files, first_bytes=first_bytes, max_files=max_files, max_bytes=max_bytes
    )
    cutter.add(files)
    return cutter.finish()


class WindowFeed:
    """A run's windows, cut when a step wants the next one: at full size from what the scan recorded
    so far, or, once it is done, the rest at once (tapered). Each is journalled (`record`) before
    any step gets it, so a resume follows the same windows."""

    def __init__(
        self,
        windows: Sequence[Window],
        cutter: Cutter,
        record: Callable[[int, list[Window]], Awaitable[None]],
        *,
        scanned: bool,
    ) -> None:
        """`windows` cut already; `cutter` holds the recorded files past them; `record(seq, windows)`
        journals windows numbered on from `seq`; `scanned`: every file is recorded."""
        self.windows = list(windows)
        self._cutter = cutter
        self._record = record
        self._scanned = scanned
        self._closed = False  # the scan stopped early: no window is cut any more
        self._changed = asyncio.Condition()

    async def add(self, files: Sequence[FileLinks]) -> None:
        """The scan recorded `files`."""
        async with self._changed:
            self._cutter.add(files)
            self._changed.notify_all()

    async def scan_done(self) -> None:
        async with self._changed:
            self._scanned = True
            self._changed.notify_all()

    async def close(self) -> None:
        """The scan stopped before it was done (or is done): the steps end with what was cut."""
        async with self._changed:
            self._closed = not self._scanned
            self._changed.notify_all()

    async def get(self, index: int) -> Window | None:
        """The window at `index` in reading order, cut if need be; None when there is none."""
        async with self._changed:
            while index >= len(self.windows):
                if self._closed:
                    return None
                if self._scanned:
                    cut = self._cutter.finish()
                else:
                    window = self._cutter.next()
                    cut = [window] if window else []
                if cut:
                    await self._record(len(self.windows), cut)
                    self.windows.extend(cut)
                elif self._scanned:
                    return None
                else:
                    await self._changed.wait()
            return self.windows[index]
