"""Windows: os.fsync is FlushFileBuffers, a folder cannot be opened to flush (NTFS journals the
rename itself), the page cache cannot be dropped per file, drives say themselves whether they
are remote or removable (GetDriveTypeW), and the user-data folder is %APPDATA%."""

import ctypes
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from sidecar.host import names
from sidecar.host.generic import APP_DIR_NAME, Generic, Medium

# GetDriveTypeW: https://learn.microsoft.com/windows/win32/api/fileapi/nf-fileapi-getdrivetypew
_DRIVE_REMOVABLE, _DRIVE_REMOTE, _DRIVE_CDROM = 2, 4, 5
# GetVolumeInformationW's flags: https://learn.microsoft.com/windows/win32/api/fileapi/nf-fileapi-getvolumeinformationw
_FILE_READ_ONLY_VOLUME = 0x00080000


class Windows(Generic):
    name = "win32"
    # Without the \\?\ prefix, and unless the machine enables long paths (off by default):
    # https://learn.microsoft.com/windows/win32/fileio/maximum-file-path-limitation
    max_path = names.MAX_PATH

    def path_limit(self, path: str) -> int | None:
        """An extended-length path (`\\\\?\\`) has no MAX_PATH limit."""
        return None if path.startswith(("\\\\?\\", "//?/")) else self.max_path

    def flush_folder(self, folder: str | Path) -> None:
        return None

    def drop_cache(self, fd: int) -> bool:
        return False

    def medium(self, path: str) -> Medium:
        if _is_unc(path):
            return Medium(fstype=None, network=True, removable=False, read_only=False)
        root = os.path.splitdrive(os.path.abspath(path))[0] + "\\"
        kind = _drive_type(root)
        return Medium(
            fstype=None,
            network=kind == _DRIVE_REMOTE,
            removable=None if kind is None else kind in (_DRIVE_REMOVABLE, _DRIVE_CDROM),
            read_only=_volume_read_only(root),
        )

    def network_sources(self, paths: Sequence[str]) -> bool:
        return any(self.medium(p).network for p in paths)

    def at_background_priority(self, argv: list[str]) -> list[str]:
        """Windows has no `nice`: tools run at the sidecar's priority. BELOW_NORMAL_PRIORITY_CLASS
        in CreateProcess's flags would lower them; not done yet."""
        return argv

    def lower_thread_priority(self) -> None:
        """Left as it is: SetThreadPriority(GetCurrentThread(), THREAD_PRIORITY_BELOW_NORMAL) would
        lower the thread; not done yet, as nothing here could test it."""
        return None

    def lower_worker_priority(self) -> None:
        """Left as it is: Windows' nearest step, BELOW_NORMAL_PRIORITY_CLASS, is larger than
        BYTE_WORKER_NICENESS; not done yet, as nothing here could measure it."""
        return None

    def user_data_dir(self) -> Path:
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
        return base / APP_DIR_NAME


def _is_unc(path: str) -> bool:
    """A share: `//server/share` or its extended-length form `//?/UNC/server/share` (either slash);
    not an extended local path (`//?/C:/`) nor a device (`//./`): the path formats of
    https://learn.microsoft.com/dotnet/standard/io/file-path-formats"""
    if path[:8].upper() in ("\\\\?\\UNC\\", "//?/UNC/"):
        return True
    return path.startswith(("\\\\", "//")) and path[2:4] not in ("?\\", ".\\", "?/", "./")


def _drive_type(root: str) -> int | None:
    if sys.platform == "win32":
        return int(ctypes.windll.kernel32.GetDriveTypeW(ctypes.c_wchar_p(root)))
    return None


def _volume_read_only(root: str) -> bool:
    if sys.platform == "win32":
        flags = ctypes.c_uint32(0)
        ok = ctypes.windll.kernel32.GetVolumeInformationW(
            ctypes.c_wchar_p(root), None, 0, None, None, ctypes.byref(flags), None, 0
        )
        return bool(ok) and bool(flags.value & _FILE_READ_ONLY_VOLUME)
    return False
