"""Cards as cameras write them (issue 13, item 4), served by the card emulator to the real sidecar:
every camera's media archived with its row and its metadata files beside it; what computers leave
on cards skipped, each named once with its reason, and never even read from the card."""

from pathlib import Path

from tests.filesystems.conftest import StartCard
from tests.support.archive import add_location, assert_archive_invariant, hash16, org_files, rows
from tests.support.cards import CAMERA_MEDIA, camera_card
from tests.support.client import SidecarPaths, Spawn

LEFT_BY_COMPUTERS = {
    # Folders are named once and never walked; files one by one.
    "$RECYCLE.BIN": "system folder",
    ".Spotlight-V100": "system folder",
    ".Trashes": "system folder",
    ".fseventsd": "system folder",
    "System Volume Information": "system folder",
    ".DS_Store": "system file",
    "DCIM/.DS_Store": "system file",
    "._DCIM": "AppleDouble",
    "DCIM/100CANON/._IMG_0001.JPG": "AppleDouble",
    "DCIM/100GOPRO/._GX010004.MP4": "AppleDouble",
}
# The players' metadata of AVCHD and XAVC: not media, skipped as unknown types.
CAMERA_METADATA = {
    "PRIVATE/AVCHD/BDMV/INDEX.BDM",
    "PRIVATE/AVCHD/BDMV/MOVIEOBJ.BDM",
    "PRIVATE/AVCHD/BDMV/CLIPINF/00000.CPI",
    "PRIVATE/AVCHD/BDMV/PLAYLIST/00000.MPL",
    "PRIVATE/M4ROOT/STATUS.BIN",
}
IMAGES = {"IMG_0001.JPG", "IMG_0001.CR3", "IMG_0002.JPG", "GOPR0005.JPG", "DJI_0007.JPG", "C0001T01.JPG"}
VIDEOS = {"MVI_0003.MOV", "GX010004.MP4", "GL010004.LRV", "DJI_0006.MP4", "00000.MTS", "C0001.MP4"}
# Sidecar → the clip it lands beside, as <clip's hash><sidecar's extension>.
BESIDE = {
    "DCIM/100CANON/MVI_0003.THM": "DCIM/100CANON/MVI_0003.MOV",
    "DCIM/100GOPRO/GX010004.THM": "DCIM/100GOPRO/GX010004.MP4",
    "DCIM/100MEDIA/DJI_0006.SRT": "DCIM/100MEDIA/DJI_0006.MP4",
}


async def test_a_camera_card_is_archived_and_what_computers_left_on_it_is_skipped_unread(
    card: StartCard, spawn_sidecar: Spawn, tmp_path: Path
):
    folder = camera_card(tmp_path / "card-folder")
    emulator = card(folder)
    paths = SidecarPaths(db=tmp_path / "au-archive.db", archive=tmp_path / "archive")
    paths.archive.mkdir()
    sidecar = await spawn_sidecar(paths.args())
    location = add_location(paths.db)

    result = await sidecar.request("import:v2:start", location.start_params(emulator.path), timeout=120)

    assert result["status"] == "completed" and result["errors"] == [], result
    skipped = {str(Path(s["path"]).relative_to(emulator.path)): s["reason"] for s in result["skipped"]}
    assert skipped.keys() == LEFT_BY_COMPUTERS.keys() | CAMERA_METADATA
    for name, kind in LEFT_BY_COMPUTERS.items():
        assert skipped[name].startswith(kind) and "not media" in skipped[name], (name, skipped[name])
    for name in CAMERA_METADATA:
        assert skipped[name].startswith("unknown extension"), (name, skipped[name])
    assert result["scanResult"]["skipped"] == len(skipped)
    read = emulator.stats()["files"]
    assert [name for name in read if any(part in skipped for part in _prefixes(name))] == []

    assert {n for (n,) in rows(paths.db, "SELECT imgnamo FROM imgs")} == IMAGES
    assert {n for (n,) in rows(paths.db, "SELECT vidnamo FROM vids")} == VIDEOS
    archived = {p.name: p for p in org_files(paths.archive)}
    for relative in CAMERA_MEDIA.keys() - CAMERA_METADATA:  # every medium and sidecar, byte for byte
        source = folder / relative
        matches = [p for p in archived.values() if p.stat().st_size == source.stat().st_size]
        assert any(p.read_bytes() == source.read_bytes() for p in matches), relative
    for sidecar_file, clip in BESIDE.items():
        beside = archived[f"{hash16(folder / clip)}{Path(sidecar_file).suffix.lower()}"]
        assert beside.read_bytes() == (folder / sidecar_file).read_bytes()
        assert beside.parent.name.startswith("org-vid-")
    assert_archive_invariant(paths.db, paths.archive)


def _prefixes(served: str) -> list[str]:
    """'/a/b/c' → ['a', 'a/b', 'a/b/c']: a file and each folder holding it, relative to the card."""
    parts = served.strip("/").split("/")
    return ["/".join(parts[: n + 1]) for n in range(len(parts))]
