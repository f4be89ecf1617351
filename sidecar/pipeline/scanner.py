"""Walk the import's input paths and yield classified, grouped files folder by folder.

Pure filesystem: it never opens a file, and knows nothing of the database, hashing or the archive layout.
"""

import os
import stat
from collections import defaultdict
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass

from sidecar.archive.media import (
    JPEG_EXTENSIONS,
    LIVE_IMAGE_EXTENSIONS,
    LIVE_VIDEO_EXTENSIONS,
    RAW_EXTENSIONS,
    MediaType,
    classify,
    exclusion,
    extension_of,
    unimported_reason,
)


@dataclass(frozen=True, slots=True)
class ScannedFile:
    path: str  # absolute source path; undecodable bytes kept as surrogate escapes (os.fsdecode)
    size: int
    media_type: MediaType
    extension: str  # lower-cased, with the dot
    parent: str | None = None  # sidecars only: the file it belongs to (same folder); None = orphan
    raw_pair: str | None = None  # RAW <-> JPEG partner, set on both files
    live_pair: str | None = None  # Live-Photo candidate partner, image <-> video, set on both files


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file (or a whole folder) not imported on purpose: counted as skipped and named, with the
    reason, in the import's result."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class ScanError:
    """A file or folder that could not be read; never fatal to the scan."""

    path: str
    message: str


@dataclass(frozen=True, slots=True)
class InputDone:
    """One input path is fully processed (drives the scan's share of the progress)."""

    path: str


ScanItem = ScannedFile | Skipped | ScanError | InputDone

_Identity = tuple[int, int]  # (st_dev, st_ino): survives symlinked and repeated spellings of a path


@dataclass(frozen=True, slots=True)
class _Candidate:
    name: str
    path: str
    size: int
    media_type: MediaType
    extension: str


def scan(
    paths: Sequence[str], archive_root: str | None, is_cancelled: Callable[[], bool] = lambda: False
) -> Iterator[ScanItem]:
    """Yield every file under `paths` once, each folder's files grouped and in name order."""
    walker = _Walker(_identity(archive_root), is_cancelled)
    # Consecutive file inputs from one folder (a multi-selection in a file picker) are grouped
    # together like a folder listing, so `IMG_1.CR2` + `IMG_1.xmp` picked as files still pair.
    run: list[_Candidate] = []
    run_inputs: list[str] = []
    for raw_path in paths:
        if is_cancelled():
            return
        path = os.path.abspath(raw_path)
        try:
            # stat (not lstat): an input that is itself a symlink was picked by the user, so it is followed.
            info = os.stat(path)
        except OSError as error:
            yield ScanError(path, _message(error, "input"))
            yield InputDone(path)
            continue
        if run and (not stat.S_ISREG(info.st_mode) or os.path.dirname(path) != os.path.dirname(run[0].path)):
            yield from _group(run)
            yield from map(InputDone, run_inputs)
            run, run_inputs = [], []
        if stat.S_ISDIR(info.st_mode):
            yield from walker.walk(path, info)
            if is_cancelled():
                return
            yield InputDone(path)
        elif stat.S_ISREG(info.st_mode):
            item = walker.file(os.path.basename(path), path, info)
            if isinstance(item, _Candidate):
                run.append(item)
            elif item is not None:
                yield item
            run_inputs.append(path)
        else:
            yield Skipped(path, "not a regular file")
            yield InputDone(path)
    yield from _group(run)
    yield from map(InputDone, run_inputs)


class _Walker:
    """The state shared by all inputs of one scan: what was already seen, and the archive to avoid."""

    def __init__(self, archive: _Identity | None, is_cancelled: Callable[[], bool]) -> None:
        self._archive = archive
        self._is_cancelled = is_cancelled
        self._folders: set[_Identity] = set()
        self._files: set[_Identity] = set()

    def file(self, name: str, path: str, info: os.stat_result) -> _Candidate | Skipped | None:
        """A regular file's candidate, Skipped for an unknown extension, None when already yielded."""
        media_type = classify(name)
        if media_type is None:
            return Skipped(path, unimported_reason(name) or "not imported")
        identity = (info.st_dev, info.st_ino)
        if identity in self._files:
            return None
        self._files.add(identity)
        return _Candidate(name, path, info.st_size, media_type, extension_of(name))

    def walk(self, root: str, info: os.stat_result) -> Iterator[ScanItem]:
        # A stack of folders, not recursion and not a list of files: memory follows the tree's depth
        # and one folder's listing, whatever the number of files.
        pending = [root] if self._enter(info) else []
        while pending:
            if self._is_cancelled():
                return
            folder = pending.pop()
            files, subfolders = yield from self._list(folder)
            yield from _group(files)
            pending.extend(reversed(subfolders))  # popped in name order

    def _enter(self, info: os.stat_result) -> bool:
        identity = (info.st_dev, info.st_ino)
        if identity == self._archive or identity in self._folders:
            return False
        self._folders.add(identity)
        return True

    def _list(self, folder: str) -> Generator[ScanItem, None, tuple[list[_Candidate], list[str]]]:
        """Yield the folder's Skipped and ScanError items; return its candidates and sorted subfolders."""
        files: list[_Candidate] = []
        subfolders: list[str] = []
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    item = self._entry(entry)
                    if isinstance(item, _Candidate):
                        files.append(item)
                    elif isinstance(item, str):
                        subfolders.append(item)
                    elif item is not None:
                        yield item
        except OSError as error:
            # Unreadable or vanished: report the folder, keep what was listed, and walk on.
            yield ScanError(folder, _message(error, "folder"))
        subfolders.sort()
        return files, subfolders

    def _entry(self, entry: os.DirEntry[str]) -> _Candidate | Skipped | ScanError | str | None:
        """One listed name: a file candidate, a subfolder's path to walk, an item to report, or None."""
        name = entry.name
        # DirEntry's type comes from the listing itself (no extra syscall on most filesystems), and
        # nothing below follows a link or opens a file: a FIFO opened for reading would block.
        is_folder = entry.is_dir(follow_symlinks=False)
        if reason := exclusion(name, is_folder):
            return Skipped(entry.path, reason)  # a folder is named once; nothing in it is walked
        if entry.is_symlink():
            return Skipped(entry.path, "symlink (never followed)")
        if not is_folder and not entry.is_file(follow_symlinks=False):
            return Skipped(entry.path, "not a regular file")
        if not is_folder and (reason := unimported_reason(name)):
            return Skipped(entry.path, reason)  # decided without a stat
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError as error:
            return ScanError(entry.path, _message(error, "folder" if is_folder else "file"))
        if is_folder:
            return entry.path if self._enter(info) else None
        if not stat.S_ISREG(info.st_mode):  # replaced by something else since the listing
            return Skipped(entry.path, "not a regular file")
        return self.file(name, entry.path, info)


def _group(files: list[_Candidate]) -> Iterator[ScannedFile]:
    """Yield one folder's files in name order, with sidecar parents and pairs filled in."""
    files = sorted(files, key=lambda candidate: candidate.name)
    by_base: defaultdict[str, list[_Candidate]] = defaultdict(list)
    by_name: dict[str, _Candidate] = {}
    for candidate in files:
        if candidate.media_type is not MediaType.SIDECAR:
            by_base[_base(candidate.name)].append(candidate)
            by_name.setdefault(candidate.name.casefold(), candidate)
    raw_pair: dict[str, str] = {}
    live_pair: dict[str, str] = {}
    for group in by_base.values():
        _pair(raw_pair, group, RAW_EXTENSIONS, JPEG_EXTENSIONS)
        _pair(live_pair, group, LIVE_IMAGE_EXTENSIONS, LIVE_VIDEO_EXTENSIONS)
    for candidate in files:
        yield ScannedFile(
            candidate.path,
            candidate.size,
            candidate.media_type,
            candidate.extension,
            _parent(candidate, by_name, by_base) if candidate.media_type is MediaType.SIDECAR else None,
            raw_pair.get(candidate.path),
            live_pair.get(candidate.path),
        )


SONY_CLIP_METADATA = "m01"  # casefolded


def _parent(
    sidecar: _Candidate, by_name: dict[str, _Candidate], by_base: dict[str, list[_Candidate]]
) -> str | None:
    key = _stem(sidecar.name).casefold()
    # `IMG_1.CR2.xmp` names its parent in full; `IMG_1.xmp` only by base name, so rank the candidates.
    if key in by_name:
        return by_name[key].path
    siblings = by_base.get(key)
    if not siblings and sidecar.extension == ".xml" and key.endswith(SONY_CLIP_METADATA):
        # Sony's XAVC cameras write a clip's metadata beside it as `C0001M01.XML` for `C0001.MP4`.
        siblings = by_base.get(key.removesuffix(SONY_CLIP_METADATA))
    return min(siblings, key=_parent_rank).path if siblings else None


def _pair(
    pairs: dict[str, str], group: list[_Candidate], left: frozenset[str], right: frozenset[str]
) -> None:
    # The first of each kind in name order, as the app did.
    first_left = next((c.path for c in group if c.extension in left), None)
    first_right = next((c.path for c in group if c.extension in right), None)
    if first_left and first_right:
        pairs[first_left], pairs[first_right] = first_right, first_left


def _parent_rank(candidate: _Candidate) -> int:
    """Which of several same-base files a sidecar most likely describes (min wins; ties keep name order)."""
    if candidate.extension in RAW_EXTENSIONS:
        return 0
    if candidate.extension in JPEG_EXTENSIONS:
        return 1
    if candidate.media_type is MediaType.IMAGE:
        return 2
    return 3 if candidate.media_type is MediaType.VIDEO else 4


def _stem(name: str) -> str:
    """The name without its last extension, in its original case (as extension_of splits it)."""
    dot = name.rfind(".")
    return name[:dot] if dot > 0 else name


def _base(name: str) -> str:
    # Case-folded after the split: the app lower-cased the extension first and then failed to strip
    # `.JPG`, so camera files never paired.
    return _stem(name).casefold()


def _identity(path: str | None) -> _Identity | None:
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None  # an archive that does not exist yet cannot be inside a source
    return info.st_dev, info.st_ino


def _message(error: OSError, what: str) -> str:
    if isinstance(error, FileNotFoundError):
        return "No such file or directory" if what == "input" else f"{what.capitalize()} vanished during scan"
    return f"{error.strerror or error}: cannot read {what}"
