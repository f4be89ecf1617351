"""The byte-work functions called in-process on real files: hashes as b3sum computes them, durable
copies that never leave a partial file under the final name, re-hashes that tell a read error
from a mismatch."""

import errno
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar import host
from sidecar.workers import bytework
from sidecar.workers.bytework import (
    COPY_CHUNK,
    READ_CHUNK,
    TEMP_SUFFIX,
    CopyOutcome,
    CopyRequest,
    StageOutcome,
    StageRequest,
    ValidateRequest,
    copy_files,
    hash_files,
    init_worker,
    stage_files,
    validate_files,
)
from tests.support.filesystems import cached_within, page_cached


def b3sum(path: Path) -> str:
    out = subprocess.run(
        [shutil.which("b3sum") or "/usr/bin/b3sum", "--no-names", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()[:16]


def write_random(path: Path, size: int) -> Path:
    """Real (not sparse) data; a repeated random block keeps big files cheap to make."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(min(size, 1 << 20) or 1)
    with path.open("wb") as f:
        remaining = size
        while remaining:
            n = min(remaining, len(block))
            f.write(block[:n])
            remaining -= n
    return path


def temps_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


def digest_of(path: Path) -> str:
    outcome = hash_files([str(path)])[0]
    assert outcome.hash is not None, outcome.error
    return outcome.hash


@pytest.fixture(autouse=True)
def no_cancel_flag() -> Iterator[None]:
    init_worker(None)
    yield
    init_worker(None)


class Tmpfs:
    """A small tmpfs mounted for one test (we run as root here); unmounted at teardown."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mounted: list[Path] = []

    def mount(self, name: str, options: str) -> Path:
        where = self.root / name
        where.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.fail(
                f"could not mount a tmpfs at {where} (these tests need root and mount rights): "
                f"{done.stderr.strip()}"
            )
        self.mounted.append(where)
        return where


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Tmpfs]:
    if sys.platform != "linux":
        pytest.skip("a tmpfs of a given size is Linux's (macOS and Windows CI runs)")
    mounts = Tmpfs(tmp_path)
    yield mounts
    for where in reversed(mounts.mounted):
        subprocess.run(["umount", str(where)], check=True)


# -- hashing ---------------------------------------------------------------------------------------


def test_hash_matches_b3sum_and_reports_missing_files_without_failing_the_rest(tmp_path: Path) -> None:
    files = [
        write_random(tmp_path / "empty", 0),
        write_random(tmp_path / "one", 1),
        write_random(tmp_path / "mib_plus_one", (1 << 20) + 1),
        write_random(tmp_path / "few_mb", 5_300_017),
    ]
    paths = [str(f) for f in files]
    paths.insert(2, str(tmp_path / "missing"))
    outcomes = hash_files(paths)
    assert outcomes[2].hash is None and outcomes[2].size is None
    assert outcomes[2].error == "No such file or directory"
    del outcomes[2]
    for path, outcome in zip(files, outcomes, strict=True):
        assert outcome.error is None
        assert outcome.hash == b3sum(path)
        assert outcome.size == path.stat().st_size


def test_hash_refuses_what_is_not_a_regular_file_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # opening it for reading would block forever without O_NONBLOCK
    outcomes = hash_files([str(fifo), str(tmp_path)])
    assert [o.error for o in outcomes] == ["Not a regular file", "Not a regular file"]


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd" if sys.platform == "linux" else "/dev/fd"))


def test_files_opened_ahead_keep_their_order_and_their_own_errors(tmp_path: Path) -> None:
    """More files than are opened ahead, with files that cannot be opened among them: each outcome
    is its own file's, for hashing and validating alike, and no descriptor is left open."""
    count = bytework.READ_AHEAD_FILES * 2 + 3
    paths = [str(write_random(tmp_path / f"{i:02d}.jpg", 1000 + i * 4099)) for i in range(count)]
    os.mkfifo(tmp_path / "pipe")
    paths[0] = str(tmp_path / "missing.jpg")
    paths[bytework.READ_AHEAD_FILES] = str(tmp_path / "pipe")
    paths[-1] = str(tmp_path / "missing-too.jpg")
    bad = {0: "No such file or directory", bytework.READ_AHEAD_FILES: "Not a regular file"}
    bad[count - 1] = "No such file or directory"
    before = open_descriptors()

    hashes = hash_files(paths)
    validations = validate_files([ValidateRequest(p, "0" * 16) for p in paths])

    for i, (path, hashed, validated) in enumerate(zip(paths, hashes, validations, strict=True)):
        if i in bad:
            assert (hashed.hash, hashed.error) == (None, bad[i])
            assert (validated.hash, validated.error) == (None, bad[i])
        else:
            assert (hashed.hash, hashed.size) == (b3sum(Path(path)), Path(path).stat().st_size)
            assert (validated.hash, validated.matches, validated.error) == (hashed.hash, False, None)
    assert open_descriptors() == before


def test_only_files_of_one_read_are_read_ahead(tmp_path: Path) -> None:
    """A bigger file is left to the kernel's own read-ahead, which its first read starts."""
    if not hasattr(os, "RWF_NOWAIT"):
        pytest.skip("preadv(RWF_NOWAIT), which tells cached pages from uncached ones, is Linux's")
    small = write_random(tmp_path / "small.jpg", bytework.READ_AHEAD_MAX_BYTES)
    big = write_random(tmp_path / "big.jpg", bytework.READ_AHEAD_MAX_BYTES + 1)
    fds = [os.open(p, os.O_RDONLY) for p in (big, small)]
    try:
        for fd in fds:  # the big one first: advised, it would be read before the small one
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            bytework._read_ahead(fd, os.fstat(fd).st_size)
        assert cached_within(fds[1], bytework.READ_AHEAD_MAX_BYTES - 1, seconds=10)
        assert not page_cached(fds[0], 0)
    finally:
        for fd in fds:
            os.close(fd)


def test_a_failure_mid_batch_leaves_no_descriptor_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [str(write_random(tmp_path / f"{i}.jpg", 5000)) for i in range(bytework.READ_AHEAD_FILES * 2)]
    hashed: list[int] = []
    real = bytework._hash_fd

    def fail_on_the_fifth(fd: int) -> tuple[str, int]:
        hashed.append(fd)
        if len(hashed) == 5:
            raise RuntimeError("a bug in the middle of a batch")
        return real(fd)

    monkeypatch.setattr(bytework, "_hash_fd", fail_on_the_fifth)
    before = open_descriptors()
    with pytest.raises(RuntimeError) as raised:  # kept: its traceback holds the call's frame
        hash_files(paths)
    assert open_descriptors() == before
    assert str(raised.value) == "a bug in the middle of a batch"


# -- copying ---------------------------------------------------------------------------------------


def request(source: Path, target: Path, **kw: bool) -> CopyRequest:
    return CopyRequest(str(source), str(target), digest_of(source), **kw)


def test_copy_creates_the_folder_and_an_identical_file_with_no_temp_left(tmp_path: Path) -> None:
    source = write_random(tmp_path / "src" / "clip.mov", 3 * COPY_CHUNK + 12345)
    target = tmp_path / "archive" / "a" / "b" / "0123456789abcdef.mov"
    [outcome] = copy_files([request(source, target)])
    assert outcome == CopyOutcome(True, "copy", source.stat().st_size, None, None)  # ext4: no reflink
    assert target.read_bytes() == source.read_bytes()
    assert target.stat().st_ino != source.stat().st_ino
    assert temps_under(tmp_path) == []


@pytest.fixture
def linux_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The Linux host even in the generic test mode (AUS_PLATFORM=generic): its flush batching."""
    monkeypatch.setattr(host, "current", host.native())
    yield


def test_a_calls_files_in_one_folder_make_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    real = os.makedirs

    def makedirs(name: str, *args: object, **kwargs: bool) -> None:
        made.append(name)
        real(name, **kwargs)

    sources = [write_random(tmp_path / f"{i}.jpg", 100 + i) for i in range(5)]
    (tmp_path / "archive").mkdir()  # so makedirs calls itself for no parent
    monkeypatch.setattr(os, "makedirs", makedirs)
    folders = [tmp_path / "archive" / ("a" if i < 3 else "b") for i in range(5)]
    outcomes = copy_files([request(s, f / s.name) for s, f in zip(sources, folders, strict=True)])
    assert [o.created for o in outcomes] == [True] * 5
    assert made == [str(tmp_path / "archive" / "a"), str(tmp_path / "archive" / "b")]
    staged = stage_files([StageRequest(str(s), str(tmp_path / "staging" / s.name)) for s in sources])
    assert all(o.error is None for o in staged)
    assert made[2:] == [str(tmp_path / "staging")]


@pytest.mark.usefixtures("linux_host")
def test_many_small_files_are_flushed_with_one_syncfs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = bytework._syncfs

    def counted(folder: str) -> bool:
        calls.append(folder)
        return real(folder)

    monkeypatch.setattr(bytework, "_syncfs", counted)
    sources = [write_random(tmp_path / "src" / f"{i}.jpg", 1000 + i) for i in range(20)]
    targets = [tmp_path / "archive" / f"d{i % 3}" / f"{i}.jpg" for i in range(20)]
    outcomes = copy_files([request(s, t) for s, t in zip(sources, targets, strict=True)])
    assert [o.error for o in outcomes] == [None] * 20
    assert len(calls) == 1
    assert all(t.read_bytes() == s.read_bytes() for s, t in zip(sources, targets, strict=True))
    assert temps_under(tmp_path) == []


def test_few_large_files_are_flushed_one_by_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    fsynced: list[int] = []
    real_fsync = os.fsync

    def fake_syncfs(folder: str) -> bool:
        synced.append(folder)
        return True

    def counted_fsync(fd: int) -> None:
        fsynced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(bytework, "_syncfs", fake_syncfs)
    monkeypatch.setattr(os, "fsync", counted_fsync)
    sources = [write_random(tmp_path / "src" / f"{i}.mov", 6 << 20) for i in range(2)]
    outcomes = copy_files([request(s, tmp_path / "archive" / s.name) for s in sources])
    assert [o.created for o in outcomes] == [True, True]
    assert synced == []
    assert len(fsynced) == 3  # two temps, then their one folder


@pytest.mark.parametrize("unavailable", [["copy_file_range"], ["copy_file_range", "sendfile"]])
def test_copy_falls_back_when_the_kernel_cannot_copy_this_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unavailable: list[str]
) -> None:
    def refuse(*args: object) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    for name in unavailable:
        monkeypatch.setattr(os, name, refuse)
    source = write_random(tmp_path / "src.mov", 2 * COPY_CHUNK + 777)
    target = tmp_path / "archive" / "x.mov"
    [outcome] = copy_files([request(source, target)])
    assert (outcome.created, outcome.strategy, outcome.error) == (True, "copy", None)
    assert target.read_bytes() == source.read_bytes()


def test_a_good_existing_copy_is_kept_untouched(tmp_path: Path) -> None:
    source = write_random(tmp_path / "src.jpg", 200_000)
    target = tmp_path / "archive" / "x.jpg"
    target.parent.mkdir()
    target.write_bytes(source.read_bytes())
    before = target.stat()
    [outcome] = copy_files([request(source, target)])
    assert outcome == CopyOutcome(False, None, 0, None, None)
    after = target.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_damaged_existing_copy_is_replaced(tmp_path: Path) -> None:
    source = write_random(tmp_path / "src.jpg", 200_000)
    target = tmp_path / "archive" / "x.jpg"
    target.parent.mkdir()
    target.write_bytes(source.read_bytes()[:-1] + b"!")
    [outcome] = copy_files([request(source, target)])
    assert outcome.created and outcome.error is None
    assert target.read_bytes() == source.read_bytes()
    assert temps_under(tmp_path) == []


def test_something_else_under_the_target_name_is_a_target_error(tmp_path: Path) -> None:
    source = write_random(tmp_path / "src.jpg", 10)
    target = tmp_path / "archive" / "x.jpg"
    target.mkdir(parents=True)
    [outcome] = copy_files([request(source, target)])
    assert outcome.error_kind == "target" and not outcome.created
    assert target.is_dir()


def test_a_missing_source_is_a_source_error_and_leaves_nothing(tmp_path: Path) -> None:
    good = write_random(tmp_path / "good.jpg", 5000)
    target = tmp_path / "archive" / "gone.jpg"
    outcomes = copy_files(
        [
            CopyRequest(str(tmp_path / "gone.jpg"), str(target), "0" * 16),
            request(good, tmp_path / "archive" / "good.jpg"),
        ]
    )
    assert outcomes[0].error_kind == "source" and not outcomes[0].created
    assert outcomes[0].error == "Could not read the source: No such file or directory"
    assert outcomes[1].created and outcomes[1].error is None
    assert not target.exists()
    assert temps_under(tmp_path) == []


def test_a_source_that_shrinks_while_copied_is_a_source_error(tmp_path: Path) -> None:
    source = write_random(tmp_path / "src.mov", 3 * COPY_CHUNK)
    target = tmp_path / "archive" / "x.mov"
    req = request(source, target)

    class TruncateMidCopy:
        """Not a cancel: the check between chunks is where the source gets cut short."""

        calls = 0

        def is_set(self) -> bool:
            self.calls += 1
            if self.calls == 3:  # the request's check, before chunk 1, then after chunk 1
                os.truncate(source, COPY_CHUNK + 10)
            return False

    init_worker(TruncateMidCopy())
    [outcome] = copy_files([req])
    assert outcome.error_kind == "source"
    assert outcome.error == (
        f"The source changed while it was copied: expected {3 * COPY_CHUNK} bytes, copied {COPY_CHUNK + 10}"
    )
    assert not target.exists()
    assert temps_under(tmp_path) == []


def test_hardlinks_only_when_allowed(tmp_path: Path) -> None:
    source = write_random(tmp_path / "src.jpg", 4000)
    [linked, copied] = copy_files(
        [
            request(source, tmp_path / "archive" / "linked.jpg", allow_hardlink=True),
            request(source, tmp_path / "archive" / "copied.jpg"),
        ]
    )
    assert (linked.strategy, linked.bytes) == ("hardlink", 4000)
    assert (tmp_path / "archive" / "linked.jpg").stat().st_ino == source.stat().st_ino
    assert copied.strategy == "copy"
    assert (tmp_path / "archive" / "copied.jpg").stat().st_ino != source.stat().st_ino
    assert temps_under(tmp_path) == []


def test_disk_full_is_reported_and_cleaned_up_while_a_small_file_still_fits(
    tmp_path: Path, tmpfs: Tmpfs
) -> None:
    archive = tmpfs.mount("small", "size=2m")
    big = write_random(tmp_path / "big.mov", 5_000_000)
    small = write_random(tmp_path / "small.jpg", 10_000)
    big_target = archive / "org" / "big.mov"
    small_target = archive / "org" / "small.jpg"
    [big_out, small_out] = copy_files([request(big, big_target), request(small, small_target)])
    assert big_out == CopyOutcome(False, None, 0, f"Disk full: {big_target}", "disk_full")
    assert not big_target.exists()
    assert temps_under(archive) == []
    assert small_out.created and small_out.error is None
    assert small_target.read_bytes() == small.read_bytes()


def test_a_read_only_archive_is_a_target_error(tmp_path: Path, tmpfs: Tmpfs) -> None:
    archive = tmpfs.mount("ro", "size=1m,ro")
    source = write_random(tmp_path / "a.jpg", 100)
    [outcome] = copy_files([request(source, archive / "org" / "a.jpg")])
    assert outcome.error_kind == "target"
    assert outcome.error is not None and "Read-only file system" in outcome.error


def test_cancelled_before_starting(tmp_path: Path) -> None:
    event = threading.Event()
    event.set()
    init_worker(event)
    source = write_random(tmp_path / "big.mov", 200 << 20)
    target = tmp_path / "archive" / "big.mov"
    [outcome] = copy_files([CopyRequest(str(source), str(target), "0" * 16)])
    assert outcome == CopyOutcome(False, None, 0, "Cancelled", "cancelled")
    assert not target.exists()
    assert temps_under(tmp_path) == []


def test_cancelled_mid_copy_removes_the_temp(tmp_path: Path) -> None:
    class SetAfterFirstChunk:
        calls = 0
        temp_size_when_set = -1

        def is_set(self) -> bool:
            self.calls += 1
            if self.calls == 3:  # the request's check, before chunk 1, then after chunk 1
                [temp] = temps_under(tmp_path)
                self.temp_size_when_set = temp.stat().st_size
            return self.calls >= 3

    flag = SetAfterFirstChunk()
    init_worker(flag)
    source = write_random(tmp_path / "big.mov", 200 << 20)
    target = tmp_path / "archive" / "big.mov"
    [outcome] = copy_files([CopyRequest(str(source), str(target), "0" * 16)])
    assert outcome == CopyOutcome(False, None, 0, "Cancelled", "cancelled")
    # A kernel-side copy moves COPY_CHUNK a step; read/write (the generic host) one buffer.
    assert flag.temp_size_when_set == (COPY_CHUNK if host.current().kernel_copies else READ_CHUNK)
    assert not target.exists()
    assert temps_under(tmp_path) == []


# -- validating ------------------------------------------------------------------------------------


def test_validate_reads_from_the_medium_and_tells_mismatch_from_read_error(tmp_path: Path) -> None:
    source = write_random(tmp_path / "src.jpg", 3_000_000)
    expected = digest_of(source)
    copy = tmp_path / "archive" / "x.jpg"
    copy_files([CopyRequest(str(source), str(copy), expected)])
    [good] = validate_files([ValidateRequest(str(copy), expected)])
    assert (good.hash, good.matches, good.error) == (expected, True, None)
    assert good.from_medium is (sys.platform != "win32")  # DONTNEED, F_NOCACHE; Windows has none

    with copy.open("r+b") as f:
        f.seek(1_500_000)
        f.write(b"\x00corrupt\x00")
    [bad, missing] = validate_files(
        [ValidateRequest(str(copy), expected), ValidateRequest(str(tmp_path / "nope.jpg"), expected)]
    )
    assert bad.matches is False and bad.error is None
    assert bad.hash == b3sum(copy) != expected
    assert missing.matches is False and missing.hash is None
    assert missing.error == "No such file or directory"


def test_copy_outcome_never_claims_a_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flush failure (an I/O error surfacing at fsync) fails that file and removes its temp."""
    source = write_random(tmp_path / "src.mov", 6 << 20)
    target = tmp_path / "archive" / "x.mov"

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    [outcome] = copy_files([request(source, target)])
    assert outcome.error_kind == "target" and outcome.error == f"Could not write {target}: Input/output error"
    assert not target.exists()
    assert temps_under(tmp_path) == []


# -- reading once ----------------------------------------------------------------------------------


def test_staging_reads_once_hashes_what_it_writes_and_reports_per_file(tmp_path: Path) -> None:
    sources = [write_random(tmp_path / f"src{i}.mp4", size) for i, size in enumerate((0, 1, 3_000_001))]
    staged = [tmp_path / "staging" / f"{i}.mp4" for i in range(3)]
    missing = tmp_path / "gone.mp4"
    outcomes = stage_files(
        [StageRequest(str(s), str(t)) for s, t in zip(sources, staged, strict=True)]
        + [StageRequest(str(missing), str(tmp_path / "staging" / "x.mp4"))]
    )
    for source, target, outcome in zip(sources, staged, outcomes[:3], strict=True):
        assert outcome == StageOutcome(b3sum(source), source.stat().st_size, None, None)
        assert target.read_bytes() == source.read_bytes()
    assert outcomes[3].error_kind == "source" and outcomes[3].hash is None
    assert not (tmp_path / "staging" / "x.mp4").exists()


def test_staging_starts_writing_a_big_file_to_the_medium_chunk_by_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So the flush before the hash is recorded waits for the tail only: on a card, the next file is
    read sooner (the window's last flush held the reads up for 45-135 ms). A small file is left to
    the one flush of its batch."""
    this = type(host.current())
    started: list[tuple[str, int, int]] = []
    monkeypatch.setattr(
        this,
        "start_writeback",
        lambda _, fd, offset, n: started.append((os.readlink(f"/proc/self/fd/{fd}"), offset, n)),
    )
    big, small = (
        write_random(tmp_path / "big.mp4", 2 * READ_CHUNK + 5),
        write_random(tmp_path / "small.jpg", 1000),
    )
    staged = [tmp_path / "staging" / "1.mp4", tmp_path / "staging" / "2.jpg"]
    outcomes = stage_files([StageRequest(str(s), str(t)) for s, t in zip((big, small), staged, strict=True)])
    assert [o.error for o in outcomes] == [None, None]
    chunks = [(0, READ_CHUNK), (READ_CHUNK, READ_CHUNK), (2 * READ_CHUNK, 5)]
    assert started == ([(str(staged[0]), *chunk) for chunk in chunks] if this.starts_writeback else [])
    assert staged[0].read_bytes() == big.read_bytes()


def test_staging_retries_a_transient_read_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_random(tmp_path / "share.mov", 100_000)
    real_open = bytework._open_regular
    calls = 0

    def flaky_open(path: str) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError(errno.ETIMEDOUT, "Connection timed out")
        return real_open(path)

    monkeypatch.setattr(bytework, "_open_regular", flaky_open)
    monkeypatch.setattr(bytework, "STAGE_RETRY_DELAYS_S", (0.0,))
    [outcome] = stage_files([StageRequest(str(source), str(tmp_path / "staged.mov"))])
    assert outcome.hash == b3sum(source) and calls == 2


def test_staging_on_a_full_disk_is_disk_full_and_leaves_nothing(tmp_path: Path, tmpfs: Tmpfs) -> None:
    staging = tmpfs.mount("staging", "size=1m")
    source = write_random(tmp_path / "big.mov", 3_000_000)
    [outcome] = stage_files([StageRequest(str(source), str(staging / "1.mov"))])
    assert outcome.error_kind == "disk_full" and outcome.hash is None
    assert list(staging.iterdir()) == []
