"""inotify, the few calls tests need to act at a moment the sidecar reaches (Linux): a kill as a
file is written, a folder removed as the scan opens another."""

import asyncio
import ctypes
import os
import struct
from collections.abc import Callable
from pathlib import Path

IN_MODIFY = 0x002
IN_OPEN = 0x020
IN_DELETE = 0x200
IN_ISDIR = 0x40000000
_EVENT = struct.Struct("iIII")


class Inotify:
    """Watches folders and calls `on_event(folder, name, mask)` for each event, from the loop."""

    def __init__(self, on_event: Callable[[Path, str, int], None]) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd: int = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        self._folders: dict[int, Path] = {}
        self._on_event = on_event
        asyncio.get_running_loop().add_reader(self.fd, self._read)

    def watch(self, folder: Path, mask: int) -> None:
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(folder), mask)
        assert wd >= 0, f"inotify_add_watch {folder}: {os.strerror(ctypes.get_errno())}"
        self._folders[wd] = folder

    def _read(self) -> None:
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return
        offset = 0
        while offset < len(data):
            wd, mask, _, length = _EVENT.unpack_from(data, offset)
            start = offset + _EVENT.size
            name = data[start : start + length].rstrip(b"\0").decode(errors="replace")
            offset = start + length
            folder = self._folders.get(wd)
            if folder is not None:
                self._on_event(folder, name, mask)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.fd)
        os.close(self.fd)
