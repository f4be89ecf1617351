from pathlib import Path

import pytest

from sidecar.pipeline import sources
from sidecar.pipeline.sources import ReadOnce, network_sources, reads_once


@pytest.fixture
def mounts(monkeypatch: pytest.MonkeyPatch) -> None:
    table = [("/", "ext4"), ("/mnt/nas", "cifs"), ("/mnt/nas/local-usb", "vfat"), ("/srv/nfs", "nfs4")]
    monkeypatch.setattr(sources, "_mounts", lambda: sorted(table, key=lambda m: len(m[0]), reverse=True))


def test_the_longest_matching_mount_decides(mounts: None):
    assert network_sources(["/mnt/nas/photos"])
    assert network_sources(["/home/a", "/srv/nfs/b"])
    assert not network_sources(["/mnt/nas/local-usb/DCIM"])
    assert not network_sources(["/mnt/nasty"])  # a prefix of the name is not the mount


def test_modes(mounts: None):
    assert reads_once(ReadOnce.ALWAYS, ["/home"]) and not reads_once(ReadOnce.NEVER, ["/mnt/nas"])
    assert reads_once(ReadOnce.AUTO, ["/mnt/nas/x"]) and not reads_once(ReadOnce.AUTO, ["/home"])


def test_this_machines_real_mount_table_is_read(tmp_path: Path):
    table = sources._mounts()
    assert ("/proc", "proc") in table
    assert not network_sources([str(tmp_path)])


def test_octal_escapes_in_mount_points():
    assert sources._unescape(r"/mnt/my\040disk/ü") == "/mnt/my disk/ü"
