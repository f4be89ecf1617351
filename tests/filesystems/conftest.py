"""Fixtures on real filesystems (tests/support/filesystems.py, tests/support/card.py): a source on
its own loop-mounted ext4 or on exFAT through FUSE, an archive on btrfs or xfs (reflink), and the
card emulator. Each is unmounted and detached at teardown, whatever the test did."""

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.card import CardEmulator, card_emulator
from tests.support.filesystems import Mounted, loop_filesystem, mount_unavailable

Mount = Callable[..., Mounted]
StartCard = Callable[..., CardEmulator]


def _mountable() -> None:
    reason = mount_unavailable()
    if reason is not None:
        pytest.skip(f"needs real mounts: {reason}")


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Mount]:
    """`mounted(fstype, size_mb=0, name=None)`: a new filesystem (ext4, btrfs, xfs, exfat) of its
    own, as many as a test wants; all unmounted and detached at teardown, last first."""
    _mountable()
    where = tmp_path / "mounts"
    where.mkdir()
    with contextlib.ExitStack() as stack:

        def mount(fstype: str, size_mb: int = 0, name: str | None = None) -> Mounted:
            return stack.enter_context(loop_filesystem(fstype, where, size_mb, name))

        yield mount


@pytest.fixture
def ext4_source(mounted: Mount) -> Mounted:
    return mounted("ext4", 256, "ext4-source")


@pytest.fixture
def exfat_source(mounted: Mount) -> Mounted:
    return mounted("exfat", 256, "exfat-card")


@pytest.fixture(params=["btrfs", "xfs"])
def cow_fs(request: pytest.FixtureRequest, mounted: Mount) -> Mounted:
    """A filesystem that clones (FICLONE): btrfs, then xfs with reflink=1."""
    return mounted(request.param, 0, f"{request.param}-archive")


@pytest.fixture
def card(tmp_path: Path) -> Iterator[StartCard]:
    """`card(folder, rate=0, burst=4 MiB, kernel_cache=False)`: the card emulator serving `folder`;
    stopped and unmounted at teardown."""
    _mountable()
    if not Path("/dev/fuse").exists():
        pytest.skip("needs FUSE: /dev/fuse is missing")
    with contextlib.ExitStack() as stack:
        started = 0

        def start(folder: Path, **options: object) -> CardEmulator:
            nonlocal started
            where = tmp_path / f"emulator-{started}"
            where.mkdir()
            started += 1
            return stack.enter_context(card_emulator(folder, where, **options))  # type: ignore[arg-type]

        yield start
