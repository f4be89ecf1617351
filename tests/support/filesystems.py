"""Real filesystems for tests and benchmarks: an image file of its own, attached to a loop device
and mounted (ext4, btrfs, xfs with reflink, exFAT through FUSE as cards are formatted).

How, and what works on these machines, is `../shared/reference/test-filesystems.md`: only the loop
device attached here is ever detached (never `losetup -D`), and whatever was mounted is unmounted
and detached even when the code inside the `with` fails. Where mounting is impossible (not root,
no loop devices) `mount_unavailable()` says why, so a test can skip with that reason.
"""

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Per filesystem: how to make one on an image file, and the smallest image it accepts (Debian 12's
# mkfs.xfs 6.1: "Filesystem must be larger than 300MB"; mkfs.btrfs: "minimum size for each btrfs
# device is 114294784"). Images are sparse: only what is written takes space.
MKFS: dict[str, list[str]] = {
    "ext4": ["mkfs.ext4", "-q", "-F"],
    "btrfs": ["mkfs.btrfs", "-q", "-f"],
    "xfs": ["mkfs.xfs", "-q", "-f", "-m", "reflink=1"],
    "exfat": ["mkfs.exfat", "-L", "CARD"],
}
MIN_SIZE_MB = {"ext4": 16, "btrfs": 128, "xfs": 320, "exfat": 16}
# The Debian package that brings each mkfs (scripts/setup installs them).
PACKAGES = {"ext4": "e2fsprogs", "btrfs": "btrfs-progs", "xfs": "xfsprogs", "exfat": "exfatprogs"}


class MountUnavailable(Exception):
    """This machine cannot attach and mount a loop device here (not root, no loop devices)."""


def mount_unavailable() -> str | None:
    """Why loop mounts are impossible here, or None when they work."""
    if os.geteuid() != 0:
        return "mounting a loop device needs root"
    if not Path("/dev/loop-control").exists():
        return "no loop devices (/dev/loop-control is missing)"
    if shutil.which("losetup") is None or shutil.which("mount") is None:
        return "losetup or mount is not installed"
    return None


def _run(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr)
    return done.stdout


def _tool(name: str, fstype: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        raise FileNotFoundError(
            f"{name} not found: install {PACKAGES.get(fstype, name)} (scripts/setup does)"
        )
    return path


@dataclass(frozen=True)
class Mounted:
    """A filesystem of its own, mounted at `path` from loop device `device` over `image`."""

    fstype: str
    path: Path
    device: str
    image: Path

    def sectors_read(self) -> int:
        """Sectors (512 bytes) read from the device so far: field 3 of /sys/block/loopN/stat."""
        stat = Path("/sys/block", Path(self.device).name, "stat").read_text().split()
        return int(stat[2])

    def bytes_read(self) -> int:
        return self.sectors_read() * 512


@contextlib.contextmanager
def loop_filesystem(
    fstype: str, where: Path, size_mb: int = 0, name: str | None = None, readahead_kb: int | None = None
) -> Iterator[Mounted]:
    """Make an image in `where`, put a new `fstype` on it, attach it to a loop device and mount it
    at `where/<name>`; yields the mount. Unmounts, detaches and removes the image at the end.
    `readahead_kb` sets the device's readahead before the mount: a FUSE filesystem's daemon (exfat-fuse)
    keeps what the device had when it opened it."""
    reason = mount_unavailable()
    if reason is not None:
        raise MountUnavailable(reason)
    name = name or fstype
    size_mb = max(size_mb, MIN_SIZE_MB[fstype])
    image = where / f"{name}.img"
    mountpoint = where / name
    mountpoint.mkdir(parents=True)
    with open(image, "wb") as out:
        out.truncate(size_mb << 20)
    mkfs = MKFS[fstype]
    device: str | None = None
    mounted = False
    try:
        _run(_tool(mkfs[0], fstype), *mkfs[1:], str(image))
        # --find --show attaches this image alone and says which device it took.
        device = _run("losetup", "--find", "--show", str(image)).strip()
        if readahead_kb is not None:
            Path("/sys/block", Path(device).name, "queue", "read_ahead_kb").write_text(f"{readahead_kb}\n")
        if fstype == "exfat":
            # exfat-fuse refuses a plain file ("Block device required"): give it the loop device.
            _run(_tool("mount.exfat-fuse", fstype), device, str(mountpoint))
        else:
            _run("mount", "-t", fstype, device, str(mountpoint))
        mounted = True
        yield Mounted(fstype, mountpoint, device, image)
    finally:
        try:
            if mounted:
                unmount(mountpoint)
        finally:
            if device is not None:
                detach(device)
            image.unlink(missing_ok=True)


def unmount(mountpoint: Path) -> None:
    """Unmount, waiting for the filesystem to be released; lazily as a last resort, so a process
    that still holds a file (a failed test's sidecar) cannot leave the mount behind."""
    try:
        _run("umount", str(mountpoint))
    except subprocess.CalledProcessError:
        _run("umount", "--lazy", str(mountpoint))


def detach(device: str) -> None:
    """Detach the loop device this code attached (and no other)."""
    with contextlib.suppress(subprocess.CalledProcessError):
        _run("losetup", "--detach", device)


def is_mounted(path: Path) -> bool:
    return any(
        line.split()[1] == str(path) for line in Path("/proc/self/mounts").read_text().splitlines() if line
    )


def drop_page_cache() -> None:
    """Write back, then drop the clean page cache (root): the next read comes from the medium."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("1\n")


def page_cached(fd: int, offset: int) -> bool:
    """Whether the page of `fd` at `offset` is in the page cache: preadv(RWF_NOWAIT) reads only
    what is cached and fails with EAGAIN for the rest (Linux 4.14+; check RWF_NOWAIT first)."""
    page = bytearray(4096)
    try:
        return os.preadv(fd, [page], offset, os.RWF_NOWAIT) > 0
    except BlockingIOError:
        return False


def cached_within(fd: int, offset: int, seconds: float) -> bool:
    """Whether that page is cached, or comes into the cache within `seconds` (read-ahead advice
    starts reads the kernel finishes on its own)."""
    deadline = time.monotonic() + seconds
    while not page_cached(fd, offset):
        if time.monotonic() > deadline:
            return False
    return True


def shared_bytes(path: Path) -> int:
    """Bytes of `path` in extents the filesystem marks shared (FIEMAP's FIEMAP_EXTENT_SHARED, as
    `filefrag -v` prints it; linux Documentation/filesystems/fiemap.rst): a copy-on-write clone
    shares all of its extents with its source."""
    out = _run(_tool("filefrag", "ext4"), "-v", "-b1", str(path))
    shared = 0
    for line in out.splitlines():
        # " ext: logical_offset: physical_offset: length: expected: flags:", in bytes with -b1:
        # "   0:        0.. 3145727:   13631488..  16777215: 3145728:             last,shared,eof"
        fields = [f.strip() for f in line.split(":")]
        if len(fields) >= 5 and fields[0].isdigit() and "shared" in fields[-1].split(","):
            shared += int(fields[3])
    return shared
