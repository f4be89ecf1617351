"""Where a file goes in the archive: the app's folder layout, made safe against hostile location values
and held to Windows' naming rules on every OS (sidecar/host/names.py: the archive drive may move to
a PC).

Pure path arithmetic (only `contained` reads the filesystem, to resolve links); it never creates,
copies or removes anything.
"""

import os
import re
from pathlib import Path

from sidecar import host
from sidecar.archive.media import FOLDER_KIND, MediaType
from sidecar.db.locations import Location
from sidecar.host import names

_LOC12 = re.compile(r"[A-Za-z0-9]{1,32}")
_STATE = re.compile(r"[A-Za-z]{2}")
_HASH = re.compile(r"[0-9a-f]{16}")
_EXTENSION = re.compile(r"(\.[a-z0-9]{1,16})?")
# Every character outside [a-z0-9-] becomes a dash and dash runs collapse: together, any run of
# characters outside [a-z0-9] (dashes included) becomes one dash.
_NOT_NAME = re.compile(r"[^a-z0-9]+")
_NAME_MAX = 50
# The longest name the sidecar writes in a media folder: a temp file of a content name with the
# longest extension, `.<16 hex><.16 chars>.<8 hex>.aus-tmp`.
LONGEST_FILE_NAME = 1 + 16 + 17 + 1 + 8 + 8


class UnsafeLocation(ValueError):
    """A location value cannot form a safe archive folder, or a path escapes the archive."""


def _portable(name: str) -> str:
    try:
        return names.portable(name)
    except names.UnportableName as exc:
        raise UnsafeLocation(str(exc)) from None


def sanitize_name(value: str | None, fallback: str) -> str:
    """The legacy importer's and BagIt's folder-name rule, so all three agree on a location's folder."""
    name = _NOT_NAME.sub("-", (value or "").lower()).strip("-")[:_NAME_MAX].rstrip("-")
    return name or fallback


def state_code(address_state: str | None) -> str:
    return address_state.upper() if address_state and _STATE.fullmatch(address_state) else "XX"


def location_folder(archive_root: Path, location: Location) -> Path:
    """`<root>/locations/<STATE>-<type>/<slocnam>-<LOC12>`; raises UnsafeLocation for a bad loc12,
    or where the host limits paths (Windows) for a folder too deep to hold the archive's files."""
    loc12 = _checked_loc12(location.loc12)
    kind = sanitize_name(location.type, "unknown")
    # The app's short name of locnam, when the location has no short name of its own.
    short = sanitize_name(location.slocnam, sanitize_name(location.locnam, "location"))
    group = _portable(f"{state_code(location.address_state)}-{kind}")
    folder = archive_root / "locations" / group / _portable(f"{short}-{loc12}")
    limit = host.current().path_limit(str(archive_root))
    deepest = len(str(folder)) + len(f"/org-misc-{loc12}/") + LONGEST_FILE_NAME
    if limit is not None and deepest > limit:
        raise UnsafeLocation(
            f"archive paths under {str(folder)!r} would be up to {deepest} characters, more than "
            f"{host.current().name} allows ({limit}): choose a shorter archive folder"
        )
    return folder


def media_folder(location_folder: Path, media_type: MediaType, loc12: str) -> Path:
    """`org-{img,vid,doc,map,misc}-<LOC12>` inside the location folder."""
    return location_folder / _portable(f"org-{FOLDER_KIND[media_type]}-{_checked_loc12(loc12)}")


def archive_name(hash16: str, extension: str) -> str:
    """`<hash><ext lower-cased>`, the content-addressed file name."""
    if not _HASH.fullmatch(hash16):
        raise UnsafeLocation(f"not a 16-hex-digit hash: {hash16!r}")
    # isascii first: str.lower() maps some non-ASCII letters (the Kelvin sign) onto ASCII ones.
    if not (extension.isascii() and _EXTENSION.fullmatch(extension.lower())):
        raise UnsafeLocation(f"unsafe file extension: {extension!r}")
    return _portable(hash16 + extension.lower())


def contained(archive_root: Path, path: Path) -> Path:
    """Return `path` if it resolves strictly inside the archive root (following links), else raise."""
    root = Path(os.path.realpath(archive_root))
    resolved = Path(os.path.realpath(path))
    if resolved == root or not resolved.is_relative_to(root):
        raise UnsafeLocation(f"path escapes the archive {str(root)!r}: {str(path)!r}")
    return path


def _checked_loc12(loc12: str) -> str:
    # Kept verbatim (case too) as the app does, so it must already be a safe single segment.
    if not _LOC12.fullmatch(loc12):
        raise UnsafeLocation(f"loc12 must be 1-32 ASCII letters or digits: {loc12!r}")
    return loc12
