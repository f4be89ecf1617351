import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.archive.layout import (
    UnsafeLocation,
    archive_name,
    contained,
    location_folder,
    media_folder,
    sanitize_name,
    state_code,
)
from sidecar.archive.media import MediaType
from sidecar.db.locations import Location


def location(**overrides: str | None) -> Location:
    values: dict[str, str | None] = {
        "locid": "l1",
        "loc12": "ABC123",
        "locnam": "The Old Factory",
        "slocnam": "old-factory",
        "type": "Factory",
        "address_state": "NY",
    }
    values.update(overrides)
    return Location(**values)  # type: ignore[arg-type]


def test_the_apps_worked_example(tmp_path: Path) -> None:
    folder = media_folder(location_folder(tmp_path, location()), MediaType.IMAGE, "ABC123")
    target = contained(tmp_path, folder / archive_name("a7f3b2c1e9d4f086", ".JPG"))
    assert target.relative_to(tmp_path).as_posix() == (
        "locations/NY-factory/old-factory-ABC123/org-img-ABC123/a7f3b2c1e9d4f086.jpg"
    )


@pytest.mark.parametrize(
    ("media_type", "kind"),
    [
        (MediaType.IMAGE, "img"),
        (MediaType.VIDEO, "vid"),
        (MediaType.DOCUMENT, "doc"),
        (MediaType.MAP, "map"),
        (MediaType.SIDECAR, "misc"),
    ],
)
def test_media_folders(tmp_path: Path, media_type: MediaType, kind: str) -> None:
    assert media_folder(tmp_path, media_type, "aB1") == tmp_path / f"org-{kind}-aB1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Old  Factory!!", "old-factory"),
        ("--a---b--", "a-b"),
        ("a - _ b", "a-b"),
        ("Ünïcödé Mill", "n-c-d-mill"),
        ("../../etc/passwd", "etc-passwd"),
        ("a\\b/c\x00d", "a-b-c-d"),
        ("．．／x", "x"),
        ("x\u202eexe.gpj", "x-exe-gpj"),
        ("🏭 factory 🏭", "factory"),
        ("x" * 60, "x" * 50),
        ("a" * 49 + "-b", "a" * 49),  # cut at 50 leaves a trailing dash, trimmed again
    ],
)
def test_sanitize_name(value: str, expected: str) -> None:
    assert sanitize_name(value, "fallback") == expected


@pytest.mark.parametrize("value", [None, "", "---", "!!!", "／", "..", "🏭"])
def test_sanitize_name_falls_back_when_nothing_is_left(value: str | None) -> None:
    assert sanitize_name(value, "fallback") == "fallback"


def test_missing_type_and_slocnam_fall_back_to_unknown_and_locnams_short_name(tmp_path: Path) -> None:
    folder = location_folder(tmp_path, location(type=None, slocnam=None, locnam="Old Mill #2"))
    assert folder == tmp_path / "locations" / "NY-unknown" / "old-mill-2-ABC123"


def test_a_slocnam_with_nothing_usable_falls_back_to_locnam_then_location(tmp_path: Path) -> None:
    assert location_folder(tmp_path, location(slocnam="!!", locnam="Mill")).name == "mill-ABC123"
    assert location_folder(tmp_path, location(slocnam=None, locnam="**")).name == "location-ABC123"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ny", "NY"),
        ("Ca", "CA"),
        (None, "XX"),
        ("", "XX"),
        ("N", "XX"),
        ("NYC", "XX"),
        ("N1", "XX"),
        ("..", "XX"),
        ("/x", "XX"),
        ("ＮＹ", "XX"),
        ("NY\n", "XX"),
        ("éa", "XX"),
    ],
)
def test_state_code(value: str | None, expected: str) -> None:
    assert state_code(value) == expected


@pytest.mark.parametrize(
    "loc12",
    [
        "",
        "..",
        ".",
        "../x",
        "a/b",
        "a\\b",
        "/abs",
        "ABC\n",
        "AB C",
        "a\x00b",
        "ＡＢＣ",
        "٣",
        "a" * 33,
        "ab-c",
    ],
)
def test_hostile_loc12_is_refused(tmp_path: Path, loc12: str) -> None:
    with pytest.raises(UnsafeLocation, match="loc12"):
        location_folder(tmp_path, location(loc12=loc12))
    with pytest.raises(UnsafeLocation, match="loc12"):
        media_folder(tmp_path, MediaType.VIDEO, loc12)


def test_loc12_keeps_its_case_and_may_be_32_characters(tmp_path: Path) -> None:
    loc12 = "aBc" * 10 + "Z9"
    assert location_folder(tmp_path, location(loc12=loc12)).name == f"old-factory-{loc12}"


@pytest.mark.parametrize(
    ("hash16", "extension", "expected"),
    [
        ("0123456789abcdef", ".JPG", "0123456789abcdef.jpg"),
        ("0123456789abcdef", "", "0123456789abcdef"),
        ("0123456789abcdef", ".M2TS", "0123456789abcdef.m2ts"),
    ],
)
def test_archive_name(hash16: str, extension: str, expected: str) -> None:
    assert archive_name(hash16, extension) == expected


@pytest.mark.parametrize(
    ("hash16", "extension"),
    [
        ("0123456789ABCDEF", ".jpg"),
        ("0123456789abcde", ".jpg"),
        ("0123456789abcdef0", ".jpg"),
        ("../../../../etc/", ".jpg"),
        ("0123456789abcdef", "jpg"),
        ("0123456789abcdef", "."),
        ("0123456789abcdef", "./x"),
        ("0123456789abcdef", ".j/g"),
        ("0123456789abcdef", ".\u212a"),  # Kelvin sign lower-cases to an ASCII k
        ("0123456789abcdef", "." + "a" * 17),
    ],
)
def test_archive_name_refuses_unsafe_parts(hash16: str, extension: str) -> None:
    with pytest.raises(UnsafeLocation):
        archive_name(hash16, extension)


SEGMENT = re.compile(r"[A-Za-z0-9-]+")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=300)
@given(
    type_=st.none() | st.text(),
    slocnam=st.none() | st.text(),
    locnam=st.text(),
    address_state=st.none() | st.text(),
    loc12=st.from_regex(r"[A-Za-z0-9]{1,32}", fullmatch=True),
)
def test_any_text_gives_a_path_inside_the_root_with_the_expected_segments(
    tmp_path: Path, type_: str | None, slocnam: str | None, locnam: str, address_state: str | None, loc12: str
) -> None:
    place = location(type=type_, slocnam=slocnam, locnam=locnam, address_state=address_state, loc12=loc12)
    folder = media_folder(location_folder(tmp_path, place), MediaType.DOCUMENT, loc12)
    path = contained(tmp_path, folder / archive_name("00ff00ff00ff00ff", ".pdf"))

    parts = path.relative_to(tmp_path).parts
    assert len(parts) == 5
    assert parts[0] == "locations"
    assert all(SEGMENT.fullmatch(part) for part in parts[1:4])
    assert re.fullmatch(r"[A-Z]{2}", parts[1][:2]) and parts[1].startswith(state_code(address_state) + "-")
    assert parts[2].endswith(f"-{loc12}") and parts[3] == f"org-doc-{loc12}"
    assert len(parts[1]) <= 53 and len(parts[2]) <= 51 + len(loc12)
    assert os.path.realpath(path).startswith(os.path.realpath(tmp_path) + os.sep)


def test_contained_rejects_dot_dot_escapes_and_the_root_itself(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    root.mkdir()
    assert contained(root, root / "locations" / "x") == root / "locations" / "x"
    for escape in (root / ".." / "elsewhere", root / "a" / ".." / ".." / "x", root, Path("/etc/passwd")):
        with pytest.raises(UnsafeLocation, match="escapes the archive"):
            contained(root, escape)
    # A sibling that merely shares the root's name as a prefix is outside too.
    with pytest.raises(UnsafeLocation):
        contained(root, tmp_path / "archive-other" / "x")


def test_contained_rejects_a_symlink_inside_the_archive_pointing_outside(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    outside = tmp_path / "outside"
    (root / "locations").mkdir(parents=True)
    outside.mkdir()
    (root / "locations" / "NY-factory").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeLocation):
        contained(root, root / "locations" / "NY-factory" / "old-factory-ABC123" / "f.jpg")


def test_contained_follows_a_symlinked_archive_root(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    assert contained(tmp_path / "link", real / "locations") == real / "locations"
