"""How an import's files are cut into windows: runs of file ids that go through hash, copy,
validate and finalize together, so the first files are archived (rows, counts, background jobs)
while later ones are still being read.

A window never separates files that belong together (a sidecar and its parent, a RAW+JPEG pair, a
Live Photo's image and video): copying a sidecar needs its parent's target, and a pair's jobs need
both hashes. The scan numbers files folder by folder and links only within a folder, so a window
edge is allowed wherever no link crosses it.

Windows grow: the first is small, so the first thumbnails come within seconds of the start; later
ones are larger, so the per-window work (one round of step starts and commits) stays small beside
the bytes. Near the end they shrink again, so little is left to copy, check and commit once the
last byte is read. For the same reason a window that is one group bigger than a first window and
than its own size (a clip: a file is never split) is read right after the first window: its copy
and re-read take long, and done while the rest of the card is read they cost nothing, while at the
end (a camera's clips sort after its photos) they would follow the last read. Of identical files
in one import the one read first is kept, so the move can change which copy is the original, never
what is archived.
"""

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
    quarter of what is left (never under a quarter of the first size); a window closes once it
    reaches either limit at an edge no link crosses. Windows of one oversized group come second."""
    # A link spans the ids between its two ends, whichever end names the other.
    spans: dict[int, int] = {}
    for f in files:
        for other in f.linked:
            if other is not None:
                low, high = min(f.file_id, other), max(f.file_id, other)
                spans[low] = max(spans.get(low, low), high)
    windows: list[Window] = []
    oversized: list[Window] = []  # read right after the first
    limit_files, limit_bytes = first_files, first_bytes
    left_files, left_bytes = len(files), sum(f.size for f in files)
    start: int | None = None
    count = nbytes = reach = at_edge = 0  # at_edge: the window's bytes before its last group
    most_files = most_bytes = 0
    for f in files:
        if start is None:
            start, count, nbytes, at_edge = f.file_id, 0, 0, 0
            # Tapered towards the end: what follows the card's last read is the last window's
            # copy, validation and commit, so it is kept to a quarter of what is left.
            most_files = min(limit_files, max(first_files // 4, left_files // 4))
            most_bytes = min(limit_bytes, max(first_bytes // 4, left_bytes // 4))
        count += 1
        nbytes += f.size
        left_files -= 1
        left_bytes -= f.size
        reach = max(reach, spans.get(f.file_id, f.file_id))  # no edge before a link's far end
        if reach > f.file_id:
            continue
        if count >= most_files or nbytes >= most_bytes:
            window = Window(start, f.file_id)
            # A group bigger than a first window and than this one may be: a clip, say.
            early = len(windows) > 0 and nbytes - at_edge > max(most_bytes, first_bytes)
            (oversized if early else windows).append(window)
            start = None
            limit_files = min(limit_files * 2, max_files)
            limit_bytes = min(limit_bytes * 2, max_bytes)
        at_edge = nbytes
    if start is not None:
        windows.append(Window(start, files[-1].file_id))
    return windows[:1] + oversized + windows[1:]
