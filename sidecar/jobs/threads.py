"""The threads the jobs' CPU work runs on (thumbnail decodes and resizes, bagit's hashing): a pool
of their own, each thread lowering its CPU priority as it starts (where the host can lower one
thread: sidecar/host), so an import running at the same time gets the cores first. Not the event
loop's default executor: the import's own short `to_thread` calls run there at full priority.
It knows nothing of queues or handlers.
"""

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from sidecar import host

P = ParamSpec("P")
T = TypeVar("T")


class JobThreads:
    """Up to `size` threads, started as they are needed."""

    def __init__(self, size: int) -> None:
        self._executor = ThreadPoolExecutor(
            max(size, 1), thread_name_prefix="jobs-cpu", initializer=host.current().lower_thread_priority
        )

    async def run(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`func(*args, **kwargs)` on one of the threads, as `asyncio.to_thread` runs it on the
        default executor: a cancelled caller stops waiting, the call itself runs to its end."""
        call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def close(self) -> None:
        """Start nothing more, and wait for the calls still running: a thread cannot be stopped, and
        the interpreter would wait for it at exit anyway."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self._executor.shutdown)
