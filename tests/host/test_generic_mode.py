"""AUS_PLATFORM=generic, the test mode: the sidecar's byte work, flushes, mounts and tools use plain
POSIX only. Every Linux extra is trapped at the OS's door (os.copy_file_range, os.sendfile,
fcntl.ioctl, loading libc for syncfs/sync_file_range, reading /proc) and the same work under the
native host shows the traps do catch them; the pool's spawned workers choose the same way."""

import builtins
import ctypes
import fcntl
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sidecar import host
from sidecar.pipeline.bytepool import BytePool
from sidecar.pipeline.sources import network_sources
from sidecar.tools.discovery import tied_to_sidecar
from sidecar.workers import bytework
from sidecar.workers.bytework import (
    COPY_CHUNK,
    CopyOutcome,
    CopyRequest,
    StageRequest,
    ValidateRequest,
    copy_files,
    hash_files,
    stage_files,
    validate_files,
)

# What the generic mode leaves out is Linux's; elsewhere the native host is the one to test.
pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="the generic mode is proved against Linux's calls"
)
LINUX_EXTRAS = ("copy_file_range", "sendfile", "ioctl", "libc", "/proc")


@contextmanager
def trapped() -> Iterator[dict[str, int]]:
    """Count every call of a Linux-only primitive (and fsync) made inside the block; the real call
    still happens, so the work is unchanged."""
    calls = dict.fromkeys((*LINUX_EXTRAS, "fsync"), 0)
    saved: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, key: str, when: Callable[..., bool] = lambda *a: True) -> None:
        real = getattr(owner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            if when(*args):
                calls[key] += 1
            return real(*args, **kwargs)

        saved.append((owner, name, real))
        setattr(owner, name, counted)

    wrap(os, "copy_file_range", "copy_file_range")
    wrap(os, "sendfile", "sendfile")
    wrap(fcntl, "ioctl", "ioctl")
    wrap(ctypes, "CDLL", "libc")  # syncfs and sync_file_range are reached through libc
    wrap(os, "fsync", "fsync")
    wrap(builtins, "open", "/proc", lambda file, *a: str(file).startswith("/proc"))
    try:
        yield calls
    finally:
        for owner, name, real in reversed(saved):
            setattr(owner, name, real)


def use_host(monkeypatch: pytest.MonkeyPatch, forced: str | None) -> host.Generic:
    if forced is None:
        monkeypatch.delenv(host.ENV, raising=False)
    else:
        monkeypatch.setenv(host.ENV, forced)
    host.current.cache_clear()  # the fixture below clears it again after the test
    return host.current()


@pytest.fixture(autouse=True)
def fresh_host_after() -> Iterator[None]:
    yield
    host.current.cache_clear()
    bytework.init_worker(None)


def write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def requests_for(tmp_path: Path) -> list[CopyRequest]:
    """Twenty small files (a syncfs batch under Linux) and one of several chunks (sync_file_range)."""
    sources = [write(tmp_path / "src" / f"{i}.jpg", 1000 + i) for i in range(20)]
    sources.append(write(tmp_path / "src" / "clip.mov", 2 * COPY_CHUNK + 99))
    requests = []
    for i, source in enumerate(sources):
        digest = hash_files([str(source)])[0].hash
        assert digest is not None
        requests.append(
            CopyRequest(str(source), str(tmp_path / "archive" / f"d{i % 2}" / source.name), digest)
        )
    return requests


def copy_and_check(tmp_path: Path) -> tuple[list[CopyOutcome], dict[str, int]]:
    requests = requests_for(tmp_path)
    with trapped() as calls:
        outcomes = copy_files(requests)
    for request, outcome in zip(requests, outcomes, strict=True):
        assert outcome.created and outcome.error is None
        assert Path(request.target).read_bytes() == Path(request.source).read_bytes()
    return outcomes, calls


def test_the_generic_host_copies_by_read_write_and_fsyncs_each_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    assert use_host(monkeypatch, "generic").name == "generic"
    outcomes, calls = copy_and_check(tmp_path)
    assert {o.strategy for o in outcomes} == {"copy"}
    assert {k: calls[k] for k in LINUX_EXTRAS} == dict.fromkeys(LINUX_EXTRAS, 0)
    assert calls["fsync"] == 21 + 2  # every temp, then each of the two target folders


def test_the_traps_catch_the_linux_host_doing_all_of_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert use_host(monkeypatch, None).name == "linux"
    outcomes, calls = copy_and_check(tmp_path)
    # FICLONE is tried on every file, then copy_file_range where it could not clone; libc brings
    # syncfs for the small files and sync_file_range for the big one.
    copies = sum(o.strategy == "copy" for o in outcomes)
    assert calls["ioctl"] == 21 and calls["copy_file_range"] >= copies and calls["libc"] == 1
    assert calls["fsync"] < 21


def test_staging_validation_and_the_rest_make_no_linux_call_either(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    use_host(monkeypatch, "generic")
    source = write(tmp_path / "share" / "a.jpg", 5000)
    with trapped() as calls:
        [staged] = stage_files([StageRequest(str(source), str(tmp_path / "staging" / "a"))])
        [valid] = validate_files([ValidateRequest(str(tmp_path / "staging" / "a"), staged.hash or "")])
        network = network_sources([str(source)])  # what the orchestrator asks
        medium = host.current().medium(str(source))
        argv = tied_to_sidecar(["exiftool", "-ver"])
    assert staged.error is None and valid.matches
    assert valid.from_medium  # posix_fadvise(DONTNEED) is POSIX
    assert not network and medium.fstype is None and not medium.read_only
    assert argv == ["exiftool", "-ver"]  # no setpriv: the process group is the generic tie
    assert {k: calls[k] for k in LINUX_EXTRAS} == dict.fromkeys(LINUX_EXTRAS, 0)


def test_a_host_this_machine_cannot_be_is_refused(monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(ValueError, match="AUS_PLATFORM='darwin'"):
        use_host(monkeypatch, "darwin")
    assert use_host(monkeypatch, "linux").name == "linux"


def hosts_and_linux_calls(requests: list[CopyRequest]) -> list[tuple[str, str | None, int]]:
    """Runs in a pool worker: its host, and each copy's strategy with the Linux calls it made."""
    with trapped() as calls:
        outcomes = copy_files(requests)
    made = sum(calls[k] for k in LINUX_EXTRAS)
    return [(host.current().name, o.strategy, made) for o in outcomes]


def failed(item: object, message: str) -> tuple[str, str | None, int]:
    raise AssertionError(message)


@pytest.mark.parametrize(("forced", "expected"), [("generic", "generic"), (None, "linux")])
async def test_the_pools_workers_choose_the_host_as_the_sidecar_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forced: str | None, expected: str
):
    use_host(monkeypatch, forced)
    requests = requests_for(tmp_path)
    pool = BytePool(1)
    try:
        results = await pool.run(hosts_and_linux_calls, requests, [1] * len(requests), failure=failed)
    finally:
        await pool.close()
    assert {name for name, _, _ in results} == {expected}
    made = {m for _, _, m in results}  # one batch: one count
    if expected == "generic":
        assert made == {0} and {strategy for _, strategy, _ in results} == {"copy"}
    else:
        assert min(made) > 0
