import json
import os
import socket
import tempfile
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from sidecar.archive.media import MediaType
from sidecar.pipeline.scanner import InputDone, ScanError, ScanItem, ScannedFile, Skipped, scan


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def scanned(items: Sequence[ScanItem], root: Path) -> dict[str, ScannedFile]:
    """The scanned files by path relative to `root`, asserting that none came twice."""
    files = [item for item in items if isinstance(item, ScannedFile)]
    by_name = {os.path.relpath(item.path, root): item for item in files}
    assert len(by_name) == len(files)
    return by_name


def skipped(items: Sequence[ScanItem], root: Path) -> dict[str, str]:
    return {os.path.relpath(item.path, root): item.reason for item in items if isinstance(item, Skipped)}


def errors(items: Sequence[ScanItem], root: Path) -> dict[str, str]:
    return {os.path.relpath(item.path, root): item.message for item in items if isinstance(item, ScanError)}


def test_files_are_classified_case_insensitively_with_sizes(tmp_path: Path) -> None:
    for name, size in [("a.JPG", 3), ("b.Mov", 5), ("c.PDF", 1), ("d.gpx", 2), ("e.XMP", 4), ("f.CR2", 7)]:
        touch(tmp_path / name, b"z" * size)
    files = scanned(list(scan([str(tmp_path)], None)), tmp_path)
    assert {name: (f.media_type, f.extension, f.size) for name, f in files.items()} == {
        "a.JPG": (MediaType.IMAGE, ".jpg", 3),
        "b.Mov": (MediaType.VIDEO, ".mov", 5),
        "c.PDF": (MediaType.DOCUMENT, ".pdf", 1),
        "d.gpx": (MediaType.MAP, ".gpx", 2),
        "e.XMP": (MediaType.SIDECAR, ".xmp", 4),
        "f.CR2": (MediaType.IMAGE, ".cr2", 7),
    }
    assert all(os.path.isabs(f.path) for f in files.values())


def test_excluded_names_and_unknown_extensions_are_skipped_each_with_its_reason(tmp_path: Path) -> None:
    touch(tmp_path / "keep.jpg")
    for name in [".hidden.jpg", ".git/x.jpg", "Thumbs.db", "__MACOSX/x.jpg", ".DS_Store", "_DATABASE/x.jpg"]:
        touch(tmp_path / name)
    touch(tmp_path / "sub" / ".cache" / "x.jpg")
    for name in ["notes.abc", "noext", "photo.PSD", "edit.AAE"]:
        touch(tmp_path / "sub" / name)
    items = list(scan([str(tmp_path)], None))
    assert list(scanned(items, tmp_path)) == ["keep.jpg"]
    # A skipped folder is named once, and nothing in it is walked.
    assert skipped(items, tmp_path) == {
        ".hidden.jpg": "hidden file",
        ".git": "hidden folder",
        "Thumbs.db": "system file (left by macOS or Windows, not media)",
        "__MACOSX": "system folder (left by macOS or Windows, not media)",
        ".DS_Store": "system file (left by macOS or Windows, not media)",
        "_DATABASE": "the archive's own folder",
        "sub/.cache": "the archive's own folder",
        "sub/notes.abc": "unknown extension (.abc)",
        "sub/noext": "no extension",
        "sub/photo.PSD": ".psd files are not imported (the app's rule)",
        "sub/edit.AAE": ".aae files are not imported (the app's rule)",
    }


def test_what_computers_leave_on_a_card_is_skipped_as_such_and_never_imported(tmp_path: Path) -> None:
    card = tmp_path / "card"
    jpeg = touch(card / "DCIM" / "100CANON" / "IMG_0001.JPG", b"\xff\xd8\xff")
    touch(card / "DCIM" / "100CANON" / "._IMG_0001.JPG", b"\x00\x05\x16\x07")  # not a JPEG
    for folder in [".Trashes", ".Spotlight-V100", ".fseventsd", "System Volume Information", "$RECYCLE.BIN"]:
        touch(card / folder / "IMG_0002.JPG")
    touch(card / "._.Trashes")
    items = list(scan([str(card)], None))
    assert [f.path for f in scanned(items, card).values()] == [str(jpeg)]
    reasons = skipped(items, card)
    assert reasons.pop("DCIM/100CANON/._IMG_0001.JPG").startswith("AppleDouble file")
    assert reasons.pop("._.Trashes").startswith("AppleDouble file")
    assert reasons == {
        name: "system folder (left by macOS or Windows, not media)"
        for name in [".Trashes", ".Spotlight-V100", ".fseventsd", "System Volume Information", "$RECYCLE.BIN"]
    }


def test_every_new_camera_format_is_imported_with_its_media_type(tmp_path: Path) -> None:
    stills = ["a.CRW", "b.GPR", "c.HIF", "d.FPX", "e.MPO", "f.JXL", "g.JP2", "h.IIQ", "i.FFF", "j.3FR"]
    videos = ["k.MTS", "l.3GPP", "m.MOD", "n.TOD", "o.LRV"]
    for name in stills + videos:
        touch(tmp_path / name)
    items = list(scan([str(tmp_path)], None))
    assert skipped(items, tmp_path) == {}
    types = {name: f.media_type for name, f in scanned(items, tmp_path).items()}
    assert types == {**dict.fromkeys(stills, MediaType.IMAGE), **dict.fromkeys(videos, MediaType.VIDEO)}


def test_symlinks_inside_a_walk_are_skipped_and_never_followed(tmp_path: Path) -> None:
    source, outside = tmp_path / "source", tmp_path / "outside"
    touch(source / "real.jpg")
    touch(outside / "secret.jpg")
    touch(outside / "deeper" / "more.jpg")
    (source / "to-file.jpg").symlink_to(source / "real.jpg")
    (source / "to-outside").symlink_to(outside, target_is_directory=True)
    (source / "to-outside-file.jpg").symlink_to(outside / "secret.jpg")
    (source / "to-own-folder").symlink_to(source, target_is_directory=True)
    (source / "broken.jpg").symlink_to(tmp_path / "missing.jpg")
    items = list(scan([str(source)], None))
    assert list(scanned(items, source)) == ["real.jpg"]
    assert skipped(items, source) == dict.fromkeys(
        ["to-file.jpg", "to-outside", "to-outside-file.jpg", "to-own-folder", "broken.jpg"],
        "symlink (never followed)",
    )


def test_a_symlinked_input_is_followed_and_keeps_its_spelling(tmp_path: Path) -> None:
    touch(tmp_path / "real" / "a.jpg")
    touch(tmp_path / "real" / "sub" / "b.mp4")
    touch(tmp_path / "elsewhere" / "c.png")
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "file-link.png").symlink_to(tmp_path / "elsewhere" / "c.png")
    items = list(scan([str(tmp_path / "link"), str(tmp_path / "file-link.png")], None))
    assert sorted(scanned(items, tmp_path)) == ["file-link.png", "link/a.jpg", "link/sub/b.mp4"]


def test_fifos_and_sockets_are_skipped_without_being_opened(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")
    os.mkfifo(tmp_path / "input-pipe.mov")
    server = socket.socket(socket.AF_UNIX)
    result: list[ScanItem] = []
    try:
        server.bind(str(tmp_path / "s.mp4"))
        # Opening a FIFO for reading blocks until a writer comes: a scan that did would never end.
        worker = threading.Thread(
            target=lambda: result.extend(scan([str(tmp_path), str(tmp_path / "input-pipe.mov")], None)),
            daemon=True,
        )
        worker.start()
        worker.join(10)
        assert not worker.is_alive(), "the scan blocked on a FIFO"
    finally:
        server.close()
    assert list(scanned(result, tmp_path)) == ["a.jpg"]
    assert skipped(result, tmp_path) == {
        "pipe.jpg": "not a regular file",
        "s.mp4": "not a regular file",
        "input-pipe.mov": "not a regular file",  # once in the walk, once as an input
    }
    assert sum(isinstance(item, Skipped) for item in result) == 4


@pytest.fixture
def world_tmp() -> Iterator[Path]:
    """A temp folder an unprivileged user can traverse (pytest's own is private to root)."""
    with tempfile.TemporaryDirectory() as name:
        os.chmod(name, 0o755)
        yield Path(name)


def scan_unprivileged(paths: list[str]) -> list[list[Any]]:
    """Scan in a forked child that drops root (which reads everything) to nobody, as JSON rows."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe and its exit code
        code = 1
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            found = [
                [type(item).__name__, item.path, getattr(item, "message", "")] for item in scan(paths, None)
            ]
            with os.fdopen(write_end, "w") as out:
                json.dump(found, out)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as incoming:
        data = incoming.read()
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    rows: list[list[Any]] = json.loads(data)
    return rows


def test_an_unreadable_folder_is_an_error_and_the_rest_is_still_scanned(world_tmp: Path) -> None:
    touch(world_tmp / "a" / "before.jpg")
    touch(world_tmp / "b-locked" / "hidden-from-us.jpg")
    touch(world_tmp / "c" / "after.jpg")
    touch(world_tmp / "top.png")
    locked = world_tmp / "b-locked"
    locked.chmod(0)
    try:
        rows = scan_unprivileged([str(world_tmp)])
    finally:
        locked.chmod(0o755)
    assert [row[0] for row in rows].count("ScanError") == 1
    assert ["ScanError", str(locked), "Permission denied: cannot read folder"] in rows
    assert sorted(Path(row[1]).name for row in rows if row[0] == "ScannedFile") == [
        "after.jpg",
        "before.jpg",
        "top.png",
    ]


def test_a_missing_input_is_an_error_and_the_other_inputs_are_scanned(tmp_path: Path) -> None:
    touch(tmp_path / "one" / "a.jpg")
    touch(tmp_path / "two" / "b.jpg")
    inputs = [str(tmp_path / "one"), str(tmp_path / "missing"), str(tmp_path / "two")]
    items = list(scan(inputs, None))
    assert errors(items, tmp_path) == {"missing": "No such file or directory"}
    assert sorted(scanned(items, tmp_path)) == ["one/a.jpg", "two/b.jpg"]
    assert [item for item in items if isinstance(item, InputDone)] == [InputDone(p) for p in inputs]


def test_relative_inputs_are_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path / "in" / "a.jpg")
    monkeypatch.chdir(tmp_path)
    items = list(scan(["in"], None))
    assert items == [
        ScannedFile(str(tmp_path / "in" / "a.jpg"), 1, MediaType.IMAGE, ".jpg"),
        InputDone(str(tmp_path / "in")),
    ]


def test_input_done_follows_each_inputs_own_items(tmp_path: Path) -> None:
    touch(tmp_path / "x" / "1.jpg")
    touch(tmp_path / "y" / "2.jpg")
    items = list(scan([str(tmp_path / "x"), str(tmp_path / "y")], None))
    assert [type(item).__name__ for item in items] == ["ScannedFile", "InputDone", "ScannedFile", "InputDone"]
    assert items[0].path.endswith("/x/1.jpg") and items[2].path.endswith("/y/2.jpg")


def test_overlapping_inputs_yield_each_file_once(tmp_path: Path) -> None:
    touch(tmp_path / "a" / "top.jpg")
    touch(tmp_path / "a" / "b" / "inner.jpg")
    touch(tmp_path / "a" / "b" / "c" / "deep.mov")
    os.link(tmp_path / "a" / "top.jpg", tmp_path / "a" / "b" / "hardlink.jpg")
    (tmp_path / "alias").symlink_to(tmp_path / "a" / "b", target_is_directory=True)
    inputs = ["a/b", "a", "a/b/inner.jpg", "a", "alias", "a/b/c/deep.mov", "alias/c/deep.mov"]
    items = list(scan([str(tmp_path / p) for p in inputs], None))
    names = sorted(Path(f.path).name for f in items if isinstance(f, ScannedFile))
    # top.jpg is the same file (inode) as hardlink.jpg, already yielded from the first input.
    assert names == ["deep.mov", "hardlink.jpg", "inner.jpg"]
    assert sum(isinstance(item, InputDone) for item in items) == len(inputs)


def test_the_archive_inside_a_source_is_skipped(tmp_path: Path) -> None:
    touch(tmp_path / "source" / "a.jpg")
    touch(tmp_path / "source" / "archive" / "locations" / "NY-x" / "y-ABC" / "org-img-ABC" / "f.jpg")
    (tmp_path / "archive-link").symlink_to(tmp_path / "source" / "archive", target_is_directory=True)
    for archive in (tmp_path / "source" / "archive", tmp_path / "archive-link"):
        items = list(scan([str(tmp_path / "source"), str(tmp_path / "source" / "archive")], str(archive)))
        assert list(scanned(items, tmp_path)) == ["source/a.jpg"]
        assert not errors(items, tmp_path) and not skipped(items, tmp_path)
    # An archive that does not exist yet excludes nothing.
    assert len(scanned(list(scan([str(tmp_path / "source")], str(tmp_path / "none"))), tmp_path)) == 2


def test_sidecars_pairs_and_live_photo_candidates_within_a_folder(tmp_path: Path) -> None:
    names = [
        *["IMG_1.CR2", "IMG_1.JPG", "IMG_1.xmp", "IMG_1.CR2.XMP", "IMG_1.JPG.json"],
        *["img_2.jpg", "IMG_2.MOV", "IMG_2.XMP"],
        *["clip.mp4", "clip.SRT", "orphan.xmp", "notes.THM.xml"],
        *["C0001.MP4", "C0001M01.XML", "noteM01.xml"],  # Sony XAVC: a clip's metadata, and not one
        *["IMG_0001.JPG", "IMG_0001.CR2"],
        *["IMG_3.HEIC", "img_3.mov"],
        *["IMG_4.CR2", "IMG_4.NEF", "IMG_4.jpeg", "IMG_4.jpg"],
    ]
    for name in names:
        touch(tmp_path / name)
    items = list(scan([str(tmp_path)], None))
    files = scanned(items, tmp_path)
    assert [Path(f.path).name for f in items if isinstance(f, ScannedFile)] == sorted(names)

    def rel(path: str | None) -> str | None:
        return None if path is None else os.path.relpath(path, tmp_path)

    assert {n: rel(f.parent) for n, f in files.items() if f.media_type is MediaType.SIDECAR} == {
        "IMG_1.xmp": "IMG_1.CR2",  # RAW preferred over the JPEG
        "IMG_1.CR2.XMP": "IMG_1.CR2",
        "IMG_1.JPG.json": "IMG_1.JPG",  # named in full wins over the RAW preference
        "IMG_2.XMP": "img_2.jpg",  # JPEG preferred over the video, across case
        "clip.SRT": "clip.mp4",
        "orphan.xmp": None,
        "notes.THM.xml": None,
        "C0001M01.XML": "C0001.MP4",
        "noteM01.xml": None,
    }
    assert {n: rel(f.raw_pair) for n, f in files.items() if f.raw_pair} == {
        "IMG_1.CR2": "IMG_1.JPG",
        "IMG_1.JPG": "IMG_1.CR2",
        "IMG_0001.CR2": "IMG_0001.JPG",
        "IMG_0001.JPG": "IMG_0001.CR2",
        "IMG_4.CR2": "IMG_4.jpeg",
        "IMG_4.jpeg": "IMG_4.CR2",
    }
    assert {n: rel(f.live_pair) for n, f in files.items() if f.live_pair} == {
        "img_2.jpg": "IMG_2.MOV",
        "IMG_2.MOV": "img_2.jpg",
        "IMG_3.HEIC": "img_3.mov",
        "img_3.mov": "IMG_3.HEIC",
    }
    assert all(f.parent is None for f in files.values() if f.media_type is not MediaType.SIDECAR)


def test_grouping_never_crosses_folders(tmp_path: Path) -> None:
    for name in ["a/IMG_5.CR2", "b/IMG_5.JPG", "b/IMG_6.HEIC", "c/IMG_5.xmp", "c/IMG_6.MOV"]:
        touch(tmp_path / name)
    files = scanned(list(scan([str(tmp_path)], None)), tmp_path)
    assert len(files) == 5
    assert all(f.parent is None and f.raw_pair is None and f.live_pair is None for f in files.values())


def test_file_inputs_from_one_folder_are_grouped_like_a_listing(tmp_path: Path) -> None:
    for name in ["IMG_7.CR2", "IMG_7.JPG", "IMG_7.xmp", "other/IMG_7.xmp"]:
        touch(tmp_path / name)
    picked = [str(tmp_path / n) for n in ["IMG_7.xmp", "IMG_7.JPG", "IMG_7.CR2", "other/IMG_7.xmp"]]
    items = list(scan(picked, None))
    files = scanned(items, tmp_path)
    assert files["IMG_7.xmp"].parent == str(tmp_path / "IMG_7.CR2")
    assert files["IMG_7.CR2"].raw_pair == str(tmp_path / "IMG_7.JPG")
    assert files["other/IMG_7.xmp"].parent is None
    assert [item for item in items if isinstance(item, InputDone)] == [InputDone(p) for p in picked]


def test_odd_names_are_separate_files(tmp_path: Path) -> None:
    nfc, nfd = unicodedata.normalize("NFC", "café.jpg"), unicodedata.normalize("NFD", "café.jpg")
    names = ["new\nline.jpg", nfc, nfd, "Case.jpg", "case.jpg", "CASE.JPG"]
    for name in names:
        touch(tmp_path / name, name.encode())
    with open(os.fsencode(tmp_path) + b"/bad\xff\xfe.jpg", "wb") as handle:
        handle.write(b"bad\xff\xfe.jpg")
    files = scanned(list(scan([str(tmp_path)], None)), tmp_path)
    assert len(files) == 7
    assert set(files) == {*names, os.fsdecode(b"bad\xff\xfe.jpg")}
    for name, item in files.items():
        assert os.stat(item.path).st_size == item.size == len(name.encode("utf-8", "surrogateescape"))
    assert os.fsencode(files[os.fsdecode(b"bad\xff\xfe.jpg")].path).endswith(b"/bad\xff\xfe.jpg")


def test_a_file_vanishing_between_listing_and_stat_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    touch(tmp_path / "stays.jpg")
    touch(tmp_path / "goes.jpg")
    touch(tmp_path / "gone-folder" / "x.jpg")
    real_scandir = os.scandir

    class Listing:
        """The folder's listing taken first, then the doomed entries removed before they are used."""

        def __init__(self, path: str) -> None:
            with real_scandir(path) as entries:
                self.entries = list(entries)
            if path == str(tmp_path):
                (tmp_path / "goes.jpg").unlink()
                (tmp_path / "gone-folder" / "x.jpg").unlink()
                (tmp_path / "gone-folder").rmdir()

        def __enter__(self) -> list[os.DirEntry[str]]:
            return self.entries

        def __exit__(self, *exc: object) -> None:
            pass

    monkeypatch.setattr(os, "scandir", Listing)
    items = list(scan([str(tmp_path)], None))
    assert errors(items, tmp_path) == {
        "goes.jpg": "File vanished during scan",
        "gone-folder": "Folder vanished during scan",
    }
    assert list(scanned(items, tmp_path)) == ["stays.jpg"]


def test_the_scan_is_lazy_folder_by_folder(tmp_path: Path) -> None:
    for folder in range(50):
        for index in range(100):
            touch(tmp_path / f"d{folder:02}" / f"f{index:03}.jpg")
    checks = 0

    def is_cancelled() -> bool:
        nonlocal checks
        checks += 1
        return False

    items = scan([str(tmp_path)], None, is_cancelled)
    first = next(items)
    assert isinstance(first, ScannedFile) and first.path.endswith("d00/f000.jpg")
    assert checks == 3  # the input, the root folder and d00: nothing else was listed yet
    rest = list(items)
    assert checks == 53  # the input, 51 folders, and once more before InputDone
    assert sum(isinstance(item, ScannedFile) for item in rest) == 4999


def test_cancelling_stops_the_scan(tmp_path: Path) -> None:
    for folder in range(5):
        touch(tmp_path / f"d{folder}" / "f.jpg")
    touch(tmp_path / "later" / "g.jpg")
    answers = iter([False, False, False, False, True])
    items = list(scan([str(tmp_path), str(tmp_path / "later")], None, lambda: next(answers, True)))
    # The input, the root, d0 and d1 pass; the check before d2 stops everything, the second input too.
    assert [Path(item.path).name for item in items] == ["f.jpg", "f.jpg"]
    assert not any(isinstance(item, InputDone) for item in items)


def test_cancelled_before_start_yields_nothing(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg")
    assert list(scan([str(tmp_path)], None, lambda: True)) == []


def test_a_regular_file_input_is_taken_as_is(tmp_path: Path) -> None:
    touch(tmp_path / ".hidden.JPG", b"abc")
    touch(tmp_path / "readme.abc")
    items = list(scan([str(tmp_path / ".hidden.JPG"), str(tmp_path / "readme.abc")], None))
    # Both inputs come from one folder, so their files are grouped and yielded together at the end.
    assert items == [
        Skipped(str(tmp_path / "readme.abc"), "unknown extension (.abc)"),
        ScannedFile(str(tmp_path / ".hidden.JPG"), 3, MediaType.IMAGE, ".jpg"),
        InputDone(str(tmp_path / ".hidden.JPG")),
        InputDone(str(tmp_path / "readme.abc")),
    ]
