"""Everything that differs by operating system, behind one small interface (`Generic`'s methods):
flushes, page-cache drops, clone and kernel copies, mounts and media, tying a child process to
the sidecar, background CPU priority for tools and threads, the byte workers' priority, the
user-data folder. Nothing else in the sidecar calls an OS-specific primitive.

`current()` picks the implementation once per process: `AUS_PLATFORM` when set (`generic` forces
plain POSIX, the test mode; the native name is also accepted), else `sys.platform`. The pool's
worker processes inherit the environment, so they choose exactly as the sidecar did.
"""

import functools
import os
import sys

from sidecar.host.darwin import Darwin
from sidecar.host.generic import BACKGROUND_NICENESS, BYTE_WORKER_NICENESS, Generic, Medium, Mount
from sidecar.host.linux import Linux
from sidecar.host.windows import Windows

__all__ = [
    "BACKGROUND_NICENESS",
    "BYTE_WORKER_NICENESS",
    "ENV",
    "Generic",
    "Medium",
    "Mount",
    "current",
    "native",
]

ENV = "AUS_PLATFORM"


def native() -> type[Generic]:
    if sys.platform.startswith("linux"):
        return Linux
    if sys.platform == "darwin":
        return Darwin
    if sys.platform == "win32":
        return Windows
    return Generic


@functools.cache
def current() -> Generic:
    """This process's host. Raises ValueError for an `AUS_PLATFORM` this OS cannot be."""
    forced = os.environ.get(ENV, "")
    kind = native()
    if forced in ("", kind.name):
        return kind()
    if forced == Generic.name and kind is not Windows:
        return Generic()
    raise ValueError(f"{ENV}={forced!r}: this machine can be {kind.name!r} or, on POSIX, 'generic'")
