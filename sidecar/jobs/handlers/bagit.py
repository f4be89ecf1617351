"""`bagit`: keep a location's bag in `org-doc-<LOC12>/_archive/` current, as the app's BagIt service
lays it out, after an import commits files of that location. It reads the database and the
archive and writes only the bag's four tag files; it knows nothing of how files got there.

What the bag lists (its payload) is what the database accounts for: every file of the location's
media rows (`imgloc`, `vidloc`, `docloc`, `maploc`, hidden rows included: a live photo's video is
archived data too) and every sidecar the import journal finalized for the location, in org-misc or
beside a parent that still has its row. Nothing is found by walking folders, so a file another
import is still copying, a video proxy (`.<hash>.proxy.mp4`), a temp file or `_archive` itself is
never listed. Every file must sit directly in one of the location's `org-*` folders.

Relation to RFC 8493. Everything but the payload's place is the RFC's: `bagit.txt` (1.0, UTF-8),
`bag-info.txt` (`Payload-Oxum`, `Bagging-Date`, ...), `manifest-sha256.txt` and
`tagmanifest-sha256.txt` in the RFC's line format. But the payload is not in the bag's `data/`:
the files stay where the archive keeps them, and the manifest names them relative to `_archive/`
(`../<hash>.pdf`, `../../org-img-<LOC12>/<hash>.jpg`), exactly as the app's service wrote them, so
`cd _archive && sha256sum -c manifest-sha256.txt` verifies the location. RFC tools (bagit-python)
refuse such paths as leaving the bag; rebasing each path onto `data/` (a view with the files
linked there, the same tag files, the tagmanifest line of the rewritten manifest recomputed)
gives an RFC 8493 bag that the reference library validates in full: the tests do that.

Incremental and atomic. SHA-256 is computed only for payload files the current manifest does not
list (a listed file is trusted, not re-read: verifying old entries is a fixity check, not this
job's). Each tag file that changes is written to a temp name in `_archive/`, flushed, renamed and
the folder flushed, in the order manifest, bagit.txt, bag-info.txt, tagmanifest. The manifest
only ever lists files that exist with that content, so `sha256sum -c` passes at every moment;
until the tagmanifest lands, the tag files disagree detectably (the library reports it), and the
next run, which compares every tag file with what it should be, completes the bag. A run that
changes nothing writes nothing (and keeps `Bagging-Date`).

Statuses (`locs.bag_status`, the app's values): `valid` when the bag is written and lists every
file; `incomplete` when some file of the location lies outside its folder (the bag covers the
rest); `invalid` when a file the database accounts for is missing, or the run failed. A missing
file leaves the bag untouched, so its manifest keeps the lost file's checksum to verify a restored
copy against; once the file is back, or its row is deleted in the app, the next run brings the bag
up to date. `bag_last_error` names the files; it is NULL when the bag is valid.
"""

import asyncio
import bisect
import contextlib
import hashlib
import os
import re
import stat
import sys
import threading
import time
from array import array
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sidecar import __version__, fs
from sidecar.archive.layout import contained, location_folder, media_folder
from sidecar.archive.media import MediaType
from sidecar.archive.tables import MEDIA_TABLES
from sidecar.db.locations import Location, find_location
from sidecar.errors import PermanentFailure
from sidecar.jobs.handlers import JobContext
from sidecar.timestamps import now_iso

BAG_FOLDER = "_archive"
BAGIT_TXT = "bagit.txt"
BAG_INFO = "bag-info.txt"
MANIFEST = "manifest-sha256.txt"
TAGMANIFEST = "tagmanifest-sha256.txt"
BAGIT_DECLARATION = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
CHUNK_BYTES = 1 << 20  # the stop flag is checked between chunks, so a huge file stops quickly
PROGRESS_INTERVAL_S = 0.5
ERROR_NAMES_MAX = 5  # files named in bag_last_error; the count is always exact

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_ORG_FOLDER = re.compile(r"org-(img|vid|doc|map|misc)-[A-Za-z0-9]+")
_ENCODED = re.compile(r"%(25|0[AaDd])")
_DECODED = {"25": "%", "0A": "\n", "0D": "\r"}

_O_BINARY: int = getattr(os, "O_BINARY", 0)
_O_CLOEXEC: int = getattr(os, "O_CLOEXEC", 0)
_O_NONBLOCK: int = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted in the archive cannot block a read
_O_DIRECTORY: int = getattr(os, "O_DIRECTORY", 0)

# A location's media rows, paged by rowid (its locid index is ordered by rowid): no read holds the
# shared reader long, and no list of database rows for a 100 000-file location is ever built.
_PAGE_ROWS = 5000
# Sidecars have no app table; the import journal is the record of the ones archived.
_SIDECAR_PATHS_SQL = (
    "SELECT DISTINCT f.target FROM aus_import_files f"
    " JOIN import_sessions s ON s.session_id = f.session_id"
    " WHERE s.locid = ? AND f.media_type = 'sidecar' AND f.state = 'finalized' AND f.target IS NOT NULL"
)
_SET_STATUS_SQL = "UPDATE locs SET bag_status = ?, bag_last_verified = ?, bag_last_error = ? WHERE locid = ?"


class BagStatus(StrEnum):
    """`locs.bag_status` as the app's BagIt service names them ('none' is the column's default)."""

    VALID = "valid"
    INCOMPLETE = "incomplete"
    INVALID = "invalid"


class BagItJobError(PermanentFailure):
    """The bag job cannot run for this location; another try cannot help."""


class Stopped(Exception):
    """The job was stopped (timeout or shutdown) while hashing."""


@dataclass(frozen=True, slots=True)
class BagRequest:
    location_folder: Path
    bag_folder: Path
    # The database's paths, relative to the location folder where they lie under it as stored (the
    # common case, a third of the memory), else as stored.
    row_paths: Sequence[str]
    sidecar_paths: Sequence[str]
    info: Sequence[tuple[str, str]]  # bag-info.txt fields a new bag gets (kept from an existing one)
    today: str  # Bagging-Date, YYYY-MM-DD


@dataclass(slots=True)
class Names:
    """How many paths, and the first few for a message (the count is always exact)."""

    count: int = 0
    first: list[str] = field(default_factory=list)

    def add(self, path: str) -> None:
        self.count += 1
        if len(self.first) < ERROR_NAMES_MAX:
            self.first.append(path)

    def __bool__(self) -> bool:
        return self.count > 0

    def __str__(self) -> str:
        more = self.count - len(self.first)
        return ", ".join(self.first) + (f" and {more} more" if more else "")


@dataclass(slots=True)
class BagReport:
    status: BagStatus
    files: int = 0
    bytes: int = 0
    added: int = 0  # files hashed by this run
    removed: int = 0  # manifest entries dropped: the database no longer accounts for their files
    written: list[str] = field(default_factory=list)  # tag files this run replaced
    missing: Names = field(default_factory=Names)  # location-relative paths
    outside: Names = field(default_factory=Names)  # as the database holds them

    @property
    def error(self) -> str | None:
        problems = []
        if self.missing:
            problems.append(
                f"{self.missing.count} archived file(s) missing: {self.missing}; the bag was left as it was"
            )
        if self.outside:
            problems.append(
                f"{self.outside.count} file(s) of the location lie outside its folder, so the bag"
                f" cannot list them: {self.outside}"
            )
        return " ".join(problems) or None


async def bagit(job: JobContext) -> dict[str, Any]:
    locid = job.payload.get("locid")
    if not isinstance(locid, str) or not locid:
        raise BagItJobError("bagit: the job's payload names no locid")
    if not job.archive_root:
        raise RuntimeError("bagit: no archive folder is set (--archive or the app's archive_folder setting)")
    location = await find_location(job.db, locid)
    if location is None:
        raise BagItJobError(f"bagit: location {locid!r} not found")
    loop = asyncio.get_running_loop()
    stop = threading.Event()

    def progress(percent: float, message: str) -> None:
        # From the worker thread: events belong to the loop, so hand them over.
        if not stop.is_set():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(job.progress, percent, message)

    try:
        request = await _request(job, location, Path(job.archive_root))
        report = await job.threads.run(update_bag, request, stop, progress)
    except asyncio.CancelledError:
        stop.set()  # the thread ends at its next chunk; the bag on disk stays consistent
        raise
    except Exception as exc:
        with contextlib.suppress(Exception):  # never hide the job's own error behind this one
            await _set_status(job, locid, BagStatus.INVALID, f"bag not updated: {exc}")
        raise
    error = report.error
    await _set_status(job, locid, report.status, error)
    return {
        "locid": locid,
        "status": report.status.value,
        "files": report.files,
        "bytes": report.bytes,
        "added": report.added,
        "removed": report.removed,
        "written": report.written,
        "bagPath": str(request.bag_folder),
        "error": error,
    }


async def _request(job: JobContext, location: Location, root: Path) -> BagRequest:
    try:
        folder = contained(root, location_folder(root, location))
        bag = contained(root, media_folder(folder, MediaType.DOCUMENT, location.loc12) / BAG_FOLDER)
    except ValueError as exc:
        raise BagItJobError(f"bagit: unsafe location folder: {exc}") from exc
    prefix = os.path.join(folder, "")

    def compact(path: str) -> str:
        return path[len(prefix) :] if path.startswith(prefix) else path

    row_paths = [compact(path) async for path in _media_paths(job, location.locid)]
    sidecars = [compact(row[0]) for row in await job.db.fetch_all(_SIDECAR_PATHS_SQL, (location.locid,))]
    info = [
        ("Source-Organization", "Abandoned Archive"),
        ("External-Identifier", location.loc12),
        ("External-Description", _one_line(location.locnam)),
        ("Internal-Sender-Identifier", location.locid),
        ("Bag-Count", "1 of 1"),
    ]
    today = datetime.now(UTC).date().isoformat()
    return BagRequest(folder, bag, row_paths, sidecars, info, today)


async def _media_paths(job: JobContext, locid: str) -> AsyncIterator[str]:
    for table in MEDIA_TABLES.values():
        after = 0
        sql = (
            f"SELECT rowid, {table.path_column} FROM {table.table}"
            " WHERE locid = ? AND rowid > ? ORDER BY rowid LIMIT ?"
        )
        while page := await job.db.fetch_all(sql, (locid, after, _PAGE_ROWS)):
            after = page[-1][0]
            for _, path in page:
                if path:
                    yield path


async def _set_status(job: JobContext, locid: str, status: BagStatus, error: str | None) -> None:
    async with job.db.transaction() as conn:
        await conn.execute(_SET_STATUS_SQL, (status.value, now_iso(), error, locid))


# -- the bag on disk (runs in a thread) -----------------------------------------------------------


def update_bag(
    request: BagRequest,
    stop: threading.Event | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> BagReport:
    """Bring the bag up to date (blocking: file reads, hashing and writes). Returns what it found.

    Memory is one short string per file (the sorted entries) and a size: the manifest is merged
    with the old one and written out line by line, so a location of 100 000 files costs a few
    megabytes, not a table of paths and checksums."""
    stop = stop or threading.Event()
    bag = request.bag_folder
    fs.sweep_temps([bag])
    layout = _Layout(request.location_folder, bag)
    entries, outside = layout.entries(request.row_paths, request.sidecar_paths)
    sizes = array("q")
    missing = Names()
    for entry in entries:
        try:
            sizes.append(_regular_size(layout.real(entry)))
        except FileNotFoundError:
            missing.add(layout.shown(entry))
    if missing:
        return BagReport(BagStatus.INVALID, missing=missing, outside=outside)

    old = _OldManifest(bag / MANIFEST)
    total = sum(size for size, known in zip(sizes, old.digests(entries), strict=True) if known is None)
    written = _Written()
    last_report = time.monotonic()

    def lines() -> Iterator[bytes]:
        nonlocal last_report
        done = 0
        for entry, size, known in zip(entries, sizes, old.digests(entries), strict=True):
            digest = known
            if digest is None:
                try:
                    digest, size = sha256_file(layout.real(entry), stop)
                except FileNotFoundError:
                    missing.add(layout.shown(entry))  # deleted while we ran
                    continue
                written.added += 1
                done += size
                if progress is not None and time.monotonic() - last_report >= PROGRESS_INTERVAL_S:
                    last_report = time.monotonic()
                    progress(min(99.0, 100.0 * done / max(total, 1)), f"hashed {done} of {total} bytes")
            else:
                written.kept += 1
            line = manifest_line(entry, digest).encode()
            written.sha256.update(line)
            written.bytes += size
            yield line

    bag.mkdir(parents=True, exist_ok=True)
    with fs.staged(bag / MANIFEST) as (out, staged):
        for line in lines():
            out.write(line)
    manifest_changed = written.sha256.digest() != old.sha256
    if missing or not manifest_changed:
        os.unlink(staged)
    if missing:
        return BagReport(BagStatus.INVALID, missing=missing, outside=outside)

    old_info = _read_text(bag / BAG_INFO)
    # Bagging-Date is when the payload last changed: kept while the manifest stays the same.
    kept_date = None if manifest_changed else _field(old_info, "Bagging-Date")
    owned = [
        ("Bagging-Date", kept_date or request.today),
        ("Payload-Oxum", f"{written.bytes}.{len(entries)}"),
        ("Bag-Software-Agent", f"au-archive import sidecar {__version__}"),
    ]
    tags = {BAGIT_TXT: BAGIT_DECLARATION, BAG_INFO: render_bag_info(old_info, owned, request.info)}
    tag_digests = {name: hashlib.sha256(text.encode()).hexdigest() for name, text in tags.items()}
    tags[TAGMANIFEST] = render_manifest({MANIFEST: written.sha256.hexdigest(), **tag_digests})

    published: list[str] = []
    if manifest_changed:  # the manifest first, the tagmanifest last
        fs.publish(staged, bag / MANIFEST)
        published.append(MANIFEST)
    for name in (BAGIT_TXT, BAG_INFO, TAGMANIFEST):
        if _read_text(bag / name) != tags[name]:
            fs.write_atomically(bag / name, [tags[name].encode()])
            published.append(name)
    return BagReport(
        BagStatus.INCOMPLETE if outside else BagStatus.VALID,
        files=len(entries),
        bytes=written.bytes,
        added=written.added,
        removed=old.count - written.kept,
        written=published,
        outside=outside,
    )


@dataclass(slots=True)
class _Written:
    """What the new manifest holds, tallied as it is written."""

    sha256: Any = field(default_factory=hashlib.sha256)
    bytes: int = 0
    added: int = 0  # entries hashed by this run
    kept: int = 0  # entries whose checksum the old manifest gave


class _Layout:
    """Where a location's files sit, as the bag names them. An entry (the manifest's path, relative
    to `_archive/`) is `../<name>` for the bag's own org-doc folder, else `../../<org folder>/<name>`."""

    def __init__(self, location_folder: Path, bag: Path) -> None:
        self.given = str(location_folder)  # as the database's paths spell it
        self.folder = os.path.realpath(location_folder)
        self.doc_org = bag.parent.name
        self._org_is_own: dict[str, bool] = {}

    def entries(self, row_paths: Sequence[str], sidecar_paths: Sequence[str]) -> tuple[list[str], Names]:
        """The sorted, distinct entries of the files the database accounts for, and the paths it
        holds that lie outside the location's `org-*` folders."""
        outside = Names()
        rows: list[str] = []
        for path in row_paths:
            if (entry := self._entry(path)) is None:
                outside.add(self._as_stored(path))
            else:
                rows.append(entry)
        rows.sort()
        sidecars = []
        for path in sidecar_paths:
            if (entry := self._entry(path)) is None:
                outside.add(self._as_stored(path))
            # A sidecar beside its parent belongs to the bag while the parent's row does.
            elif entry.startswith("../../org-misc-") or _has_parent(rows, entry):
                sidecars.append(entry)
        rows += sidecars
        rows.sort()
        return _distinct(rows), outside

    def real(self, entry: str) -> str:
        if entry.startswith("../../"):
            return os.path.join(self.folder, entry[6:])
        return os.path.join(self.folder, self.doc_org, entry[3:])

    def shown(self, entry: str) -> str:
        """Relative to the location folder, for messages."""
        return entry[6:] if entry.startswith("../../") else f"{self.doc_org}/{entry[3:]}"

    def _entry(self, path: str) -> str | None:
        """The entry of a file directly in one of the location's `org-*` folders, else None.
        A location-relative path is checked with one lstat; anything else (another spelling of the
        folder, a symlink) is resolved in full."""
        if not os.path.isabs(path):
            org, _, name = path.partition(os.sep)
            if (
                self._org_is_own_folder(org)
                and _plain_name(name)
                and not _is_link(os.path.join(self.folder, path))
            ):
                return self._entry_of(org, name)
            path = os.path.join(self.folder, path)
        try:
            parts = os.path.relpath(os.path.realpath(path), self.folder).split(os.sep)
        except ValueError:  # another drive (Windows)
            return None
        if len(parts) != 2 or not _ORG_FOLDER.fullmatch(parts[0]) or not _plain_name(parts[1]):
            return None
        return self._entry_of(parts[0], parts[1])

    def _entry_of(self, org: str, name: str) -> str:
        return f"../{name}" if org == self.doc_org else f"../../{org}/{name}"

    def _org_is_own_folder(self, org: str) -> bool:
        """An `org-*` name whose folder is really inside the location (not linked elsewhere)."""
        if org not in self._org_is_own:
            path = os.path.join(self.folder, org)
            self._org_is_own[org] = bool(_ORG_FOLDER.fullmatch(org)) and os.path.realpath(path) == path
        return self._org_is_own[org]

    def _as_stored(self, path: str) -> str:
        return path if os.path.isabs(path) else os.path.join(self.given, path)


def _plain_name(name: str) -> bool:
    return bool(name) and os.sep not in name and not name.startswith(".")


def _is_link(path: str) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False  # reported as missing when its size is taken


def _has_parent(rows: list[str], entry: str) -> bool:
    """Whether a row's file in the sidecar's folder has its base name (`x.jpg` for `x.xmp`)."""
    stem = os.path.splitext(entry)[0]
    at = bisect.bisect_left(rows, stem)
    while at < len(rows) and rows[at].startswith(stem):
        if os.path.splitext(rows[at])[0] == stem:
            return True
        at += 1
    return False


def _distinct(ordered: list[str]) -> list[str]:
    """`ordered` without repeats (a path in two tables)."""
    return [e for i, e in enumerate(ordered) if i == 0 or e != ordered[i - 1]]


class _OldManifest:
    """The bag's current manifest, read back a line at a time. Ours is written sorted, so its
    checksums are looked up by merging it with the sorted entries; another writer's (the app's
    service) is loaded whole, once, since the next run finds it sorted."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sha256: bytes | None = None  # of the file's bytes; None when there is no manifest
        self.count = 0  # well-formed entries
        ordered, previous = True, None
        try:
            digest = hashlib.sha256()
            for entry, _ in self._lines(digest):
                self.count += 1
                ordered = ordered and (previous is None or entry > previous)
                previous = entry
            self.sha256 = digest.digest()
        except FileNotFoundError:
            pass
        self._table = None if ordered else dict(self._lines())
        if self._table is not None:
            self.count = len(self._table)

    def digests(self, entries: Iterable[str]) -> Iterator[str | None]:
        """The listed checksum of each entry (in order), None where the manifest has none."""
        if self._table is not None:
            yield from (self._table.get(entry) for entry in entries)
            return
        listed = self._lines() if self.sha256 is not None else iter(())
        current = next(listed, None)
        for entry in entries:
            while current is not None and current[0] < entry:
                current = next(listed, None)
            yield current[1] if current is not None and current[0] == entry else None

    def _lines(self, digest: Any = None) -> Iterator[tuple[str, str]]:
        with open(self.path, "rb") as manifest:
            for raw in manifest:
                if digest is not None:
                    digest.update(raw)
                if (parsed := parse_manifest_line(raw.decode("utf-8", "replace"))) is not None:
                    yield parsed


def sha256_file(path: str, stop: threading.Event) -> tuple[str, int]:
    """SHA-256 of a regular file in chunks; (hex digest, bytes read). Raises Stopped when asked to."""
    digest = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_RDONLY | _O_CLOEXEC | _O_BINARY | _O_NONBLOCK)
    with open(fd, "rb", buffering=0) as reader:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileNotFoundError(f"not a regular file: {path}")
        if sys.platform != "win32" and _O_NONBLOCK:
            os.set_blocking(fd, True)
        buffer = bytearray(CHUNK_BYTES)
        view = memoryview(buffer)
        while n := reader.readinto(view):
            if stop.is_set():
                raise Stopped("bagit: stopped while hashing")
            digest.update(view[:n])
            size += n
    return digest.hexdigest(), size


def _regular_size(path: str) -> int:
    """Size of a regular file; anything else (gone, a folder, a FIFO) counts as missing."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise FileNotFoundError(f"not a regular file: {path}")
    return info.st_size


# -- tag files ----------------------------------------------------------------------------------


def _encode_path(path: str) -> str:
    # RFC 8493 §2.1.3: only these three characters are percent-encoded in manifest paths.
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _decode_path(path: str) -> str:
    return _ENCODED.sub(lambda m: _DECODED[m.group(1).upper()], path)


def manifest_line(path: str, digest: str) -> str:
    return f"{digest}  {_encode_path(path)}\n"


def render_manifest(digests: dict[str, str]) -> str:
    return "".join(manifest_line(path, digests[path]) for path in sorted(digests))


def parse_manifest_line(line: str) -> tuple[str, str] | None:
    """(path, lower-case SHA-256) of a well-formed manifest line, else None (so its file is
    simply hashed again)."""
    parts = line.strip().split(None, 1)
    if len(parts) == 2 and _SHA256.fullmatch(parts[0]):
        return _decode_path(parts[1].lstrip("*")), parts[0].lower()
    return None


def parse_manifest(text: str) -> dict[str, str]:
    return dict(filter(None, map(parse_manifest_line, text.splitlines())))


def _parse_tags(text: str | None) -> list[tuple[str, str]]:
    """(label, raw text) per field of a tag file, continuation lines kept with their field."""
    fields: list[tuple[str, str]] = []
    for line in (text or "").splitlines(keepends=True):
        if not line.strip():
            continue
        if line[0] in " \t" and fields:
            label, raw = fields[-1]
            fields[-1] = (label, raw + line)
        elif ":" in line:
            fields.append((line.split(":", 1)[0].strip(), line))
    return [(label, raw if raw.endswith("\n") else raw + "\n") for label, raw in fields]


def _field(text: str | None, label: str) -> str | None:
    for name, raw in _parse_tags(text):
        if name.lower() == label.lower():
            return raw.split(":", 1)[1].strip() or None
    return None


def render_bag_info(
    existing: str | None, owned: Sequence[tuple[str, str]], defaults: Sequence[tuple[str, str]]
) -> str:
    """bag-info.txt: the fields of an existing file kept as they are (the app's service writes
    location metadata there), ours (`owned`) replaced in place, `defaults` added where absent."""
    ours = {label.lower(): f"{label}: {value}\n" for label, value in owned}
    lines: list[str] = []
    seen: set[str] = set()
    for label, raw in _parse_tags(existing):
        key = label.lower()
        if key not in ours:
            lines.append(raw)
        elif key not in seen:  # a repeated field of ours is dropped
            lines.append(ours[key])
        seen.add(key)
    # A new bag gets the app's service's order: what the bag is, then when, how big, by whom.
    for label, value in [*defaults, *owned]:
        if label.lower() not in seen:
            lines.append(f"{label}: {value}\n")
            seen.add(label.lower())
    return "".join(lines)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _read_text(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
