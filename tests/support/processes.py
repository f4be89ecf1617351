"""This process's children and CPU priorities as Linux's /proc shows them, read apart from the
code under test: the children by command name, a process's or a single thread's niceness, and
what the jobs' background priority makes of the sidecar's."""

import os
import threading
from contextlib import suppress
from pathlib import Path

from sidecar.host import BACKGROUND_NICENESS

LOWEST = 19  # the highest niceness there is


def niceness(pid: int, thread: int | None = None) -> int:
    """Field 19 (`nice`) of /proc/<pid>/stat, or of one thread's /proc/<pid>/task/<tid>/stat
    (proc(5)); the fields after the command name, which may hold spaces, start at field 3."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    return int(stat.read_text().rpartition(")")[2].split()[16])


def this_thread() -> int:
    """The calling thread's niceness."""
    return niceness(os.getpid(), threading.get_native_id())


def lowered(base: int, by: int = BACKGROUND_NICENESS) -> int:
    """The niceness background work (or, `by` BYTE_WORKER_NICENESS, a byte worker) gets when the
    sidecar's is `base`."""
    return min(base + by, LOWEST)


def children() -> dict[int, str]:
    """This process's child processes and their command names."""
    found: dict[int, str] = {}
    for task in os.listdir("/proc/self/task"):
        for pid in Path(f"/proc/self/task/{task}/children").read_text().split():
            with suppress(FileNotFoundError):  # it ended meanwhile
                found[int(pid)] = Path(f"/proc/{pid}/comm").read_text().strip()
    return found
