"""The byte work the process pool runs: BLAKE3 hashing, durable copies into the archive, re-hashing.

Pure, picklable top-level functions over plain paths: nothing here knows asyncio, the journal or
the archive layout. A per-file problem is data in the outcome; an exception means a bug.
"""

import contextlib
import errno
import mmap
import multiprocessing
import multiprocessing.connection
import os
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Generator, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import blake3

from sidecar import fs, host

HASH_HEX_CHARS = 16  # BLAKE3, first 16 lowercase hex chars (= blake3(...).hexdigest(length=8))
TEMP_SUFFIX = fs.TEMP_SUFFIX
READ_CHUNK = 1 << 20  # 1 MiB: fits the L2 cache with the hasher's state (larger chunks were slower)
COPY_CHUNK = 8 << 20  # kernel-side copy step; the cancel flag is checked between steps
# A cold small file costs a wait on the medium for its bytes; reading one file at a time, a disk
# then serves one request at a time. Hashing and validation keep this many files open ahead, the
# small ones with the host's read-ahead advice, so the medium has that many requests in hand:
# SMALL's 20 000 cold files read in one thread took 3.3 s one by one and 1.5 s with 16 ahead (64:
# 1.3 s).
READ_AHEAD_FILES = 16
# A file larger than one read is left to the kernel's own read-ahead, which its first read starts:
# advised too, the 90 MB/s card's photos (≈ 2 MB) were re-read a little later, not sooner.
READ_AHEAD_MAX_BYTES = READ_CHUNK

# Flushing many small temps with one syncfs() of the filesystem is ≈4x cheaper than an fsync() per
# file (performance-floor.md §3; bench/bytework_batching.py re-measures it). For big files the two
# cost the same, and an fsync per file then touches only our data, so syncfs is kept for calls with
# many files of small average size.
SYNCFS_MIN_FILES = 8
SYNCFS_MAX_AVG_BYTES = 4 << 20

_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
# The filesystem cannot clone (EOPNOTSUPP/ENOTTY), or not between these two files (EXDEV, EINVAL).
_NO_CLONE = frozenset({errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.EPERM})
# copy_file_range cannot do this pair (old kernel, cross-filesystem, special filesystem).
_NO_KERNEL_COPY = frozenset(
    {errno.ENOSYS, errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EBADF, errno.EPERM}
)
# A hard link is impossible here (other device, filesystem without links, too many links, policy).
_NO_LINK = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EACCES})

_O_BINARY = fs.O_BINARY
_O_CLOEXEC = fs.O_CLOEXEC
_O_NONBLOCK: int = getattr(os, "O_NONBLOCK", 0)  # so opening a FIFO that slipped through cannot block


class CancelFlag(Protocol):
    """The pool's multiprocessing Event (or, in tests, anything with is_set)."""

    def is_set(self) -> bool: ...


class StartSlots(Protocol):
    """Shared doubles (a multiprocessing Array) where run_batch notes when a batch starts."""

    def __getitem__(self, index: int, /) -> float: ...
    def __setitem__(self, index: int, value: float, /) -> None: ...


# How long a worker's warm-up waits for the pool's other workers to start. A worker that cannot
# start breaks the pool long before; past this, the warm-up is given up, never the pool.
WARM_TIMEOUT_S = 30.0

# Per-process state, set by the pool initializer (or a test calling init_worker in-process).
_cancel: CancelFlag | None = None
_started: StartSlots | None = None
_all_warm: threading.Barrier | None = None
_buffer: mmap.mmap | None = None  # page-aligned read buffer, reused for every file of this process


def init_worker(
    cancel_event: CancelFlag | None,
    started: StartSlots | None = None,
    exit_with_parent: bool = False,
    all_warm: threading.Barrier | None = None,
) -> None:
    """Pool initializer: keep the shared cancel event, the batch start-time slots (see run_batch) and
    the warm-up barrier (see warm), and in the pool, run a little below the sidecar's own process
    (see BYTE_WORKER_NICENESS) and end this worker when the sidecar is gone."""
    global _cancel, _started, _all_warm
    _cancel = cancel_event
    _started = started
    _all_warm = all_warm
    parent = multiprocessing.parent_process()
    if exit_with_parent and parent is not None:
        host.current().lower_worker_priority()
        threading.Thread(target=_exit_with_parent, args=(parent.sentinel,), daemon=True).start()


def _exit_with_parent(sentinel: int) -> None:
    """A sidecar killed with SIGKILL cannot stop its pool: without this its workers (and the
    multiprocessing resource tracker they keep alive) would live on, holding the app's stderr pipe.
    The sentinel is the pipe multiprocessing keeps to the parent: it reads end-of-file the moment
    the parent is gone, on every platform."""
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def warm() -> int:
    """Make a fresh worker import everything and allocate its buffer before real work arrives. In
    the pool, it then waits for every other worker to be warm: a worker that is waiting takes no
    second warm-up call, so each worker takes exactly one, and a started pool has every worker
    ready (the first worker up used to take them all, the others still starting)."""
    _read_view()
    if _all_warm is not None:
        with contextlib.suppress(threading.BrokenBarrierError):  # timed out: warm enough
            _all_warm.wait(WARM_TIMEOUT_S)
    return os.getpid()


T = TypeVar("T")
R = TypeVar("R")


def run_batch(fn: Callable[[list[T]], list[R]], slot: int, items: list[T]) -> list[R]:
    """Run one pool batch, first noting in shared slot `slot` when it started, so the parent times
    the batch from its real start rather than from when it was queued behind others."""
    if _started is not None:
        _started[slot] = time.monotonic()
    return fn(items)


# -- hashing ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HashOutcome:
    hash: str | None
    size: int | None  # bytes actually read
    error: str | None  # e.g. "No such file or directory", "Permission denied"


def hash_files(paths: list[str]) -> list[HashOutcome]:
    with contextlib.closing(_opened_ahead(paths, _read_ahead)) as opened:
        return [_hash_one(file) for file in opened]


def _hash_one(file: "_Opened[None]") -> HashOutcome:
    try:
        fd, _ = file.take()
        try:
            digest, size = _hash_fd(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        return HashOutcome(None, None, _reason(exc))
    return HashOutcome(digest, size, None)


# -- copying ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CopyRequest:
    source: str
    target: str  # final archive path (its folder may not exist yet)
    expected_hash: str  # from the hash step
    allow_hardlink: bool = False


@dataclass(frozen=True, slots=True)
class CopyOutcome:
    created: bool  # True: we wrote `target`; False: it already held the right content and was kept untouched
    strategy: str | None  # "reflink" | "copy" | "hardlink" | None (kept or failed)
    bytes: int  # size of the file created under `target`; 0 when kept or failed
    error: str | None
    error_kind: str | None  # "disk_full" | "cancelled" | "source" | "target" | None


KEPT = CopyOutcome(False, None, 0, None, None)
CANCELLED = CopyOutcome(False, None, 0, "Cancelled", "cancelled")


class _Failed(Exception):
    """Internal control flow inside copy_files: this request ends with `outcome`."""

    def __init__(self, outcome: CopyOutcome) -> None:
        self.outcome = outcome


@dataclass(slots=True)
class _Staged:
    """A temp file fully written next to its target, waiting for its flush and rename."""

    request: CopyRequest
    temp: str
    fd: int | None  # open until flushed; None for a hard link (no new data to flush)
    strategy: str
    size: int

    @property
    def folder(self) -> str:
        return os.path.dirname(self.request.target)


def copy_files(requests: list[CopyRequest]) -> list[CopyOutcome]:
    """Copy each source to a temp file beside its target, flush every temp, rename each into place,
    then flush each target folder once: a file never appears under its final name before its data
    is on the medium, and the flushes are shared by the whole call."""
    outcomes: list[CopyOutcome | None] = [None] * len(requests)
    staged: dict[int, _Staged] = {}
    folders: set[str] = set()
    finished = False
    try:
        for index, request in enumerate(requests):
            result = _stage(request, folders)
            if isinstance(result, _Staged):
                staged[index] = result
            else:
                outcomes[index] = result
        if _is_cancelled():
            # Not renamed yet: drop them rather than spend the flushes on an import being stopped.
            for index in list(staged):
                _discard(staged.pop(index))
                outcomes[index] = CANCELLED
        for index, failure in _flush_temps(staged).items():
            _discard(staged.pop(index))
            outcomes[index] = failure
        for index, item in list(staged.items()):
            try:
                # os.replace = rename(2) on POSIX; unlike os.rename it also replaces on Windows.
                os.replace(item.temp, item.request.target)
            except OSError as exc:
                _discard(staged.pop(index))
                outcomes[index] = _target_failure(exc, item.request.target)
        for index, failure in _flush_folders(staged).items():
            # The rename is not durable; the data is, so the file is whole, but nothing may claim it.
            fs.remove_quietly(staged.pop(index).request.target)
            outcomes[index] = failure
        for index, item in staged.items():
            outcomes[index] = CopyOutcome(True, item.strategy, item.size, None, None)
        finished = True
    finally:
        for item in staged.values():
            if finished:
                _close_quietly(item)
            else:  # a bug or an interrupt: leave no temp behind (a renamed one is simply not found)
                _discard(item)
    done = [o for o in outcomes if o is not None]
    assert len(done) == len(requests)
    return done


def _stage(request: CopyRequest, folders: set[str]) -> CopyOutcome | _Staged:
    if _is_cancelled():
        return CANCELLED
    try:
        if _existing_copy_is_good(request):
            return KEPT
        return _write_temp(request, folders)
    except _Failed as failed:
        return failed.outcome
    except OSError as exc:  # a call not classified above (e.g. fstat): still this file's problem
        return _ambiguous_failure(exc, request.target)


def _existing_copy_is_good(request: CopyRequest) -> bool:
    try:
        st = os.lstat(request.target)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _Failed(_target_failure(exc, request.target)) from exc
    if not stat.S_ISREG(st.st_mode):
        raise _Failed(
            CopyOutcome(
                False, None, 0, f"Target exists and is not a regular file: {request.target}", "target"
            )
        )
    try:
        fd = _open_regular(request.target)
        try:
            digest, _ = _hash_fd(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise _Failed(
            CopyOutcome(
                False, None, 0, f"Could not read the existing copy {request.target}: {_reason(exc)}", "target"
            )
        ) from exc
    # The archive is content-addressed: a file under this name with other bytes is a damaged copy of
    # this very content, so it is replaced atomically (temp + rename) exactly like a new copy.
    return digest == request.expected_hash


def _write_temp(request: CopyRequest, folders: set[str]) -> _Staged:
    try:
        src, size = _open_regular_sized(request.source)
    except OSError as exc:
        raise _Failed(_source_failure(exc)) from exc
    try:
        folder = os.path.dirname(request.target)
        try:
            _make_folder(folder, folders)
        except OSError as exc:
            raise _Failed(_target_failure(exc, request.target)) from exc
        temp = fs.temp_path(request.target)
        if request.allow_hardlink and _try_hardlink(request, src, folder, temp):
            return _Staged(request, temp, None, "hardlink", size)
        try:
            dst = os.open(temp, fs.NEW_FILE_FLAGS, 0o666)
        except OSError as exc:
            raise _Failed(_target_failure(exc, request.target)) from exc
        try:
            strategy = "reflink" if _try_clone(src, dst, request.target) else "copy"
            copied = size if strategy == "reflink" else _copy_data(src, dst, request.target)
            if copied != size or (strategy == "reflink" and os.fstat(dst).st_size != size):
                raise _Failed(
                    CopyOutcome(
                        False,
                        None,
                        0,
                        f"The source changed while it was copied: expected {size} bytes, copied {copied}",
                        "source",
                    )
                )
        except BaseException:
            os.close(dst)
            fs.remove_quietly(temp)
            raise
        return _Staged(request, temp, dst, strategy, size)
    finally:
        os.close(src)


def _try_hardlink(request: CopyRequest, src: int, folder: str, temp: str) -> bool:
    try:
        if os.fstat(src).st_dev != os.stat(folder).st_dev:
            return False
        os.link(request.source, temp)
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise _Failed(_disk_full(request.target)) from exc
        if exc.errno in _NO_LINK:
            return False
        raise _Failed(_target_failure(exc, request.target)) from exc
    return True


def _try_clone(src: int, dst: int, target: str) -> bool:
    """A copy-on-write clone (the host's: FICLONE on Linux; macOS clonefile(2) works on paths and
    refuses an existing temp, so it is not used): an independent copy sharing blocks until either
    side changes."""
    try:
        return host.current().clone(src, dst)
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise _Failed(_disk_full(target)) from exc
        if exc.errno in _NO_CLONE:
            return False
        raise _Failed(_ambiguous_failure(exc, target)) from exc


def _copy_data(src: int, dst: int, target: str) -> int:
    """Copy in COPY_CHUNK steps, by the host's kernel-side copies in order (Linux: copy_file_range,
    else sendfile), else read/write, the cancel flag checked between steps. Returns the bytes
    copied, read up to the source's end."""
    this = host.current()
    methods = [*this.kernel_copies, "readwrite"]
    writeback = this.starts_writeback
    copied = 0
    while True:
        if _is_cancelled():
            raise _Failed(CANCELLED)
        method = methods[0]
        try:
            if method == "readwrite":
                n = _read_write_chunk(src, dst, target)
            else:
                n = this.kernel_copy(method, src, dst, COPY_CHUNK)
                if n == 0 and copied == 0 and os.fstat(src).st_size > 0:
                    del methods[0]  # some filesystems report 0 rather than an error; try the next
                    continue
        except OSError as exc:
            if copied == 0 and exc.errno in _NO_KERNEL_COPY and method != "readwrite":
                del methods[0]
                continue
            raise _Failed(_ambiguous_failure(exc, target)) from exc
        if n == 0:
            return copied
        if writeback and (copied or n == COPY_CHUNK):  # a file of more than one chunk
            this.start_writeback(dst, copied, n)
        copied += n


def _read_write_chunk(src: int, dst: int, target: str) -> int:
    view = _read_view()
    try:
        with open(src, "rb", buffering=0, closefd=False) as reader:
            n = reader.readinto(view) or 0
    except OSError as exc:
        raise _Failed(_source_failure(exc)) from exc
    written = 0
    try:
        while written < n:
            written += os.write(dst, view[written:n])
    except OSError as exc:
        raise _Failed(_target_failure(exc, target)) from exc
    return n


def _flush_temps(staged: dict[int, _Staged]) -> dict[int, CopyOutcome]:
    """Put every temp's data on the medium before any rename. Returns the requests that failed."""
    failures: dict[int, CopyOutcome] = {}
    with_data = {i: s for i, s in staged.items() if s.fd is not None}
    if not with_data:
        return failures
    this = host.current()
    if this.syncs_filesystem and _prefer_syncfs(with_data.values()):
        by_device: dict[int, dict[int, _Staged]] = {}
        for index, item in with_data.items():
            assert item.fd is not None
            by_device.setdefault(os.fstat(item.fd).st_dev, {})[index] = item
        for group in by_device.values():
            if not _syncfs(next(iter(group.values())).folder):
                # syncfs cannot say whose data failed: flush one by one to find out.
                failures.update(_fsync_each(group))
    else:
        failures.update(_fsync_each(with_data))
        if this.fsync_stops_at_drive_cache:
            # macOS fsync() stops at the drive's cache; one full flush per device flushes that cache,
            # with every temp fsynced above in it, before any rename.
            seen: set[int] = set()
            for index, item in with_data.items():
                assert item.fd is not None
                device = os.fstat(item.fd).st_dev
                if index not in failures and device not in seen:
                    seen.add(device)
                    try:
                        this.flush(item.fd)
                    except OSError as exc:
                        failures[index] = _target_failure(exc, item.request.target)
    for item in with_data.values():
        _close_quietly(item)
    return failures


def _prefer_syncfs(items: Collection[_Staged]) -> bool:
    return len(items) >= SYNCFS_MIN_FILES and sum(s.size for s in items) <= SYNCFS_MAX_AVG_BYTES * len(items)


def _fsync_each(items: dict[int, _Staged]) -> dict[int, CopyOutcome]:
    failures: dict[int, CopyOutcome] = {}
    for index, item in items.items():
        assert item.fd is not None
        try:
            os.fsync(item.fd)
        except OSError as exc:
            failures[index] = _target_failure(exc, item.request.target)
    return failures


def _flush_folders(staged: dict[int, _Staged]) -> dict[int, CopyOutcome]:
    """Make the renames durable: each target folder flushed once, whatever the number of files."""
    failures: dict[int, CopyOutcome] = {}
    folders: dict[str, list[int]] = {}
    for index, item in staged.items():
        folders.setdefault(item.folder, []).append(index)
    for folder, indices in folders.items():
        try:
            fs.flush_folder(folder)
        except OSError as exc:
            for index in indices:
                failures[index] = _target_failure(exc, staged[index].request.target)
    return failures


def _syncfs(folder: str) -> bool:
    """The host's filesystem-wide flush (syncfs) of the filesystem holding `folder`; False when it
    reports an error."""
    return host.current().sync_filesystem(folder)


def _discard(item: _Staged) -> None:
    _close_quietly(item)
    fs.remove_quietly(item.temp)


def _close_quietly(item: _Staged) -> None:
    if item.fd is not None:
        try:
            os.close(item.fd)
        finally:
            item.fd = None


def _disk_full(target: str) -> CopyOutcome:
    return CopyOutcome(False, None, 0, f"Disk full: {target}", "disk_full")


def _source_failure(exc: OSError) -> CopyOutcome:
    return CopyOutcome(False, None, 0, f"Could not read the source: {_reason(exc)}", "source")


def _target_failure(exc: OSError, target: str) -> CopyOutcome:
    if exc.errno in _DISK_FULL:
        return _disk_full(target)
    return CopyOutcome(False, None, 0, f"Could not write {target}: {_reason(exc)}", "target")


def _ambiguous_failure(exc: OSError, target: str) -> CopyOutcome:
    """An error from a call that both reads and writes (copy_file_range, sendfile, FICLONE): only
    errors that can only be the archive's are the target's; the rest (EIO mostly) blame the source,
    the side that fails in practice (card readers, network shares)."""
    if exc.errno in _DISK_FULL or exc.errno in (errno.EROFS, errno.EFBIG):
        return _target_failure(exc, target)
    return _source_failure(exc)


# -- reading once (network sources) ----------------------------------------------------------------

# Errors a network share gives for a moment (ADR-046's list): the file is read again from its start.
_TRANSIENT = frozenset(
    {
        errno.EAGAIN,
        errno.EBUSY,
        errno.EIO,
        errno.EPIPE,
        errno.ESTALE,
        errno.ETIMEDOUT,
        errno.ECONNRESET,
        errno.ENOTCONN,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.EHOSTDOWN,
    }
)
STAGE_RETRY_DELAYS_S = (1.0, 3.0, 5.0)


@dataclass(frozen=True, slots=True)
class StageRequest:
    source: str
    staged: str  # where the single read lands: a staging folder on the archive's filesystem


@dataclass(frozen=True, slots=True)
class StageOutcome:
    hash: str | None
    size: int | None
    error: str | None
    error_kind: str | None  # "disk_full" | "cancelled" | "source" | "target" | None


class _Transient(Exception):
    def __init__(self, exc: OSError) -> None:
        self.exc = exc


def stage_files(requests: list[StageRequest]) -> list[StageOutcome]:
    """Read each source once, hashing the bytes as they are written to its staged file, then flush
    them all. For sources on another filesystem than the archive's (cards, drives, shares), where a
    hash step and then a copy would read every file twice; the copy step later links the staged
    file into the archive.

    Unlike hashing, staging reads no file ahead: on the 90 MB/s card the advice only shared the
    card's one stream between files, and the import ended later (ten alternated runs: 1.110 of the
    card's time against 1.082, the tail after the last byte 0.38 s against 0.22)."""
    outcomes: list[StageOutcome | None] = [None] * len(requests)
    staged: dict[int, _Staged] = {}
    digests: dict[int, str] = {}
    folders: set[str] = set()
    finished = False
    try:
        for index, request in enumerate(requests):
            result = _stage_with_retries(request, folders)
            if isinstance(result, StageOutcome):
                outcomes[index] = result
            else:
                staged[index], digests[index] = result
        for index, failure in _flush_temps(staged).items():
            _discard(staged.pop(index))
            outcomes[index] = _as_stage_outcome(failure)
        for index, item in staged.items():
            outcomes[index] = StageOutcome(digests[index], item.size, None, None)
        finished = True
    finally:
        for item in staged.values():
            if finished:
                _close_quietly(item)
            else:
                _discard(item)
    done = [o for o in outcomes if o is not None]
    assert len(done) == len(requests)
    return done


def _stage_with_retries(request: StageRequest, folders: set[str]) -> StageOutcome | tuple[_Staged, str]:
    for delay in (*STAGE_RETRY_DELAYS_S, None):
        if _is_cancelled():
            return _as_stage_outcome(CANCELLED)
        try:
            return _read_once(request, folders)
        except _Failed as failed:
            return _as_stage_outcome(failed.outcome)
        except _Transient as transient:
            if delay is None:
                return _as_stage_outcome(_source_failure(transient.exc))
            time.sleep(delay)  # the share may come back: wait a little, then read the file again
    raise AssertionError("unreachable")


def _read_once(request: StageRequest, folders: set[str]) -> tuple[_Staged, str]:
    as_copy = CopyRequest(request.source, request.staged, "")
    try:
        src = _open_regular(request.source)
    except OSError as exc:
        raise (_Transient(exc) if exc.errno in _TRANSIENT else _Failed(_source_failure(exc))) from exc
    try:
        try:
            _make_folder(os.path.dirname(request.staged), folders)
            fs.remove_quietly(request.staged)  # a leftover of an interrupted attempt
            dst = os.open(request.staged, fs.NEW_FILE_FLAGS, 0o666)
        except OSError as exc:
            raise _Failed(_target_failure(exc, request.staged)) from exc
        item = _Staged(as_copy, request.staged, dst, "copy", 0)
        this = host.current()
        try:
            hasher = blake3.blake3()
            view = _read_view()
            with open(src, "rb", buffering=0, closefd=False) as reader:
                while True:
                    if _is_cancelled():
                        raise _Failed(CANCELLED)
                    try:
                        n = reader.readinto(view) or 0
                    except OSError as exc:
                        raise (
                            _Transient(exc) if exc.errno in _TRANSIENT else _Failed(_source_failure(exc))
                        ) from exc
                    if n == 0:
                        break
                    hasher.update(view[:n])
                    try:
                        written = 0
                        while written < n:
                            written += os.write(dst, view[written:n])
                    except OSError as exc:
                        raise _Failed(_target_failure(exc, request.staged)) from exc
                    # More than a chunk: written out while the rest is read, as _copy_data does.
                    if this.starts_writeback and (item.size or n == len(view)):
                        this.start_writeback(dst, item.size, n)
                    item.size += n
        except BaseException:
            _discard(item)
            raise
        return item, hasher.hexdigest(length=HASH_HEX_CHARS // 2)
    finally:
        os.close(src)


def _as_stage_outcome(outcome: CopyOutcome) -> StageOutcome:
    return StageOutcome(None, None, outcome.error, outcome.error_kind)


# -- validating ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ValidateRequest:
    path: str
    expected_hash: str


@dataclass(frozen=True, slots=True)
class ValidateOutcome:
    hash: str | None
    matches: bool
    from_medium: bool  # page cache dropped before reading (False where the OS offers no way)
    error: str | None  # read error: NOT a mismatch; the caller retries and never deletes for it


def validate_files(requests: list[ValidateRequest]) -> list[ValidateOutcome]:
    paths = [request.path for request in requests]
    with contextlib.closing(_opened_ahead(paths, _drop_cache_and_read_ahead)) as opened:
        return [_validate_one(request, file) for request, file in zip(requests, opened, strict=True)]


def _drop_cache_and_read_ahead(fd: int, size: int) -> bool:
    """Dropped first, so what is read ahead comes from the medium."""
    from_medium = _drop_cache(fd)
    _read_ahead(fd, size)
    return from_medium


def _validate_one(request: ValidateRequest, file: "_Opened[bool]") -> ValidateOutcome:
    from_medium = False
    try:
        fd, from_medium = file.take()
        try:
            digest, _ = _hash_fd(fd)
            # Drop what this read cached, so validation does not evict the user's working set.
            _drop_cache(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        return ValidateOutcome(None, False, from_medium, _reason(exc))
    return ValidateOutcome(digest, digest == request.expected_hash, from_medium, None)


def _drop_cache(fd: int) -> bool:
    """Make the next reads come from the medium (the host's way). The copy was flushed, so its
    cached pages are clean and can be dropped (dirty pages cannot)."""
    return host.current().drop_cache(fd)


# -- shared helpers --------------------------------------------------------------------------------


def _make_folder(folder: str, made: set[str]) -> None:
    """Make `folder` unless this call has made or found it already: a call's files mostly share one
    folder, and makedirs asks the filesystem three times per file (20 000 files: 0.3 s)."""
    if folder not in made:
        os.makedirs(folder, exist_ok=True)
        made.add(folder)


def _open_regular(path: str) -> int:
    """Open for reading, refusing anything but a regular file (a FIFO or device is never read)."""
    return _open_regular_sized(path)[0]


def _open_regular_sized(path: str) -> tuple[int, int]:
    """`_open_regular`, with the file's size from the fstat that checks it."""
    fd = os.open(path, os.O_RDONLY | _O_CLOEXEC | _O_BINARY | _O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "Not a regular file", path)
        if sys.platform != "win32" and _O_NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


@dataclass(slots=True)
class _Opened(Generic[T]):
    """One file of `_opened_ahead`: its descriptor and what was done to it on opening, or why it
    could not be opened."""

    opened: tuple[int, T] | None
    error: OSError | None

    def take(self) -> tuple[int, T]:
        """The descriptor (the caller now owns and closes it) with the opening's result; raises the
        opening's error."""
        if self.opened is None:
            assert self.error is not None
            raise self.error
        opened, self.opened = self.opened, None
        return opened


def _opened_ahead(
    paths: Sequence[str], on_open: Callable[[int, int], T]
) -> Generator[_Opened[T], None, None]:
    """Each path opened with `_open_regular_sized`, in order, READ_AHEAD_FILES ahead of the one
    handed out, `on_open(fd, size)` run on each as it opens (the read-ahead advice). Closed
    (contextlib.closing), it closes the descriptors it still holds."""
    pending = iter(paths)
    ahead: deque[_Opened[T]] = deque()

    def open_next() -> None:
        path = next(pending, None)
        if path is None:
            return
        try:
            fd, size = _open_regular_sized(path)
        except OSError as exc:
            ahead.append(_Opened(None, exc))
            return
        try:
            ahead.append(_Opened((fd, on_open(fd, size)), None))
        except BaseException:
            os.close(fd)
            raise

    try:
        for _ in range(READ_AHEAD_FILES):
            open_next()
        while ahead:
            file = ahead.popleft()
            open_next()
            yield file
    finally:
        for file in ahead:
            if file.opened is not None:
                os.close(file.opened[0])


def _read_ahead(fd: int, size: int) -> None:
    if 0 < size <= READ_AHEAD_MAX_BYTES:  # (a length of 0 would advise the whole file)
        host.current().read_ahead(fd, size)


def _hash_fd(fd: int) -> tuple[str, int]:
    """BLAKE3 of the rest of `fd`, single-threaded (Rayon threads cost more than they give on small
    files, and the pool already runs one worker per core). Returns (16 hex chars, bytes read)."""
    hasher = blake3.blake3()
    view = _read_view()
    size = 0
    with open(fd, "rb", buffering=0, closefd=False) as reader:
        while n := reader.readinto(view):
            hasher.update(view[:n])
            size += n
    return hasher.hexdigest(length=HASH_HEX_CHARS // 2), size


def _read_view() -> memoryview:
    """A page-aligned 1 MiB buffer: the kernel copies into it ~4x faster than into a heap bytearray
    of that size, which glibc places 16 bytes past a page boundary (performance-floor.md §0.1)."""
    global _buffer
    if _buffer is None:
        _buffer = mmap.mmap(-1, READ_CHUNK)
    return memoryview(_buffer)


def _is_cancelled() -> bool:
    return _cancel is not None and _cancel.is_set()


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
