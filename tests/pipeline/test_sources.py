from pathlib import Path

import pytest

from sidecar import host
from sidecar.host.generic import Generic, Mount
from sidecar.pipeline.sources import ReadOnce, SourceGuard, network_sources, reads_once


def test_network_sources_are_the_hosts_mount_table_s(monkeypatch: pytest.MonkeyPatch):
    """The mount tables themselves are tested in tests/host."""

    class Table(Generic):
        def mounts(self) -> list[Mount]:
            return [Mount("/mnt/nas/local-usb", "vfat"), Mount("/mnt/nas", "cifs"), Mount("/", "ext4")]

    monkeypatch.setattr(host, "current", Table)
    assert network_sources(["/home/a", "/mnt/nas/photos"])
    assert not network_sources(["/mnt/nas/local-usb/DCIM", "/mnt/nasty"])


def test_sources_on_another_filesystem_than_the_archive_are_read_once(tmp_path: Path) -> None:
    archive, here = tmp_path / "archive", tmp_path / "card"
    archive.mkdir()
    here.mkdir()
    elsewhere = "/proc/self"  # surely not the filesystem of tmp_path
    assert not reads_once(ReadOnce.AUTO, [str(here)], str(archive))
    assert reads_once(ReadOnce.AUTO, [str(here), elsewhere], str(archive))
    assert not reads_once(ReadOnce.AUTO, [str(here), str(tmp_path / "missing")], str(archive))
    assert reads_once(ReadOnce.ALWAYS, [str(here)], str(archive))
    assert not reads_once(ReadOnce.NEVER, [elsewhere], str(archive))


def test_a_local_folder_is_no_network_source(tmp_path: Path):
    assert not network_sources([str(tmp_path)])


def test_a_source_is_gone_when_its_input_cannot_be_read_or_is_another_folder_now(tmp_path: Path):
    card, other = tmp_path / "card", tmp_path / "other"
    (card / "DCIM").mkdir(parents=True)
    other.mkdir()
    guard = SourceGuard([str(card), str(card / "DCIM"), str(other)])
    guard.capture()
    photo = str(card / "DCIM" / "IMG_0001.JPG")
    assert guard.gone(photo) is None and guard.lost is None  # a bad file on a card that is there
    assert guard.gone(str(tmp_path / "cardigan" / "x.jpg")) is None  # not under any input

    (card / "DCIM").rename(tmp_path / "pulled")
    assert guard.gone(photo) == f"{card / 'DCIM'} (No such file or directory)"  # the innermost input
    (card / "DCIM").mkdir()  # the bare mount point left behind: a folder, but not the card's
    assert guard.gone(photo) == f"{card / 'DCIM'} (another folder is there now)"
    assert guard.gone(str(other / "a.jpg")) is None
    assert guard.lost == f"{card / 'DCIM'} (No such file or directory)"  # the first finding stays


def test_an_input_that_is_a_file_is_no_medium_its_vanishing_is_its_own_error(tmp_path: Path):
    photo = tmp_path / "IMG_0001.JPG"
    photo.write_bytes(b"jpeg")
    guard = SourceGuard([str(photo)])
    guard.capture()
    photo.unlink()
    assert guard.gone(str(photo)) is None and guard.lost is None


def test_an_input_unreadable_when_the_run_starts_is_gone_while_it_stays_so(tmp_path: Path):
    card = tmp_path / "card"  # still out of its reader when the resume starts
    guard = SourceGuard([str(card)])
    guard.capture()
    assert guard.gone(str(card / "DCIM" / "IMG_0001.JPG")) == f"{card} (No such file or directory)"
