"""Removing what an import leaves behind in the archive: copies it will not commit, and temp files
of copies a crash cut short."""

import contextlib
import os
from collections.abc import Sequence

from sidecar.workers.bytework import TEMP_SUFFIX


def remove_files(paths: Sequence[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def sweep_temp_files(folders: Sequence[str]) -> int:
    """Remove temp files a crash left behind (the copier names them `.<name>.<token>.aus-tmp`)."""
    removed = 0
    for folder in folders:
        try:
            entries = os.scandir(folder)
        except OSError:
            continue
        with entries:  # streamed, never listed: an org folder may hold 100 000 files
            for entry in entries:
                if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed += 1
    return removed
