"""Durable files, one way for every writer of the archive: one temp naming scheme, flushes that
reach the medium (macOS's full flush included), atomic writes, and the sweep of temp files a
crash left behind.

A temp file is `.<final name>.<random>.aus-tmp` beside its final name: hidden (scans skip it),
on the same filesystem (the rename is atomic), and recognisable by the sweep. Its data is flushed
before it is renamed into place, and the folder after, so a crash leaves either the old file or
the new one whole, never a torn one under the final name.
"""

import contextlib
import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from sidecar import host
from sidecar.host.generic import O_BINARY as O_BINARY
from sidecar.host.generic import O_CLOEXEC as O_CLOEXEC
from sidecar.host.generic import O_DIRECTORY as O_DIRECTORY

TEMP_SUFFIX = ".aus-tmp"
# 0o666, not mkstemp's 0o600: the file gets the umask's permissions like any other the user has.
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_CLOEXEC | O_BINARY


def temp_path(final: str | Path) -> str:
    """A fresh temp name beside `final`."""
    folder, name = os.path.split(os.fspath(final))
    return os.path.join(folder, f".{name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def is_temp(name: str, of: str | None = None) -> bool:
    """Whether a file name is one of our temp files (of the final name starting with `of`)."""
    return name.startswith("." + (of or "")) and name.endswith(TEMP_SUFFIX)


def flush(fd: int) -> None:
    """Put a file's data on the medium (through the drive's cache: macOS's full flush)."""
    host.current().flush(fd)


def flush_folder(folder: str | Path) -> None:
    """Make the renames and creations in a folder durable (a no-op on Windows: see host)."""
    host.current().flush_folder(folder)


def publish(temp: str | Path, final: str | Path) -> None:
    """Rename a flushed temp file over its final name, then flush the folder so the rename lasts."""
    publish_all([(temp, final)])


def publish_all(moves: Sequence[tuple[str | Path, str | Path]]) -> None:
    """`publish` for several (temp, final) pairs: every rename, then each folder flushed once."""
    for temp, final in moves:
        os.replace(temp, final)  # unlike os.rename, also replaces on Windows
    for folder in dict.fromkeys(os.path.dirname(os.fspath(final)) for _, final in moves):
        flush_folder(folder)


@contextlib.contextmanager
def staged(final: str | Path) -> Iterator[tuple[BinaryIO, str]]:
    """A temp file beside `final` to write; on a clean exit it is flushed (not yet renamed: see
    `publish`), on any error removed. Yields the open file and the temp's path."""
    temp = temp_path(final)
    fd = os.open(temp, NEW_FILE_FLAGS, 0o666)
    try:
        with open(fd, "wb") as out:
            yield out, temp
            out.flush()
            flush(out.fileno())
    except BaseException:
        remove_quietly(temp)
        raise


def write_atomically(final: str | Path, chunks: Iterable[bytes]) -> None:
    """`final` holds exactly `chunks`, or (after a crash) what it held before."""
    with staged(final) as (out, temp):
        for chunk in chunks:
            out.write(chunk)
    publish(temp, final)


def flush_path(path: str | Path) -> int:
    """Flush a file another program wrote (ffmpeg's output); returns its size."""
    fd = os.open(path, os.O_RDONLY | O_CLOEXEC | O_BINARY)
    try:
        flush(fd)
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def remove_quietly(path: str | Path) -> None:
    """Remove a file that may be gone already; a leftover temp is swept later."""
    with contextlib.suppress(OSError):
        os.unlink(path)


def remove_files(paths: Iterable[str | Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def sweep_temps(folders: Sequence[str | Path], of: str | None = None) -> int:
    """Remove our temp files (of final names starting with `of`) from these folders; returns how
    many. Streamed, never listed whole: an org folder may hold 100 000 files."""
    removed = 0
    for folder in folders:
        try:
            entries = os.scandir(folder)
        except OSError:
            continue
        with entries:
            for entry in entries:
                if is_temp(entry.name, of):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed += 1
    return removed
