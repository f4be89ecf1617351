"""Each host's own rules, as far as Linux can run them: the mount tables of Linux and macOS parsed,
media told apart (network, read-only), Windows' UNC shares, each user-data folder, and the macOS
and Windows hosts' flush decisions driving the real copy worker here (their OS calls fall back to
fsync off their OS, so what is exercised is the worker's handling of them)."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar import host
from sidecar.host.darwin import Darwin, parse_mount_output
from sidecar.host.generic import Generic, Mount
from sidecar.host.linux import Linux, parse_mountinfo
from sidecar.host.windows import Windows
from sidecar.workers import bytework
from sidecar.workers.bytework import CopyRequest, copy_files, hash_files
from tests.support.filesystems import cached_within, page_cached


class Table(Generic):
    def __init__(self, mounts: list[Mount]) -> None:
        self._mounts = sorted(mounts, key=lambda m: len(m.point), reverse=True)

    def mounts(self) -> list[Mount]:
        return self._mounts


def test_the_longest_matching_mount_decides():
    table = Table(
        [
            Mount("/", "ext4"),
            Mount("/mnt/nas", "cifs"),
            Mount("/mnt/nas/usb", "vfat"),
            Mount("/srv/nfs", "nfs4"),
        ]
    )
    assert table.network_sources(["/mnt/nas/photos"])
    assert table.network_sources(["/home/a", "/srv/nfs/b"])
    assert not table.network_sources(["/mnt/nas/usb/DCIM"])
    assert not table.network_sources(["/mnt/nasty"])  # a prefix of the name is not the mount
    assert table.medium("/mnt/nas/x").network and table.medium("/mnt/nas/x").fstype == "cifs"


def test_linux_mountinfo_is_parsed_with_its_escapes_devices_and_read_only_flag():
    text = (
        "36 35 98:0 /mnt1 /mnt/my\\040disk rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"
        "37 35 0:52 / /mnt/share ro,relatime shared:7 - cifs //nas/share ro,vers=3.1.1\n"
        "38 35 8:17 / /media/ü rw - vfat /dev/sdb1 rw\n"
    )
    assert parse_mountinfo(text) == [
        Mount("/mnt/my disk", "ext3", False, (98, 0)),
        Mount("/mnt/share", "cifs", True, (0, 52)),
        Mount("/media/ü", "vfat", False, (8, 17)),
    ]


ON_LINUX = pytest.mark.skipif(sys.platform != "linux", reason="Linux's mount table and tmpfs")


@ON_LINUX
def test_this_machines_real_mount_table_is_read(tmp_path: Path):
    mounts = Linux().mounts()
    assert any(m.point == "/proc" and m.fstype == "proc" for m in mounts)
    assert not Linux().network_sources([str(tmp_path)])
    assert Linux().medium(str(tmp_path)).fstype is not None


@pytest.fixture
def read_only_tmpfs(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "ro"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(where)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.fail(f"could not mount a tmpfs (these tests need root): {done.stderr.strip()}")
    yield where
    subprocess.run(["umount", str(where)], check=True)


@ON_LINUX
def test_a_read_only_mount_is_told_by_linux_and_by_plain_statvfs(read_only_tmpfs: Path, tmp_path: Path):
    linux = Linux().medium(str(read_only_tmpfs))
    assert (linux.fstype, linux.read_only, linux.network, linux.removable) == ("tmpfs", True, False, None)
    assert Generic().medium(str(read_only_tmpfs)).read_only  # statvfs ST_RDONLY, no mount table
    assert not Linux().medium(str(tmp_path)).read_only


def test_macos_mount_output_is_parsed():
    output = (
        "/dev/disk3s1s1 on / (apfs, sealed, local, read-only, journaled)\n"
        "//me@nas._smb._tcp.local/Photos on /Volumes/Photos (smbfs, nodev, nosuid, mounted by me)\n"
        "/dev/disk4s1 on /Volumes/EOS DIGITAL (msdos, local, nodev, nosuid, noowners)\n"
    )
    mounts = parse_mount_output(output)
    assert mounts == [
        Mount("/Volumes/EOS DIGITAL", "msdos", False),
        Mount("/Volumes/Photos", "smbfs", False),
        Mount("/", "apfs", True),
    ]


def test_windows_unc_paths_are_network_shares():
    windows = Windows()
    assert windows.network_sources(["C:\\x", "\\\\nas\\photos\\2024"])
    assert windows.network_sources(["//nas/photos"])
    assert windows.network_sources(["\\\\?\\UNC\\nas\\photos"])  # the extended-length form
    assert not windows.network_sources(["\\\\?\\C:\\long\\path"])  # an extended-length local path
    assert not windows.network_sources(["\\\\.\\PhysicalDrive0"])  # a device


def test_each_hosts_user_data_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("APPDATA", str(tmp_path / "Roaming"))
    assert Linux().user_data_dir() == Generic().user_data_dir() == tmp_path / "xdg" / "au-archive-sidecar"
    assert Darwin().user_data_dir() == tmp_path / "Library" / "Application Support" / "au-archive-sidecar"
    assert Windows().user_data_dir() == tmp_path / "Roaming" / "au-archive-sidecar"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert Generic().user_data_dir() == tmp_path / ".config" / "au-archive-sidecar"


def test_only_the_linux_host_restores_the_library_path_for_tools(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LD_LIBRARY_PATH", "/bundle")
    monkeypatch.setenv("LD_LIBRARY_PATH_ORIG", "/usr/lib/x")
    assert Linux().child_env(frozen=True)["LD_LIBRARY_PATH"] == "/usr/lib/x"
    assert Linux().child_env(frozen=False)["LD_LIBRARY_PATH"] == "/bundle"
    monkeypatch.delenv("LD_LIBRARY_PATH_ORIG")
    assert "LD_LIBRARY_PATH" not in Linux().child_env(frozen=True)
    assert Darwin().child_env(frozen=True)["LD_LIBRARY_PATH"] == "/bundle"


@pytest.mark.parametrize(
    ("kind", "fsyncs"),
    [
        # macOS: each temp fsynced, then one full flush for the device (fsync here), then folders.
        (Darwin, 3 + 1 + 1),
        # Windows: each temp; a folder cannot be flushed (NTFS journals the rename).
        (Windows, 3),
    ],
)
def test_the_macos_and_windows_flush_decisions_drive_the_copy_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: type[Generic], fsyncs: int
):
    monkeypatch.setattr(host, "current", kind)  # a fresh host of that kind for every call
    counted: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        counted.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    bytework.init_worker(None)
    requests = []
    for i in range(3):
        source = tmp_path / f"{i}.jpg"
        source.write_bytes(os.urandom(100 + i))
        digest = hash_files([str(source)])[0].hash
        assert digest is not None
        requests.append(CopyRequest(str(source), str(tmp_path / "archive" / source.name), digest))
    outcomes = copy_files(requests)
    assert [(o.created, o.strategy) for o in outcomes] == [(True, "copy")] * 3
    assert len(counted) == fsyncs


def test_removable_media_are_told_by_sysfs_a_partition_by_its_disk(tmp_path: Path):
    """sysfs(5): /sys/dev/block/<major>:<minor> links to the device's folder; a partition's folder
    sits inside its disk's, which holds `removable`."""
    devices = tmp_path / "devices"
    for disk, flag in (("sdb", "1"), ("nvme0n1", "0")):
        (devices / disk / f"{disk}p1").mkdir(parents=True)
        (devices / disk / "removable").write_text(flag + "\n")
    links = tmp_path / "block"
    links.mkdir()
    (links / "8:16").symlink_to(devices / "sdb")
    (links / "8:17").symlink_to(devices / "sdb" / "sdbp1")
    (links / "259:1").symlink_to(devices / "nvme0n1" / "nvme0n1p1")

    class Sysfs(Linux):
        sysfs_block = links

    def medium_on(device: tuple[int, int] | None, fstype: str = "vfat") -> bool | None:
        host = Sysfs()
        host.mounts = lambda: [Mount("/media/card", fstype, False, device)]  # type: ignore[method-assign]
        return host.medium("/media/card/DCIM").removable

    assert medium_on((8, 16)) is True and medium_on((8, 17)) is True
    assert medium_on((259, 1)) is False
    assert medium_on((0, 52), "cifs") is None and medium_on(None) is None and medium_on((8, 99)) is None


@pytest.mark.parametrize("kind", [Linux, Generic])
def test_read_ahead_brings_a_files_first_bytes_from_the_medium_into_the_cache(
    tmp_path: Path, kind: type[Generic]
):
    """The bytes asked for are read ahead, what lies past them is not."""
    if not hasattr(os, "RWF_NOWAIT"):
        pytest.skip("preadv(RWF_NOWAIT), which tells cached pages from uncached ones, is Linux's")
    path = tmp_path / "photo.jpg"
    path.write_bytes(os.urandom(3 << 20))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        assert not page_cached(fd, 0)
        kind().read_ahead(fd, 1 << 20)
        assert cached_within(fd, 0, seconds=10)
        assert not page_cached(fd, 2 << 20)
    finally:
        os.close(fd)
