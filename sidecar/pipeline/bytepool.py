"""The asyncio side of the byte-work process pool: batching, live per-item completion, per-batch
timeouts measured from each batch's real start, crash recovery and cancellation of in-flight copies.

It knows the work only as picklable `fn(list[T]) -> list[R]` functions (sidecar.workers); it never
does file I/O itself and never blocks the event loop.
"""

import asyncio
import contextlib
import multiprocessing
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any, Final, TypeVar, cast

from sidecar.log import get_logger
from sidecar.workers.bytework import init_worker, run_batch, warm

T = TypeVar("T")
R = TypeVar("R")

log = get_logger(__name__)

CLOSE_GRACE_S: Final = 2.0
_CRASHED: Final = "crashed"
_TIMED_OUT: Final = "timed out"


class BytePool:
    """Runs byte-work functions over batches of items in spawned worker processes.

    Failures are data: a batch whose worker crashes is retried once, alone on fresh workers (so a
    second crash is its own, not a neighbour's); a batch over its timeout has its workers killed.
    Either way its items get `failure(item, message)`, the caller's own outcome type, and the pool
    carries on with new workers.
    """

    def __init__(
        self,
        workers: int,
        *,
        base_timeout_s: float = 60.0,
        min_rate_bytes_per_s: float = 5_000_000,
        # Small files per batch: more share one syncfs; too many leave a worker idle at page ends
        # (the figures: bench/README.md).
        max_batch_files: int = 256,
        max_batch_bytes: int = 64 << 20,
        min_share_bytes: int = 8 << 20,
    ) -> None:
        if workers < 1 or max_batch_files < 1 or max_batch_bytes < 1:
            raise ValueError("workers, max_batch_files and max_batch_bytes must be at least 1")
        self.workers = workers
        self.base_timeout_s = base_timeout_s
        self.min_rate_bytes_per_s = min_rate_bytes_per_s
        self.max_batch_files = max_batch_files
        self.max_batch_bytes = max_batch_bytes
        self.min_share_bytes = min_share_bytes
        self._in_flight = 2 * workers  # a worker finds its next batch queued when it finishes one
        self._context: SpawnContext = multiprocessing.get_context("spawn")
        self._cancel = self._context.Event()
        # One start-time slot per in-flight batch, written by the worker when the batch starts.
        self._started = self._context.Array("d", self._in_flight, lock=False)
        self._free_slots: asyncio.Queue[int] = asyncio.Queue()
        for slot in range(self._in_flight):
            self._free_slots.put_nowait(slot)
        self._executor: ProcessPoolExecutor | None = None
        self._start_lock = asyncio.Lock()
        self._replace_lock = asyncio.Lock()
        self._gate = _Gate()
        self._closed = False

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn and warm every worker (idempotent). Raises BrokenProcessPool when workers cannot start."""
        async with self._start_lock:
            if self._closed:
                raise RuntimeError("BytePool is closed")
            if self._executor is not None:
                return
            began = time.monotonic()
            executor, warming = await asyncio.to_thread(self._spawn_executor)
            try:
                pids = await asyncio.gather(*(asyncio.wrap_future(f) for f in warming))
            except BaseException:
                executor.shutdown(wait=False, cancel_futures=True)
                raise
            self._executor = executor
            log.info(
                "byte pool started",
                extra={
                    "action": "bytepool.start",
                    "workers": self.workers,
                    # Distinct workers that answered the warm-up: all of them, unless one took
                    # longer than WARM_TIMEOUT_S to start.
                    "warmed": len(set(pids)),
                    "ms": round((time.monotonic() - began) * 1000),
                },
            )

    def cancel(self) -> None:
        """In-flight copies stop at their next chunk boundary; copies not started yet do not start."""
        self._cancel.set()

    def clear_cancel(self) -> None:
        self._cancel.clear()

    async def close(self) -> None:
        """Stop the workers; kill any still busy after CLOSE_GRACE_S."""
        async with self._start_lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is None:
            return
        self._cancel.set()  # a long copy in flight stops at its next chunk instead of holding us up
        processes = _processes(executor)
        stopping = asyncio.ensure_future(asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True))
        done, _ = await asyncio.wait({stopping}, timeout=CLOSE_GRACE_S)
        killed = 0
        if not done:
            for process in processes:
                if process.is_alive():
                    with contextlib.suppress(OSError):
                        process.kill()
                    killed += 1
            # The executor's own thread now sees the workers gone and finishes; a worker stuck in an
            # uninterruptible read (a dead network mount) could still hold it, so the wait is bounded.
            done, _ = await asyncio.wait({stopping}, timeout=CLOSE_GRACE_S)
        log.info(
            "byte pool closed",
            extra={"action": "bytepool.close", "killed": killed, "joined": bool(done)},
        )

    # -- running work -----------------------------------------------------------------------------

    async def run(
        self,
        fn: Callable[[list[T]], list[R]],
        items: Sequence[T],
        sizes: Sequence[int],
        on_batch_done: Callable[[range], None] | None = None,
        *,
        failure: Callable[[T, str], R],
        max_in_flight: int | None = None,
        spread: bool = False,
    ) -> list[R]:
        """Run `fn` over `items` in batches and return its outcomes in input order.

        `sizes` (bytes per item) sizes the batches and their timeouts. `on_batch_done(indices)` is
        called with each batch's item indices as soon as it finishes (once per batch, not per item:
        a page of small files is thousands of items). `failure(item, message)` builds the
        outcome of an item whose batch crashed twice, timed out or raised (a bug in `fn`): the pool
        cannot know `fn`'s outcome type, so the caller states it once per call. `max_in_flight` lowers
        how many batches run at once (one for a network share, which many parallel reads overwhelm).
        `spread` shares a call too small to fill a batch per worker out among the workers (see
        `_share`).
        """
        if len(sizes) != len(items):
            raise ValueError(f"{len(items)} items but {len(sizes)} sizes")
        if not items:
            return []
        await self.start()
        results: list[R | None] = [None] * len(items)
        share = self._share(sizes) if spread else None
        pending = deque(split_batches(sizes, self.max_batch_files, self.max_batch_bytes, share))

        async def drain() -> None:
            while pending:
                start, end, nbytes = pending.popleft()
                chunk = list(items[start:end])
                outcomes = await self._run_batch(fn, chunk, nbytes, failure)
                assert len(outcomes) == end - start, "one outcome per item"
                results[start:end] = outcomes
                if on_batch_done is not None:
                    on_batch_done(range(start, end))

        try:
            async with asyncio.TaskGroup() as group:
                for n in range(min(self._in_flight, max_in_flight or self._in_flight, len(pending))):
                    group.create_task(drain(), name=f"bytepool-{getattr(fn, '__name__', 'fn')}-{n}")
        except BaseExceptionGroup as errors:
            # Callers see what went wrong (the pool closed, a callback's bug), not the TaskGroup.
            raise errors.exceptions[0] from errors
        assert all(r is not None for r in results)
        return cast(list[R], results)

    def _share(self, sizes: Sequence[int]) -> int:
        """The bytes that fill a batch when a call is spread: one share per worker (a window's last
        page of photos is re-read by every worker at once, not by one), but never under
        `min_share_bytes`, where the hand-offs would cost more than they spread."""
        total = sum(max(0, size) for size in sizes)
        return max(self.min_share_bytes, -(-total // self.workers))

    def timeout_for(self, nbytes: int) -> float:
        """A batch's time limit from its start: generous for any healthy medium, so a 50 GB video gets
        ~10 000 s rather than the original app's flat 60 s per file (original-app.md §12.16)."""
        return self.base_timeout_s + nbytes / self.min_rate_bytes_per_s

    async def _run_batch(
        self, fn: Callable[[list[T]], list[R]], items: list[T], nbytes: int, failure: Callable[[T, str], R]
    ) -> list[R]:
        limit_s = self.timeout_for(nbytes)
        name = getattr(fn, "__name__", repr(fn))
        await self._gate.enter_shared()
        try:
            outcome = await self._attempt(fn, items, limit_s)
        finally:
            self._gate.leave_shared()
        if outcome == _CRASHED:
            log.warning(
                "worker crashed; retrying its batch alone",
                extra={"action": "bytepool.retry", "fn": name, "files": len(items)},
            )
            async with self._gate.solo():
                outcome = await self._attempt(fn, items, limit_s)
        if isinstance(outcome, list):
            return outcome
        if outcome == _TIMED_OUT:
            message = f"timed out after {_seconds(limit_s)} s"
        elif outcome == _CRASHED:
            message = "the worker process crashed twice on this batch"
        else:
            message = f"internal error in the worker: {outcome}"
        log.error(
            "batch failed",
            extra={"action": "bytepool.fail", "fn": name, "files": len(items), "error": message},
        )
        return [failure(item, message) for item in items]

    async def _attempt(
        self, fn: Callable[[list[T]], list[R]], items: list[T], limit_s: float
    ) -> list[R] | str:
        """One submission. Returns the outcomes, _CRASHED, _TIMED_OUT, or a bug's description."""
        slot = await self._free_slots.get()
        try:
            submitted, executor = await self._submit(fn, slot, items)
        except BaseException:
            self._free_slots.put_nowait(slot)
            raise
        if submitted is None:
            self._free_slots.put_nowait(slot)
            return _CRASHED
        loop = asyncio.get_running_loop()
        # The slot is reused only once the worker is done with it (or dead), even if we stop waiting.
        submitted.add_done_callback(lambda _: _call_soon(loop, self._free_slots.put_nowait, slot))
        future = asyncio.wrap_future(submitted)
        deadline = time.monotonic() + limit_s
        try:
            while not future.done():
                # asyncio.wait, not asyncio.timeout: reaching a deadline must not cancel the batch, which
                # may still be queued behind others; the limit counts from its start in a worker.
                await asyncio.wait({future}, timeout=max(0.0, deadline - time.monotonic()))
                if future.done():
                    break
                started = self._started[slot]  # written by run_batch in the worker; 0.0 = not started
                now = time.monotonic()
                if started == 0.0:
                    deadline = now + limit_s
                elif started + limit_s > now:
                    deadline = started + limit_s
                else:
                    # Its BrokenProcessPool (from the kill) is expected: mark it seen, not "never retrieved".
                    future.add_done_callback(lambda f: f.cancelled() or f.exception())
                    await self._kill(executor, f"a batch exceeded {_seconds(limit_s)} s")
                    return _TIMED_OUT
        finally:
            if not future.done():
                future.cancel()  # our caller was cancelled: a batch still queued never starts
        if future.cancelled():
            if self._closed:
                raise RuntimeError("BytePool is closed")
            return _CRASHED  # dropped from an executor being replaced
        try:
            return future.result()
        except BrokenProcessPool:
            await self._replace(executor)
            return _CRASHED
        except Exception as exc:
            log.exception("byte work raised", extra={"action": "bytepool.bug"})
            return f"{type(exc).__name__}: {exc}"

    async def _submit(
        self, fn: Callable[[list[T]], list[R]], slot: int, items: list[T]
    ) -> tuple[Future[list[R]] | None, ProcessPoolExecutor]:
        """Submit to the current executor, replacing it if it is already known broken."""
        executor: ProcessPoolExecutor | None = None
        for _ in range(3):
            if self._executor is None:
                await self.start()
            executor = self._executor
            assert executor is not None
            self._started[slot] = 0.0
            try:
                # No process is spawned here: every executor is warmed when it is created.
                return executor.submit(run_batch, fn, slot, items), executor
            except BrokenProcessPool:
                await self._replace(executor)
            except RuntimeError:
                if self._closed:
                    raise RuntimeError("BytePool is closed") from None
                await self._replace(executor)  # shut down by a concurrent replacement
        assert executor is not None
        return None, executor

    async def _kill(self, executor: ProcessPoolExecutor, reason: str) -> None:
        """Kill every worker of `executor` and carry on with new ones. concurrent.futures has no way
        to stop one running task, so the hung batch's workers are killed through the executor's
        private process table; the other batches in flight there then fail with BrokenProcessPool
        and are retried on the new workers."""
        processes = _processes(executor)
        for process in processes:
            with contextlib.suppress(OSError):
                process.kill()
        await self._replace(executor)
        log.warning(
            "killed the byte workers",
            extra={"action": "bytepool.kill", "reason": reason, "killed": len(processes)},
        )

    async def _replace(self, broken: ProcessPoolExecutor) -> None:
        async with self._replace_lock:
            if self._executor is not broken or self._closed:
                return  # another batch already replaced it
            new, _ = await asyncio.to_thread(self._spawn_executor)
            if self._closed:  # close() ran while the new workers were spawning
                new.shutdown(wait=False, cancel_futures=True)
            else:
                self._executor = new
        broken.shutdown(wait=False)
        log.info("byte workers replaced", extra={"action": "bytepool.replace"})

    def _spawn_executor(self) -> tuple[ProcessPoolExecutor, list[Future[int]]]:
        """A new executor with every worker spawned (runs on a thread: spawning takes milliseconds)."""
        executor = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=self._context,
            initializer=init_worker,
            initargs=(self._cancel, self._started, True, self._context.Barrier(self.workers)),
        )
        # Each submit finds no idle worker and spawns one, so this starts all of them now, and the
        # barrier gives each of them one of these calls.
        return executor, [executor.submit(warm) for _ in range(self.workers)]


def split_batches(
    sizes: Sequence[int], max_files: int, max_bytes: int, share: int | None = None
) -> list[tuple[int, int, int]]:
    """(start, end, bytes) runs of consecutive items, each within `max_files` files and `max_bytes`
    bytes; a file bigger than `max_bytes` goes alone. With `share`, a batch also ends once it holds
    that many bytes: a total of k shares makes at most k batches."""
    batches: list[tuple[int, int, int]] = []
    start, nbytes = 0, 0
    full = max_bytes if share is None else min(share, max_bytes)
    for index, raw in enumerate(sizes):
        size = max(0, raw)
        if index > start and (index - start >= max_files or nbytes + size > max_bytes or nbytes >= full):
            batches.append((start, index, nbytes))
            start, nbytes = index, 0
        nbytes += size
    if sizes:
        batches.append((start, len(sizes), nbytes))
    return batches


class _Gate:
    """Batches share the executor; a retried batch runs alone, so if it crashes the workers again
    the crash is its own and not that of a batch that happened to be in flight beside it."""

    def __init__(self) -> None:
        self._shared = 0
        self._solo_pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._open = asyncio.Event()
        self._open.set()
        self._solo_lock = asyncio.Lock()

    async def enter_shared(self) -> None:
        while not self._open.is_set():
            await self._open.wait()
        self._shared += 1
        self._idle.clear()

    def leave_shared(self) -> None:
        self._shared -= 1
        if self._shared == 0:
            self._idle.set()

    @contextlib.asynccontextmanager
    async def solo(self) -> AsyncIterator[None]:
        self._solo_pending += 1
        self._open.clear()
        try:
            async with self._solo_lock:
                while not self._idle.is_set():
                    await self._idle.wait()
                yield
        finally:
            self._solo_pending -= 1
            if self._solo_pending == 0:
                self._open.set()


def _processes(executor: ProcessPoolExecutor) -> list[BaseProcess]:
    # Private, but the only handle on the workers: concurrent.futures offers no kill.
    table: dict[int, Any] | None = getattr(executor, "_processes", None)
    return list((table or {}).values())


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[int], None], arg: int) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody needs the slot any more
        loop.call_soon_threadsafe(callback, arg)


def _seconds(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")
