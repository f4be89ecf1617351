"""Byte-work stand-ins that misbehave, for the pool's crash, timeout and bug tests.

Top-level functions in an importable module (`tests` is a package and the repository root is on
sys.path, which spawned workers inherit), so the pool can pickle them by reference.
"""

import os
import time


def crash_once(items: list[tuple[str, str]]) -> list[str]:
    """Kill the worker the first time one of the items' marker files exists (deleting it first, so the
    retry succeeds); otherwise upper-case the values."""
    for marker, _ in items:
        if os.path.exists(marker):
            os.remove(marker)
            os._exit(1)
    return [value.upper() for _, value in items]


def crash_always(items: list[str]) -> list[str]:
    os._exit(1)


def hang(items: list[str]) -> list[str]:
    time.sleep(3600)
    return items


def announce_then_hang(items: list[str]) -> list[str]:
    """Write to the FIFO named by the first item (so the test knows the batch is running), then hang."""
    with open(items[0], "wb") as fifo:
        fifo.write(b"running")
    time.sleep(3600)
    return items


def slow_echo(items: list[str]) -> list[str]:
    """Stays busy long enough to be in flight when another batch's workers are killed."""
    time.sleep(0.5)
    return items


def slower_echo(items: list[str]) -> list[str]:
    """One second of work: long against scheduling noise on a loaded machine."""
    time.sleep(1.0)
    return items


def boom(items: list[str]) -> list[str]:
    raise ValueError("boom")


def worker_pid(items: list[str]) -> list[int]:
    return [os.getpid() for _ in items]
