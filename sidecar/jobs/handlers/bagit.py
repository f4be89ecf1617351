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
import contextlib
import hashlib
import os
import re
import secrets
import stat
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sidecar import __version__
from sidecar.db.locations import Location, find_location
from sidecar.jobs.handlers import JobContext
from sidecar.pipeline.layout import contained, location_folder, media_folder
from sidecar.pipeline.media import MediaType
from sidecar.timestamps import now_iso

if sys.platform != "win32":
    import fcntl

BAG_FOLDER = "_archive"
BAGIT_TXT = "bagit.txt"
BAG_INFO = "bag-info.txt"
MANIFEST = "manifest-sha256.txt"
TAGMANIFEST = "tagmanifest-sha256.txt"
BAGIT_DECLARATION = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
# The copier's temp-file suffix: one name for every half-written file in the archive.
TEMP_SUFFIX = ".aus-tmp"
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
_F_FULLFSYNC: int | None = getattr(fcntl, "F_FULLFSYNC", None) if sys.platform == "darwin" else None

_ROW_PATHS_SQL = (
    "SELECT imgloc FROM imgs WHERE locid = ?"
    " UNION ALL SELECT vidloc FROM vids WHERE locid = ?"
    " UNION ALL SELECT docloc FROM docs WHERE locid = ?"
    " UNION ALL SELECT maploc FROM maps WHERE locid = ?"
)
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


class BagItJobError(Exception):
    """The bag job cannot run for this location; another try cannot help."""

    retryable = False


class Stopped(Exception):
    """The job was stopped (timeout or shutdown) while hashing."""


@dataclass(frozen=True, slots=True)
class BagRequest:
    location_folder: Path
    bag_folder: Path
    row_paths: Sequence[str]
    sidecar_paths: Sequence[str]
    info: Sequence[tuple[str, str]]  # bag-info.txt fields a new bag gets (kept from an existing one)
    today: str  # Bagging-Date, YYYY-MM-DD


@dataclass(slots=True)
class BagReport:
    status: BagStatus
    files: int = 0
    bytes: int = 0
    added: int = 0  # files hashed by this run
    removed: int = 0  # manifest entries dropped: the database no longer accounts for their files
    written: list[str] = field(default_factory=list)  # tag files this run replaced
    missing: list[str] = field(default_factory=list)  # location-relative paths
    outside: list[str] = field(default_factory=list)  # as the database holds them

    @property
    def error(self) -> str | None:
        problems = []
        if self.missing:
            problems.append(
                f"{len(self.missing)} archived file(s) missing: {_names(self.missing)};"
                " the bag was left as it was"
            )
        if self.outside:
            problems.append(
                f"{len(self.outside)} file(s) of the location lie outside its folder, so the bag"
                f" cannot list them: {_names(self.outside)}"
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
        report = await asyncio.to_thread(update_bag, request, stop, progress)
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
    args = (location.locid,) * 4
    row_paths = [row[0] for row in await job.db.fetch_all(_ROW_PATHS_SQL, args) if row[0]]
    sidecars = [row[0] for row in await job.db.fetch_all(_SIDECAR_PATHS_SQL, (location.locid,))]
    info = [
        ("Source-Organization", "Abandoned Archive"),
        ("External-Identifier", location.loc12),
        ("External-Description", _one_line(location.locnam)),
        ("Internal-Sender-Identifier", location.locid),
        ("Bag-Count", "1 of 1"),
    ]
    today = datetime.now(UTC).date().isoformat()
    return BagRequest(folder, bag, row_paths, sidecars, info, today)


async def _set_status(job: JobContext, locid: str, status: BagStatus, error: str | None) -> None:
    async with job.db.transaction() as conn:
        await conn.execute(_SET_STATUS_SQL, (status.value, now_iso(), error, locid))


# -- the bag on disk (runs in a thread) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Payload:
    real: str  # resolved path
    entry: str  # the manifest's path, relative to _archive/
    shown: str  # relative to the location folder, for messages
    size: int


def update_bag(
    request: BagRequest,
    stop: threading.Event | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> BagReport:
    """Bring the bag up to date (blocking: file reads, hashing and writes). Returns what it found."""
    stop = stop or threading.Event()
    bag = request.bag_folder
    _sweep_temps(bag)
    payload, missing, outside = _payload(request)
    if missing:
        return BagReport(BagStatus.INVALID, missing=missing, outside=outside)

    old_manifest = _read_text(bag / MANIFEST)
    known = parse_manifest(old_manifest or "")
    digests = {p.entry: known[p.entry] for p in payload if p.entry in known}
    sizes = {p.entry: p.size for p in payload}
    to_hash = [p for p in payload if p.entry not in known]
    total = sum(p.size for p in to_hash)
    done = 0
    last_report = time.monotonic()
    for item in to_hash:
        try:
            digests[item.entry], sizes[item.entry] = sha256_file(item.real, stop)
        except FileNotFoundError:
            missing.append(item.shown)  # deleted while we ran
            continue
        done += item.size
        if progress is not None and time.monotonic() - last_report >= PROGRESS_INTERVAL_S:
            last_report = time.monotonic()
            progress(min(99.0, 100.0 * done / max(total, 1)), f"hashed {done} of {total} bytes")
    if missing:
        return BagReport(BagStatus.INVALID, missing=missing, outside=outside)

    manifest = render_manifest(digests)
    old_info = _read_text(bag / BAG_INFO)
    # Bagging-Date is when the payload last changed: kept while the manifest stays the same.
    kept_date = _field(old_info, "Bagging-Date") if old_manifest == manifest else None
    oxum_bytes = sum(sizes.values())
    owned = [
        ("Bagging-Date", kept_date or request.today),
        ("Payload-Oxum", f"{oxum_bytes}.{len(sizes)}"),
        ("Bag-Software-Agent", f"au-archive import sidecar {__version__}"),
    ]
    bag_info = render_bag_info(old_info, owned, request.info)
    contents = {MANIFEST: manifest, BAGIT_TXT: BAGIT_DECLARATION, BAG_INFO: bag_info}
    contents[TAGMANIFEST] = render_manifest(
        {name: hashlib.sha256(text.encode()).hexdigest() for name, text in contents.items()}
    )

    written: list[str] = []
    for name in (MANIFEST, BAGIT_TXT, BAG_INFO, TAGMANIFEST):  # the tagmanifest last
        if _read_text(bag / name) != contents[name]:
            if not written:
                bag.mkdir(parents=True, exist_ok=True)
            replace_file(bag, name, contents[name].encode())
            written.append(name)
    return BagReport(
        BagStatus.INCOMPLETE if outside else BagStatus.VALID,
        files=len(sizes),
        bytes=oxum_bytes,
        added=len(to_hash),
        removed=len(known.keys() - digests.keys()),
        written=written,
        outside=outside,
    )


def _payload(request: BagRequest) -> tuple[list[_Payload], list[str], list[str]]:
    """The files the bag must list (present ones, sorted), the missing ones (location-relative)
    and the database's paths that lie outside the location's `org-*` folders."""
    folder = os.path.realpath(request.location_folder)
    bag = os.path.realpath(request.bag_folder)
    places: dict[str, tuple[str, str, str]] = {}  # entry -> (real, folder name, file name)
    outside: list[str] = []

    def place(path: str) -> tuple[str, str, str, str] | None:
        real = os.path.realpath(path)
        try:
            parts = os.path.relpath(real, folder).split(os.sep)
        except ValueError:  # another drive (Windows)
            parts = []
        if len(parts) != 2 or not _ORG_FOLDER.fullmatch(parts[0]) or parts[1].startswith("."):
            outside.append(path)
            return None
        return os.path.relpath(real, bag).replace(os.sep, "/"), real, parts[0], parts[1]

    stems: set[tuple[str, str]] = set()
    for path in request.row_paths:
        if (placed := place(path)) is not None:
            entry, real, org, name = placed
            places[entry] = (real, org, name)
            stems.add((org, os.path.splitext(name)[0]))
    for path in request.sidecar_paths:
        if (placed := place(path)) is not None:
            entry, real, org, name = placed
            # A sidecar beside its parent belongs to the bag while the parent's row does.
            if org.startswith("org-misc-") or (org, os.path.splitext(name)[0]) in stems:
                places[entry] = (real, org, name)
    payload: list[_Payload] = []
    missing: list[str] = []
    for entry, (real, org, name) in sorted(places.items()):
        try:
            payload.append(_Payload(real, entry, f"{org}/{name}", _regular_size(real)))
        except FileNotFoundError:
            missing.append(f"{org}/{name}")
    return payload, sorted(missing), outside


def sha256_file(path: str, stop: threading.Event) -> tuple[str, int]:
    """SHA-256 of a regular file in chunks; (hex digest, bytes read). Raises Stopped when asked to."""
    digest = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_RDONLY | _O_CLOEXEC | _O_BINARY | _O_NONBLOCK)
    with open(fd, "rb", buffering=0) as reader:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileNotFoundError(f"not a regular file: {path}")
        if _O_NONBLOCK:
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


def render_manifest(digests: dict[str, str]) -> str:
    return "".join(f"{digests[path]}  {_encode_path(path)}\n" for path in sorted(digests))


def parse_manifest(text: str) -> dict[str, str]:
    """path → lower-case SHA-256 of a manifest's well-formed lines (anything else is ignored, so
    its file is simply hashed again)."""
    entries: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and _SHA256.fullmatch(parts[0]):
            entries[_decode_path(parts[1].lstrip("*"))] = parts[0].lower()
    return entries


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


def _names(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:ERROR_NAMES_MAX])
    return shown + (f" and {len(paths) - ERROR_NAMES_MAX} more" if len(paths) > ERROR_NAMES_MAX else "")


def _read_text(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


# -- durable writes -------------------------------------------------------------------------------


def replace_file(folder: Path, name: str, data: bytes) -> None:
    """Write `folder/name` atomically: a temp file beside it, flushed, renamed, the folder flushed."""
    temp = folder / f".{name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_BINARY, 0o666)
    try:
        with open(fd, "wb", buffering=0) as out:
            view = memoryview(data)
            while view:
                view = view[out.write(view) or 0 :]
            _flush(out.fileno())
        os.replace(temp, folder / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _flush_folder(folder)


def _flush(fd: int) -> None:
    if _F_FULLFSYNC is not None:  # macOS: fsync alone leaves the data in the drive's cache
        try:
            fcntl.fcntl(fd, _F_FULLFSYNC)
            return
        except OSError:
            pass
    os.fsync(fd)


def _flush_folder(folder: Path) -> None:
    if sys.platform == "win32":
        return  # a folder cannot be opened for flushing there; NTFS journals the rename
    fd = os.open(folder, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    try:
        _flush(fd)
    finally:
        os.close(fd)


def _sweep_temps(folder: Path) -> None:
    """Remove temp files a killed run left (one job per location at a time: none is in use)."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
