"""Imports through the real sidecar on real filesystems: an archive on btrfs or xfs gets
copy-on-write clones (bytework `_try_clone`, FICLONE in sidecar/host/linux.py) that share their
extents with the source yet stay independent copies; sources on their own ext4 and on exFAT through FUSE
(as cards are formatted) end exactly as an import from a plain folder does."""

import os
from pathlib import Path
from typing import Any

from tests.filesystems.conftest import Mount
from tests.support.archive import (
    LocationFixture,
    add_location,
    assert_archive_invariant,
    hash16,
    org_files,
)
from tests.support.cards import camera_card, import_snapshot, photo_card
from tests.support.client import SidecarPaths, Spawn
from tests.support.filesystems import Mounted, drop_page_cache, shared_bytes

# Smaller files may be stored inline in btrfs metadata, which FIEMAP does not report as shared.
CLONE_CHECK_MIN_BYTES = 64 << 10


# The location of each database, made by its first import.
LOCATIONS: dict[Path, LocationFixture] = {}


async def import_card(spawn: Spawn, paths: SidecarPaths, card: Path) -> dict[str, Any]:
    """One import of `card` by a fresh sidecar into `paths`; returns its result."""
    sidecar = await spawn(paths.args())
    location = LOCATIONS.get(paths.db) or add_location(paths.db, locid="5e1f0c3a-7d2b-4c89-9a61-2b7e4d0f8c13")
    LOCATIONS[paths.db] = location
    result: dict[str, Any] = await sidecar.request(
        "import:v2:start", location.start_params(card), timeout=120
    )
    await sidecar.close_stdin()
    assert await sidecar.wait_exit(10) == 0
    return result


def used_bytes(fs: Mounted) -> int:
    os.sync()
    st = os.statvfs(fs.path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def paths_on(fs_root: Path, tmp_path: Path, name: str) -> SidecarPaths:
    archive = fs_root / name
    archive.mkdir()
    return SidecarPaths(db=tmp_path / f"{name}.db", archive=archive)


async def test_an_archive_on_btrfs_or_xfs_gets_clones_that_share_extents_and_stay_independent(
    cow_fs: Mounted, spawn_sidecar: Spawn, tmp_path: Path
):
    card = photo_card(cow_fs.path / "card", photos=6, photo_bytes=1 << 20, videos=2, video_bytes=8 << 20)
    originals = {p: p.read_bytes() for p in card.rglob("*") if p.is_file()}
    card_size = sum(len(data) for data in originals.values())
    paths = paths_on(cow_fs.path, tmp_path, "archive")
    before = used_bytes(cow_fs)

    result = await import_card(spawn_sidecar, paths, card)

    assert result["status"] == "completed" and result["errors"] == [], result
    assert result["copyResult"]["strategy"] == "reflink", result["copyResult"]
    archived = org_files(paths.archive)
    assert sorted(p.read_bytes() for p in archived) == sorted(originals.values())
    # The clones share every extent with their source (FIEMAP_EXTENT_SHARED) and cost no space.
    for file in archived:
        size = file.stat().st_size
        if size >= CLONE_CHECK_MIN_BYTES:
            assert shared_bytes(file) == size, f"{file.name}: {shared_bytes(file)} of {size} bytes shared"
    grown = used_bytes(cow_fs) - before
    assert grown < card_size // 4, f"the archive took {grown} bytes for {card_size} bytes of clones"

    # Independent copies: the sources rewritten in place, the archive keeps the imported bytes.
    for source in originals:
        with open(source, "r+b") as out:
            out.write(b"edited by the user afterwards")
    os.sync()
    assert sorted(p.read_bytes() for p in org_files(paths.archive)) == sorted(originals.values())
    assert_archive_invariant(paths.db, paths.archive)  # every row's file still has its hash
    assert {hash16(p) for p in originals} & {hash16(p) for p in archived} == set()


async def test_an_archive_on_ext4_gets_plain_copies_that_share_nothing(
    mounted: Mount, spawn_sidecar: Spawn, tmp_path: Path
):
    """The control for the clone checks above: they see the difference."""
    fs = mounted("ext4", 128, "ext4-archive")
    card = photo_card(fs.path / "card", photos=2, photo_bytes=1 << 20, videos=1, video_bytes=4 << 20)
    paths = paths_on(fs.path, tmp_path, "archive")

    result = await import_card(spawn_sidecar, paths, card)

    assert result["status"] == "completed" and result["copyResult"]["strategy"] == "copy", result
    for file in org_files(paths.archive):
        assert shared_bytes(file) == 0


async def test_cards_on_ext4_and_exfat_import_as_from_a_plain_folder(
    ext4_source: Mounted, exfat_source: Mounted, spawn_sidecar: Spawn, tmp_path: Path
):
    reference_card = camera_card(tmp_path / "plain-card", scale=0.5)
    reference = paths_on(tmp_path, tmp_path, "reference-archive")
    expected_result = await import_card(spawn_sidecar, reference, reference_card)
    assert expected_result["status"] == "completed", expected_result
    expected = import_snapshot(reference.db, reference.archive, reference_card)
    assert expected["files"], "the reference import archived nothing"

    for fs in (ext4_source, exfat_source):
        card = camera_card(fs.path / "plain-card", scale=0.5)
        drop_page_cache()  # what the import reads comes from the card's device
        paths = paths_on(tmp_path, tmp_path, f"{fs.fstype}-archive")
        result = await import_card(spawn_sidecar, paths, card)
        assert result["status"] == "completed", (fs.fstype, result)
        for key in ("scanResult", "hashResult", "finalizationResult"):
            assert result[key] == expected_result[key], (fs.fstype, key)
        assert len(result["errors"]) == len(expected_result["errors"]), (fs.fstype, result["errors"])
        assert import_snapshot(paths.db, paths.archive, card) == expected, fs.fstype
        for copy in org_files(paths.archive):  # byte for byte what the plain folder's import archived
            assert copy.read_bytes() == (reference.archive / copy.relative_to(paths.archive)).read_bytes()
        assert_archive_invariant(paths.db, paths.archive)
        assert fs.bytes_read() > 0  # the import read the card's own device


async def test_an_archive_on_an_exfat_drive_through_fuse_takes_a_card_and_its_reimport_writes_nothing(
    mounted: Mount, spawn_sidecar: Spawn, tmp_path: Path
):
    """External archive drives come formatted exFAT: no clones, no hard links, FUSE's flushes."""
    fs = mounted("exfat", 256, "exfat-archive")
    card = camera_card(tmp_path / "card", scale=0.3)
    paths = paths_on(fs.path, tmp_path, "archive")

    result = await import_card(spawn_sidecar, paths, card)

    assert result["status"] == "completed" and result["errors"] == [], result
    assert result["copyResult"]["strategy"] == "copy"
    assert_archive_invariant(paths.db, paths.archive)
    archived = {p: p.read_bytes() for p in org_files(paths.archive)}
    assert len(archived) == result["finalizationResult"]["totalFinalized"] + result["finalizationResult"].get(
        "totalSidecars", 0
    )

    again = await import_card(spawn_sidecar, paths, card)
    assert again["status"] == "completed" and again["finalizationResult"]["totalFinalized"] == 0, again
    assert again["hashResult"]["totalDuplicates"] == result["finalizationResult"]["totalFinalized"]
    assert {p: p.read_bytes() for p in org_files(paths.archive)} == archived
