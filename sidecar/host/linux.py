"""Linux: syncfs for batches of small files, sync_file_range to start writeback early, FICLONE
clones, copy_file_range then sendfile, the mount table from /proc/self/mountinfo, removable
media from sysfs, a parent-death signal for external tools (util-linux's setpriv), and a CPU
priority per thread."""

import contextlib
import ctypes
import functools
import os
import re
import shutil
import sys
import threading
from pathlib import Path

from sidecar.host.generic import BACKGROUND_NICENESS, O_CLOEXEC, O_DIRECTORY, Generic, Mount

if sys.platform != "win32":
    import fcntl

# _IOW(0x94, 9, int): a copy-on-write clone of a whole file (ioctl_ficlone(2),
# https://man7.org/linux/man-pages/man2/ioctl_ficlone.2.html).
FICLONE = 0x40049409
_SYNC_FILE_RANGE_WRITE = 2  # https://man7.org/linux/man-pages/man2/sync_file_range.2.html
_LOWEST_PRIORITY = 19  # the highest niceness


class Linux(Generic):
    name = "linux"
    syncs_filesystem = True
    starts_writeback = True
    kernel_copies = ("copy_file_range", "sendfile")
    sysfs_block = Path("/sys/dev/block")  # major:minor links to each disk's and partition's folder

    def __init__(self) -> None:
        self._libc: ctypes.CDLL | None = None

    def _c(self) -> ctypes.CDLL:
        if self._libc is None:
            self._libc = ctypes.CDLL(None, use_errno=True)
        return self._libc

    def sync_filesystem(self, folder: str) -> bool:
        """syncfs(2) of the filesystem holding `folder` (https://man7.org/linux/man-pages/man2/syncfs.2.html)."""
        try:
            fd = os.open(folder, os.O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        except OSError:
            return False
        try:
            return int(self._c().syncfs(fd)) == 0
        finally:
            os.close(fd)

    def start_writeback(self, fd: int, offset: int, length: int) -> None:
        """sync_file_range(2) WRITE: the disk writes while the next chunk is copied, so the flush
        before the rename waits for the tail only. The fsync/syncfs is still what makes it durable."""
        self._c().sync_file_range(fd, ctypes.c_int64(offset), ctypes.c_int64(length), _SYNC_FILE_RANGE_WRITE)

    def clone(self, src: int, dst: int) -> bool:
        if sys.platform == "linux":  # tells mypy's macOS and Windows checks where ioctl is used
            fcntl.ioctl(dst, FICLONE, src)
            return True
        return False

    def kernel_copy(self, method: str, src: int, dst: int, count: int) -> int:
        if sys.platform == "linux":
            if method == "copy_file_range":
                return os.copy_file_range(src, dst, count)
            if method == "sendfile":
                return os.sendfile(dst, src, None, count)
        return super().kernel_copy(method, src, dst, count)

    def mounts(self) -> list[Mount]:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as table:
            return parse_mountinfo(table.read())

    def _removable(self, mount: Mount | None) -> bool | None:
        """sysfs's `removable` of the mount's disk (a partition asks its parent disk)."""
        if mount is None or mount.device is None or mount.device[0] == 0:
            return None  # no block device: tmpfs, FUSE, network
        block = self.sysfs_block / "{}:{}".format(*mount.device)
        for candidate in (block / "removable", block / ".." / "removable"):
            try:
                return candidate.read_text().strip() == "1"
            except OSError:
                continue
        return None

    def tied_to_parent(self, argv: list[str]) -> list[str]:
        """setpriv sets the parent-death signal (prctl PR_SET_PDEATHSIG) and then runs the tool
        itself: nothing else would stop `exiftool -stay_open` after a SIGKILL of the sidecar."""
        setpriv = _setpriv()
        return argv if setpriv is None else [setpriv, "--pdeathsig", "KILL", "--", *argv]

    def lower_thread_priority(self) -> None:
        """Linux keeps a niceness per thread, and setpriority(PRIO_PROCESS) given a thread id changes
        that thread alone (https://man7.org/linux/man-pages/man2/setpriority.2.html, BUGS): the
        calling thread yields to the import; the sidecar's other threads keep their priority."""
        if sys.platform == "linux":  # tells mypy's Windows check where setpriority is used
            thread = threading.get_native_id()
            with contextlib.suppress(OSError):  # not permitted (a sandbox): stay at this priority
                niceness = os.getpriority(os.PRIO_PROCESS, thread) + BACKGROUND_NICENESS
                os.setpriority(os.PRIO_PROCESS, thread, min(niceness, _LOWEST_PRIORITY))

    def child_env(self, frozen: bool) -> dict[str, str]:
        """Without the frozen bootloader's library path, which would make system binaries load our
        bundled libraries (PyInstaller keeps the original in LD_LIBRARY_PATH_ORIG)."""
        env = dict(os.environ)
        if frozen:
            original = env.pop("LD_LIBRARY_PATH_ORIG", None)
            if original is None:
                env.pop("LD_LIBRARY_PATH", None)
            else:
                env["LD_LIBRARY_PATH"] = original
        return env


@functools.cache
def _setpriv() -> str | None:
    return shutil.which("setpriv")


def parse_mountinfo(text: str) -> list[Mount]:
    """/proc/self/mountinfo (proc(5)): `id parent major:minor root point options ... - type source
    super-options`, longest mount point first."""
    mounts: list[Mount] = []
    for line in text.splitlines():
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        if len(parts) > 5 and rest:
            major, _, minor = parts[2].partition(":")
            device = (int(major), int(minor)) if major.isdigit() and minor.isdigit() else None
            read_only = "ro" in parts[5].split(",")
            mounts.append(Mount(_unescape(parts[4]), rest.split()[0], read_only, device))
    return sorted(mounts, key=lambda m: len(m.point), reverse=True)


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash in mount points as octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)
