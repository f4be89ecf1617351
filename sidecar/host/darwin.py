"""macOS: fsync(2) stops at the drive's cache, F_FULLFSYNC goes through it; F_NOCACHE instead of
posix_fadvise; the mount table from `mount`; the user-data folder in ~/Library."""

import subprocess
import sys
from pathlib import Path

from sidecar.host.generic import APP_DIR_NAME, Generic, Mount

if sys.platform == "darwin":
    import fcntl


class Darwin(Generic):
    name = "darwin"
    fsync_stops_at_drive_cache = True

    def flush(self, fd: int) -> None:
        """F_FULLFSYNC asks the drive to flush its own cache too; plain fsync does not (Apple's
        fsync(2) man page: https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/fsync.2.html).
        A filesystem without it (some network shares) gets fsync."""
        if sys.platform == "darwin":
            try:
                fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
                return
            except OSError:
                pass
        super().flush(fd)

    def drop_cache(self, fd: int) -> bool:
        """macOS has no posix_fadvise; F_NOCACHE turns off caching for this descriptor's reads
        (fcntl(2): https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/fcntl.2.html)."""
        if sys.platform == "darwin":
            try:
                fcntl.fcntl(fd, fcntl.F_NOCACHE, 1)
                return True
            except OSError:
                return False
        return False

    def mounts(self) -> list[Mount]:
        output = subprocess.run(["/sbin/mount"], capture_output=True, text=True, check=False).stdout
        return parse_mount_output(output)

    def lower_thread_priority(self) -> None:
        """Left as it is: macOS's setpriority(PRIO_PROCESS) changes the whole process, the
        import's threads included. Its per-thread knob is a QoS class
        (pthread_set_qos_class_self_np), not used yet."""
        return None

    def user_data_dir(self) -> Path:
        return Path.home() / "Library" / "Application Support" / APP_DIR_NAME


def parse_mount_output(output: str) -> list[Mount]:
    """macOS `mount`: "//user@server/share on /Volumes/share (smbfs, nodev, nosuid, read-only,
    mounted by user)", longest mount point first."""
    mounts: list[Mount] = []
    for line in output.splitlines():
        where, _, kind = line.rpartition(" (")
        point = where.partition(" on ")[2]
        if point and kind:
            options = [o.strip() for o in kind.rstrip(")").split(",")]
            mounts.append(Mount(point, options[0], "read-only" in options))
    return sorted(mounts, key=lambda m: len(m.point), reverse=True)
