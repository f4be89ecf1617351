"""The test tools themselves: the card emulator serves a folder read-only, counts what is read from
it and fails on command; loop mounts are undone whatever happens inside them."""

import errno
import os
import subprocess
from pathlib import Path

import pytest

from tests.filesystems.conftest import StartCard
from tests.support.card import card_emulator
from tests.support.cards import photo_card, write
from tests.support.filesystems import is_mounted, loop_filesystem, mount_unavailable


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    card = photo_card(tmp_path / "folder", photos=2, photo_bytes=300_000, videos=1, video_bytes=1_000_000)
    write(card, "MISC/empty.txt", 1)
    return card


def test_the_emulator_serves_the_folder_read_only(card: StartCard, folder: Path):
    emulator = card(folder)
    served = sorted(str(p.relative_to(emulator.path)) for p in emulator.path.rglob("*") if p.is_file())
    assert served == sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    for name in served:
        assert (emulator.path / name).read_bytes() == (folder / name).read_bytes()
    with pytest.raises(OSError) as refused:
        (emulator.path / "DCIM" / "100CAMRA" / "IMG_0001.JPG").write_bytes(b"x")
    assert refused.value.errno in (errno.EROFS, errno.EACCES)
    with pytest.raises(OSError):
        (emulator.path / "new.jpg").write_bytes(b"x")
    assert not (folder / "new.jpg").exists()


def test_the_emulator_counts_the_bytes_read_from_it_per_file_and_in_all(card: StartCard, folder: Path):
    emulator = card(folder)
    photo, video = "DCIM/100CAMRA/IMG_0001.JPG", "DCIM/100CAMRA/MVI_0001.MP4"
    assert emulator.bytes_read() == 0

    (emulator.path / photo).read_bytes()
    (emulator.path / video).read_bytes()
    assert emulator.bytes_read(photo) == 300_000
    assert emulator.bytes_read(video) == 1_000_000
    assert emulator.bytes_read("DCIM/100CAMRA/IMG_0002.JPG") == 0
    assert emulator.bytes_read() == 1_300_000

    # Without the kernel's cache kept across opens, a second read comes from the card again.
    (emulator.path / photo).read_bytes()
    assert emulator.bytes_read(photo) == 600_000

    emulator.reset_counts()
    assert emulator.stats()["total"] == 0 and emulator.stats()["files"] == {}


def test_with_the_kernel_cache_kept_a_second_read_is_served_from_memory(card: StartCard, folder: Path):
    emulator = card(folder, kernel_cache=True)
    photo = "DCIM/100CAMRA/IMG_0001.JPG"
    (emulator.path / photo).read_bytes()
    (emulator.path / photo).read_bytes()
    assert emulator.bytes_read(photo) == 300_000


def test_one_file_fails_with_eio_on_command_and_the_others_still_read(card: StartCard, folder: Path):
    emulator = card(folder, rate=50e6, burst=1 << 20)
    bad, good = "DCIM/100CAMRA/IMG_0002.JPG", "DCIM/100CAMRA/IMG_0001.JPG"
    emulator.fail(bad)
    with pytest.raises(OSError) as failed:
        (emulator.path / bad).read_bytes()
    assert failed.value.errno == errno.EIO
    assert os.stat(emulator.path / bad).st_size == 300_000  # only its reads fail, as a bad sector's
    assert (emulator.path / good).read_bytes() == (folder / good).read_bytes()

    emulator.heal(bad)
    assert (emulator.path / bad).read_bytes() == (folder / bad).read_bytes()


def test_a_pulled_card_fails_every_stat_listing_open_and_read_until_it_is_back(card: StartCard, folder: Path):
    emulator = card(folder)
    photo = emulator.path / "DCIM" / "100CAMRA" / "IMG_0001.JPG"
    with open(photo, "rb") as already_open:
        emulator.pull()
        for operation in (
            lambda: os.stat(emulator.path),
            lambda: os.stat(photo),
            lambda: os.listdir(emulator.path / "DCIM"),
            lambda: open(photo, "rb").close(),
            lambda: already_open.read(),
        ):
            with pytest.raises(OSError) as pulled:
                operation()
            assert pulled.value.errno == errno.EIO
        assert emulator.stats()["pulled"] is True

        emulator.insert()
        assert photo.read_bytes() == (folder / "DCIM" / "100CAMRA" / "IMG_0001.JPG").read_bytes()


def test_the_emulator_is_unmounted_and_stopped_even_when_the_code_inside_fails(tmp_path: Path, folder: Path):
    reason = mount_unavailable()
    if reason is not None:
        pytest.skip(f"needs real mounts: {reason}")
    with pytest.raises(RuntimeError), card_emulator(folder, tmp_path / "where") as emulator:
        assert is_mounted(emulator.path)
        raise RuntimeError("a failing test")
    assert not is_mounted(emulator.path)
    assert emulator.process.returncode is not None


def test_a_loop_mount_is_unmounted_and_detached_even_when_the_code_inside_fails(tmp_path: Path):
    reason = mount_unavailable()
    if reason is not None:
        pytest.skip(f"needs real mounts: {reason}")
    with pytest.raises(RuntimeError), loop_filesystem("ext4", tmp_path, 32) as fs:
        busy = os.open(fs.path / "held-open", os.O_CREAT | os.O_WRONLY)  # a file still held open
        assert is_mounted(fs.path)
        raise RuntimeError("a failing test")
    os.close(busy)
    assert not is_mounted(fs.path)
    attached = subprocess.run(
        ["losetup", "--list", "--noheadings", "-O", "NAME"], capture_output=True, text=True
    )
    assert fs.device not in attached.stdout.split()
    assert not fs.image.exists()


@pytest.mark.parametrize(
    ("fstype", "kernel_type"), [("ext4", "ext4"), ("btrfs", "btrfs"), ("xfs", "xfs"), ("exfat", "fuseblk")]
)
def test_each_filesystem_is_mounted_from_its_own_loop_device(mounted, fstype: str, kernel_type: str):
    fs = mounted(fstype)
    [line] = [
        line.split()
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.split()[1] == str(fs.path)
    ]
    assert line[0] == fs.device and line[2] == kernel_type  # exFAT: exfat-fuse, a FUSE block filesystem
    (fs.path / "written").write_bytes(b"x" * 10_000)
    assert (fs.path / "written").stat().st_size == 10_000


def test_the_card_is_pulled_the_moment_it_has_served_the_bytes_asked(card: StartCard, folder: Path):
    emulator = card(folder)
    photo, video = "DCIM/100CAMRA/IMG_0001.JPG", "DCIM/100CAMRA/MVI_0001.MP4"
    emulator.pull_after(500_000)
    (emulator.path / photo).read_bytes()  # 300 000 bytes: still in
    with pytest.raises(OSError) as pulled:
        (emulator.path / video).read_bytes()  # pulled partway through
    assert pulled.value.errno == errno.EIO
    stats = emulator.stats()
    assert stats["pulled"] and 500_000 <= stats["total"] < 1_300_000
    assert stats["open_at_pull"] == ["/" + video]
    with pytest.raises(OSError):
        os.stat(emulator.path)
    emulator.insert()
    assert (emulator.path / video).read_bytes() == (folder / video).read_bytes()
