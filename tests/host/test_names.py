"""Windows' naming rules (sidecar/host/names.py) and every name the sidecar creates held to them on
Linux: archive folders from any location value, content names from every extension the scan takes,
temp, proxy, thumbnail, staging and BagIt names; no two of them one file on a case-insensitive
disk; and, where the host is Windows, archive paths within MAX_PATH or refused up front."""

import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar import fs, host
from sidecar.archive import media
from sidecar.archive.layout import (
    LONGEST_FILE_NAME,
    UnsafeLocation,
    archive_name,
    location_folder,
    media_folder,
)
from sidecar.archive.media import MediaType
from sidecar.db.locations import Location
from sidecar.host import names
from sidecar.host.windows import Windows
from sidecar.jobs.handlers import bagit, thumbnail

HASH = "0123456789abcdef"


@pytest.mark.parametrize(
    "name",
    [
        *[
            "CON",
            "con",
            "Prn",
            "aux",
            "NUL",
            "COM1",
            "com9",
            "LPT1",
            "lpt9",
            "COM0",
            "COM\u00b9",
            "LPT\u00b3",
        ],
        *["nul.txt", "NUL.tar.gz", "con .jpg", "AUX "],  # any extension; spaces before it do not help
        *["a<b", "a>b", 'a"b', "a:b", "a/b", "a\\b", "a|b", "a?b", "a*b", "a\x00b", "a\x1fb"],
        *["photo.", "photo ", "photo. ", "", ".", ".."],
        "a" * 256,
        "\U0001f4f7" * 128,  # 256 UTF-16 code units
    ],
)
def test_what_windows_refuses(name: str):
    assert names.problem(name) is not None
    with pytest.raises(names.UnportableName):
        names.portable(name)


@pytest.mark.parametrize(
    "name",
    ["CONSOLE", "con-abc123", "COM10", "nul-x", ".nul", "NY-factory", "a" * 255, "\U0001f4f7" * 127, "ü.jpg"],
)
def test_what_windows_takes(name: str):
    assert names.problem(name) is None


def test_case_collisions_are_found():
    assert names.case_collisions(["a.jpg", "B.jpg", "A.JPG", "b.jpg", "a.jpg"]) == [
        ("a.jpg", "A.JPG"),
        ("B.jpg", "b.jpg"),
    ]


def every_extension() -> list[str]:
    known = sorted(
        media.IMAGE_EXTENSIONS
        | media.VIDEO_EXTENSIONS
        | media.DOCUMENT_EXTENSIONS
        | media.MAP_EXTENSIONS
        | media.SIDECAR_EXTENSIONS
    )
    return [variant for ext in known for variant in (ext, ext.upper(), ext.title())]


def test_every_file_name_the_sidecar_writes_is_one_windows_takes():
    created: list[str] = []
    for ext in every_extension():
        final = archive_name(HASH, ext)
        created += [final, os.path.basename(fs.temp_path(final)), f"7{ext}"]  # staged: <file id><ext>
    created += [f".{HASH}.proxy.mp4", os.path.basename(fs.temp_path(f".{HASH}.proxy.mp4"))]
    created += [os.path.basename(p) for p in thumbnail.thumbnail_paths("/a", HASH).values()]
    created += [HASH[:2], thumbnail.THUMBNAIL_FOLDER, ".aus-staging", "locations"]
    created += [bagit.BAG_FOLDER, bagit.BAGIT_TXT, bagit.BAG_INFO, bagit.MANIFEST, bagit.TAGMANIFEST]
    created += [os.path.basename(fs.temp_path(bagit.TAGMANIFEST))]
    created += [media_folder(Path("/a"), kind, "ABC123").name for kind in MediaType]
    assert [(n, names.problem(n)) for n in created if names.problem(n)] == []
    assert max(len(n) for n in created) <= LONGEST_FILE_NAME
    # The same file found as IMG.JPG and img.jpg is one archive name, never two that collide.
    finals = [archive_name(HASH, ext) for ext in every_extension()]
    assert names.case_collisions(finals) == [] and len(set(finals)) == len(finals) // 3


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=300)
@given(
    type_=st.none() | st.text(),
    slocnam=st.none() | st.text(),
    locnam=st.text(),
    address_state=st.none() | st.text(),
    loc12=st.from_regex(r"[A-Za-z0-9]{1,32}", fullmatch=True),
)
def test_any_location_value_gives_folders_windows_takes(
    tmp_path: Path, type_: str | None, slocnam: str | None, locnam: str, address_state: str | None, loc12: str
):
    place = Location("l1", loc12, locnam, slocnam, type_, address_state)
    folder = location_folder(tmp_path, place)
    for part in folder.relative_to(tmp_path).parts:
        assert names.problem(part) is None, part


@pytest.mark.parametrize("value", ["CON", "nul", "Com1", "LPT9", "aux.txt", "con "])
def test_a_location_named_like_a_device_still_gets_a_folder_windows_takes(tmp_path: Path, value: str):
    place = Location("l1", "ABC123", value, value, value, None)
    parts = location_folder(tmp_path, place).relative_to(tmp_path).parts
    assert parts[1:] == ("XX-" + re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-"), parts[2])
    assert all(names.problem(p) is None for p in parts)


def test_on_windows_an_archive_too_deep_for_max_path_is_refused_up_front(monkeypatch: pytest.MonkeyPatch):
    place = Location("l1", "ABC123", "Old Factory", None, "Factory", "NY")
    fixed = len("/locations/NY-factory/old-factory-ABC123") + len("/org-misc-ABC123/") + LONGEST_FILE_NAME
    fits, too_deep = (
        Path("C:/" + "r" * (names.MAX_PATH - fixed - 3)),
        Path("C:/" + "r" * (names.MAX_PATH - fixed - 2)),
    )
    assert location_folder(too_deep, place)  # no limit on Linux (nor generic POSIX)
    monkeypatch.setattr(host, "current", Windows)
    folder = location_folder(fits, place)
    deepest = folder / "org-misc-ABC123" / fs.temp_path(archive_name(HASH, "." + "x" * 16))
    assert len(str(deepest)) == names.MAX_PATH
    with pytest.raises(UnsafeLocation, match="more than win32 allows \\(259\\)"):
        location_folder(too_deep, place)
    # An extended-length root (\\?\C:\...) opens paths of up to 32 767 characters.
    assert location_folder(Path("\\\\?\\C:\\" + "r" * 300), place)
