"""The generic-POSIX host: only what POSIX itself promises (fsync, posix_fadvise, statvfs, read and
write). It is the base the Linux, macOS and Windows hosts override where their OS offers more or
differs, and, forced with AUS_PLATFORM=generic, the test mode that proves the sidecar is correct
without any of those extras. It knows nothing of imports, jobs or the archive.
"""

import contextlib
import functools
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

O_BINARY: int = getattr(os, "O_BINARY", 0)
O_CLOEXEC: int = getattr(os, "O_CLOEXEC", 0)
O_DIRECTORY: int = getattr(os, "O_DIRECTORY", 0)

APP_DIR_NAME = "au-archive-sidecar"
# Added to the niceness (0 normal … 19 lowest) of the jobs' tools and CPU threads, so the kernel
# gives the cores to an import first. Their I/O priority follows it where the I/O scheduler has
# priorities (Linux: best effort, level (nice + 20) / 5, unless set apart with ioprio_set(2)).
BACKGROUND_NICENESS = 10
# Added to the niceness of the byte workers (hash, copy, validate): a little below the sidecar's own
# process, so while an import keeps both cores busy its event loop still answers a status call and
# sends progress at once, and far above the jobs. SMALL's status p99 went from 23–34 ms to 18–26 ms,
# its import no slower; a 90 MB/s card's import half a per cent slower (bench/README.md, "Figures
# behind the import's tuning").
BYTE_WORKER_NICENESS = 3

# Remote filesystems by the type names Linux's mount table and macOS's `mount` give them.
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "afpfs",
        "webdav",
        "davfs",
        "9p",
        "ceph",
        "glusterfs",
        "fuse.sshfs",
    }
)


@dataclass(frozen=True, slots=True)
class Mount:
    point: str
    fstype: str
    read_only: bool = False
    device: tuple[int, int] | None = None  # (major, minor) where the mount table says


@dataclass(frozen=True, slots=True)
class Medium:
    """What holds a path. None: this host cannot tell."""

    fstype: str | None
    network: bool
    removable: bool | None
    read_only: bool


class Generic:
    """Plain POSIX. Each capability is one method; a subclass overrides only what differs."""

    name = "generic"
    # One syncfs(2) of the filesystem flushes many small files ≈4x cheaper than an fsync each.
    syncs_filesystem = False
    # fsync(2) stops at the drive's volatile cache (macOS): a batch needs one full flush per device.
    fsync_stops_at_drive_cache = False
    # sync_file_range(2): start writing a chunk back while the next one is copied.
    starts_writeback = False
    # Kernel-side copies to try in order before read/write (each may refuse a pair of files).
    kernel_copies: tuple[str, ...] = ()
    # The longest full path the OS opens (None: no limit the sidecar could reach); see path_limit.
    max_path: int | None = None

    # -- durability ---------------------------------------------------------------------------------

    def flush(self, fd: int) -> None:
        """Put a file's data (or a folder's entries) on the medium."""
        os.fsync(fd)

    def flush_folder(self, folder: str | Path) -> None:
        """Make the renames and creations in a folder durable."""
        fd = os.open(folder, os.O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        try:
            self.flush(fd)
        finally:
            os.close(fd)

    def sync_filesystem(self, folder: str) -> bool:
        """Flush the whole filesystem holding `folder`; False when it reports an error. Only called
        where `syncs_filesystem`."""
        raise NotImplementedError(f"{self.name} has no filesystem-wide flush")

    def start_writeback(self, fd: int, offset: int, length: int) -> None:
        """Advice only: start writing these bytes to the medium now. Only called where
        `starts_writeback`."""
        raise NotImplementedError(f"{self.name} cannot start writeback early")

    def drop_cache(self, fd: int) -> bool:
        """Make the next reads of a flushed file come from the medium; False where impossible.
        posix_fadvise is POSIX (IEEE 1003.1, ADV option): https://pubs.opengroup.org/onlinepubs/9799919799/functions/posix_fadvise.html"""
        if sys.platform != "win32" and sys.platform != "darwin" and hasattr(os, "posix_fadvise"):
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                return True
            except OSError:
                return False
        return False

    def read_ahead(self, fd: int, length: int) -> None:
        """Advice only: start reading the first `length` bytes of a file into the cache now, so the
        medium works on several files at once while an earlier one is read (posix_fadvise
        WILLNEED). Where the OS has no such advice, nothing happens and reads come as asked."""
        if sys.platform != "win32" and sys.platform != "darwin" and hasattr(os, "posix_fadvise"):
            with contextlib.suppress(OSError):
                os.posix_fadvise(fd, 0, length, os.POSIX_FADV_WILLNEED)

    # -- copying ------------------------------------------------------------------------------------

    def clone(self, src: int, dst: int) -> bool:
        """A copy-on-write clone of `src` into the empty `dst`; False when this filesystem (or pair)
        cannot. Raises OSError for a real failure (disk full, I/O error)."""
        return False

    def kernel_copy(self, method: str, src: int, dst: int, count: int) -> int:
        """Copy up to `count` bytes by one of `kernel_copies`; returns the bytes copied (0: end)."""
        raise NotImplementedError(f"{self.name} has no {method}")

    def path_limit(self, path: str) -> int | None:
        """The longest full path this OS opens under `path` (None: no limit the sidecar reaches)."""
        return self.max_path

    # -- mounts and media ---------------------------------------------------------------------------

    def mounts(self) -> list[Mount]:
        """Every mount, longest mount point first. POSIX has no mount table (getmntent is glibc's,
        getmntinfo the BSDs'), so the generic host knows none."""
        return []

    def medium(self, path: str) -> Medium:
        """What holds `path`: its filesystem type, whether it is remote, removable, read-only."""
        real = os.path.realpath(path)
        mount = _holding(self.mounts(), real)
        return Medium(
            fstype=mount.fstype if mount else None,
            network=bool(mount and mount.fstype in NETWORK_FILESYSTEMS),
            removable=self._removable(mount),
            read_only=(mount.read_only if mount else False) or _statvfs_read_only(real),
        )

    def _removable(self, mount: Mount | None) -> bool | None:
        return None

    def network_sources(self, paths: Sequence[str]) -> bool:
        """True when any of these paths is on a network filesystem."""
        mounts = self.mounts()
        for path in paths:
            mount = _holding(mounts, os.path.realpath(path))
            if mount is not None and mount.fstype in NETWORK_FILESYSTEMS:
                return True
        return False

    # -- child processes and the user's folders -----------------------------------------------------

    def tied_to_parent(self, argv: list[str]) -> list[str]:
        """The command, made to die with the sidecar even when it is killed outright. Without an
        OS way, tools stay in the sidecar's process group, which the bridge kills after a crash."""
        return argv

    def at_background_priority(self, argv: list[str]) -> list[str]:
        """The command, made to run at background CPU priority (BACKGROUND_NICENESS lower than the
        sidecar) by POSIX's `nice` utility: set before the tool itself starts, so every thread it
        starts has it too. Without `nice` on PATH the tool runs at the sidecar's priority."""
        nice = _nice()
        return argv if nice is None else [nice, "-n", str(BACKGROUND_NICENESS), *argv]

    def lower_thread_priority(self) -> None:
        """Lower the calling thread's CPU priority by BACKGROUND_NICENESS; never raises (a pool
        thread's initializer that raises breaks the pool). Plain POSIX has no priority per thread:
        setpriority(PRIO_PROCESS) there changes the whole process, the import's threads included,
        so the thread is left as it is."""
        return None

    def lower_worker_priority(self) -> None:
        """Lower a byte worker's CPU priority by BYTE_WORKER_NICENESS, first thing in the worker, a
        process of its own. POSIX `nice()` lowers the whole process; Linux's lowers the calling
        thread alone, here the worker's one working thread, and the threads it starts later. Never
        raises (a pool initializer that raises breaks the pool)."""
        if sys.platform != "win32":  # tells mypy's Windows check where nice is used
            with contextlib.suppress(OSError):  # not permitted (a sandbox): stay at this priority
                os.nice(BYTE_WORKER_NICENESS)

    def child_env(self, frozen: bool) -> dict[str, str]:
        """The environment for external tools."""
        return dict(os.environ)

    def user_data_dir(self) -> Path:
        """The per-user application-data folder, as Electron's `app.getPath('appData')` (XDG)."""
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        return base / APP_DIR_NAME


@functools.cache
def _nice() -> str | None:
    return shutil.which("nice")


def _holding(mounts: Sequence[Mount], real: str) -> Mount | None:
    """The innermost mount holding `real` (mounts are longest first)."""
    for mount in mounts:
        if real == mount.point or real.startswith(mount.point.rstrip("/") + "/"):
            return mount
    return None


def _statvfs_read_only(path: str) -> bool:
    if sys.platform == "win32":
        return False
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False
