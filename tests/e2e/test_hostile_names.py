"""File names built to confuse an importer: a newline, bytes that are not UTF-8, NFC/NFD twins and
case-only twins. Each is its own file with its own content, so each must be archived and get its
own row, with its original name kept as far as the app's text columns can hold it."""

import os
import unicodedata
from pathlib import Path

from tests.support.archive import add_location, assert_archive_invariant, hash16, rows
from tests.support.client import SidecarPaths, SidecarProcess

NFC = unicodedata.normalize("NFC", "café.jpg")
NFD = unicodedata.normalize("NFD", "café.jpg")


async def test_confusing_names_each_import_as_their_own_file(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths, tmp_path: Path
):
    source = tmp_path / "names"
    source.mkdir()
    names: list[bytes] = [
        b"line\nbreak.jpg",
        b"bad\xff\xfe.jpg",
        NFC.encode(),
        NFD.encode(),
        b"Twin.JPG",
        b"twin.jpg",
        b" leading space and trailing dot..jpg",
    ]
    assert NFC.encode() != NFD.encode()
    # ".jpg " is not ".jpg": an unknown extension, skipped and counted like any other.
    (source / "trailing space.jpg ").write_bytes(b"\xff\xd8\xff\xe0 not imported")
    for index, name in enumerate(names):
        with open(os.path.join(os.fsencode(source), name), "wb") as handle:
            handle.write(b"\xff\xd8\xff\xe0" + name + bytes([index]) * 100)
    location = add_location(sidecar_paths.db)

    result = await sidecar.request("import:v2:start", location.start_params(source))

    assert result["status"] == "completed", result
    assert result["errors"] == [] and result["scanResult"]["skipped"] == 1
    imported = rows(sidecar_paths.db, "SELECT imgnamo, imghash, imgloc FROM imgs")
    expected_hashes = {hash16(Path(os.fsdecode(os.path.join(os.fsencode(source), n)))) for n in names}
    assert {h for _, h, _ in imported} == expected_hashes and len(imported) == len(names)
    stored_names = {name for name, _, _ in imported}
    assert {
        "line\nbreak.jpg",
        NFC,
        NFD,
        "Twin.JPG",
        "twin.jpg",
        " leading space and trailing dot..jpg",
    } <= stored_names
    assert "bad\ufffd\ufffd.jpg" in stored_names  # the text column gets a readable stand-in
    for _, digest, location_path in imported:
        assert Path(location_path).name == f"{digest}.jpg"  # archive names never carry the original
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)
