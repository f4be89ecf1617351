"""Whether a source sits on a network filesystem (SMB, NFS, AFP, ...), where every read is
expensive and flaky: such files are read once (hashed while copying), fewer at a time, with
transient errors retried (reference/original-app.md §3.3, ADR-046)."""

import os
import stat
from collections.abc import Sequence
from enum import StrEnum

from sidecar import host


class ReadOnce(StrEnum):
    """`--read-once`: whether an import reads each source file once, hashing it while it is staged
    on the archive's filesystem for the copy, or hashes it and reads it again to copy.

    auto (the default) reads once when a source is on another filesystem than the archive: a card,
    a drive, a share, where a second read costs the medium's time and, for a card larger than the
    page cache, really happens. A source on the archive's own filesystem is hashed, then cloned
    (btrfs, xfs: no read at all, no space; not yet on APFS) or copied. always/never force it."""

    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


def network_sources(paths: Sequence[str]) -> bool:
    """True when any of the import's sources is on a network filesystem (the host's mount table)."""
    return host.current().network_sources(paths)


def reads_once(mode: ReadOnce, sources: Sequence[str], archive_root: str) -> bool:
    if mode is not ReadOnce.AUTO:
        return mode is ReadOnce.ALWAYS
    archive = _device(archive_root)
    return any(device not in (None, archive) for device in map(_device, sources))


def _device(path: str) -> int | None:
    try:
        return os.stat(path).st_dev
    except OSError:
        return None  # a missing input is that input's error, not a filesystem


# What a per-file error says of a file not read because its source medium went away; a resume
# reads such files again (run.reopen_unread).
UNREAD = "Not read: the source is gone"


class SourceGuard:
    """Tells a file that cannot be read from a source that is gone: a card pulled from its reader,
    a drive unplugged, a FUSE daemon that died. Each input path's identity is taken when a run
    starts; after a read error, the input holding the file is looked at again: unreadable, or
    another folder now (the bare mount point left behind), means the medium is gone and the import
    must stop resumably rather than fail every file left as if each were bad."""

    def __init__(self, roots: Sequence[str] = ()) -> None:
        # Longest first, so a file is matched to the innermost input holding it.
        self._roots = sorted((os.path.abspath(r) for r in roots), key=len, reverse=True)
        self._identity: dict[str, tuple[int, int] | None] = {}
        self.lost: str | None = None  # the first input found gone, with why

    def capture(self) -> None:
        """At the start of a run, on a thread. An input that is a file is no medium: it vanishing
        is that file's own error."""
        for root in self._roots:
            try:
                info = os.stat(root)
            except OSError:
                self._identity[root] = None  # unreadable already (the card still out at a resume)
                continue
            if stat.S_ISDIR(info.st_mode):
                self._identity[root] = (info.st_dev, info.st_ino)

    def gone(self, path: str) -> str | None:
        """After `path` failed to read, on a thread: "<input> (<why>)" when its input is gone."""
        holding = (r for r in self._roots if path.startswith(r.rstrip(os.sep) + os.sep))
        root = next(holding, None)
        if root is None or root not in self._identity:
            return None
        try:
            info = os.stat(root)
        except OSError as exc:
            why = exc.strerror or str(exc)
        else:
            before = self._identity.get(root)
            if before is None or before == (info.st_dev, info.st_ino):
                return None
            why = "another folder is there now"
        reason = f"{root} ({why})"
        if self.lost is None:
            self.lost = reason
        return reason
