"""Cards as cameras write them, generated: the folder layouts of Canon, Sony (AVCHD and XAVC's
PRIVATE/M4ROOT), GoPro and DJI cards with their metadata files, and what computers leave on a card
(AppleDouble `._*` files, `.Trashes`, `.Spotlight-V100`, `.fseventsd`, `.DS_Store`, Windows'
`System Volume Information` and `$RECYCLE.BIN`).

Content is pseudo-random, keyed by the path on the card (not where the card is), so every file has
its own hash and the same card written in two places is the same card; `scale` multiplies the
media sizes. Layouts follow the DCF standard (JEITA CP-3461: DCIM/,
`NNNXXXXX` folders, `XXXX0001` names), AVCHD's BDMV tree, and what GoPro (GX/GL prefixes, .LRV
proxies and .THM thumbnails) and DJI (.SRT telemetry beside each clip) write.
"""

from pathlib import Path

import blake3

from tests.support.archive import MEDIA, hash16, org_files, rows

# Relative path → size in bytes at scale 1.
CAMERA_MEDIA: dict[str, int] = {
    # Canon: JPEG + CR3 pairs, a movie with its .THM thumbnail.
    "DCIM/100CANON/IMG_0001.JPG": 600_000,
    "DCIM/100CANON/IMG_0001.CR3": 1_500_000,
    "DCIM/100CANON/IMG_0002.JPG": 700_000,
    "DCIM/100CANON/MVI_0003.MOV": 3_000_000,
    "DCIM/100CANON/MVI_0003.THM": 12_000,
    # GoPro: the clip, its low-resolution proxy (.LRV) and its thumbnail (.THM).
    "DCIM/100GOPRO/GX010004.MP4": 4_000_000,
    "DCIM/100GOPRO/GL010004.LRV": 400_000,
    "DCIM/100GOPRO/GX010004.THM": 9_000,
    "DCIM/100GOPRO/GOPR0005.JPG": 800_000,
    # DJI: clips with their telemetry subtitles, a photo.
    "DCIM/100MEDIA/DJI_0006.MP4": 2_500_000,
    "DCIM/100MEDIA/DJI_0006.SRT": 20_000,
    "DCIM/100MEDIA/DJI_0007.JPG": 900_000,
    # Sony AVCHD: the stream, and the metadata files its players need.
    "PRIVATE/AVCHD/BDMV/STREAM/00000.MTS": 2_000_000,
    "PRIVATE/AVCHD/BDMV/CLIPINF/00000.CPI": 300,
    "PRIVATE/AVCHD/BDMV/PLAYLIST/00000.MPL": 200,
    "PRIVATE/AVCHD/BDMV/INDEX.BDM": 120,
    "PRIVATE/AVCHD/BDMV/MOVIEOBJ.BDM": 150,
    # Sony XAVC S: the clip, its XML sidecar, the card's database and thumbnails.
    "PRIVATE/M4ROOT/CLIP/C0001.MP4": 3_500_000,
    "PRIVATE/M4ROOT/CLIP/C0001M01.XML": 3_000,
    "PRIVATE/M4ROOT/MEDIAPRO.XML": 2_000,
    "PRIVATE/M4ROOT/STATUS.BIN": 500,
    "PRIVATE/M4ROOT/THMBNL/C0001T01.JPG": 15_000,
}

# What macOS and Windows leave on a card; none of it is media.
COMPUTER_LEFTOVERS: dict[str, int] = {
    "DCIM/100CANON/._IMG_0001.JPG": 4_096,  # AppleDouble: resource fork and Finder info, not a JPEG
    "DCIM/100GOPRO/._GX010004.MP4": 4_096,
    "._DCIM": 4_096,
    ".DS_Store": 6_148,
    "DCIM/.DS_Store": 6_148,
    ".Trashes/501/IMG_0099.JPG": 50_000,
    ".Spotlight-V100/Store-V2/1234/store.db": 20_000,
    ".fseventsd/fseventsd-uuid": 36,
    "System Volume Information/IndexerVolumeGuid": 76,
    "System Volume Information/WPSettings.dat": 12,
    "$RECYCLE.BIN/S-1-5-21-1000/$RABCDEF.JPG": 30_000,
    "$RECYCLE.BIN/S-1-5-21-1000/desktop.ini": 129,
}


def write(root: Path, relative: str, size: int, seed: int = 0) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blake3.blake3(f"{relative}:{seed}".encode()).digest(length=size))
    return path


def camera_card(root: Path, *, scale: float = 1.0, leftovers: bool = True, seed: int = 0) -> Path:
    """Write a card with every camera layout above (and the computers' leftovers) under `root`."""
    for relative, size in CAMERA_MEDIA.items():
        write(root, relative, max(1, int(size * scale)), seed)
    if leftovers:
        for relative, size in COMPUTER_LEFTOVERS.items():
            write(root, relative, size, seed)
    return root


def photo_card(root: Path, photos: int, photo_bytes: int, videos: int = 0, video_bytes: int = 0) -> Path:
    """A plain DCIM card: `photos` JPEGs and `videos` MP4s of the given sizes, in file order."""
    for n in range(1, photos + 1):
        write(root, f"DCIM/100CAMRA/IMG_{n:04d}.JPG", photo_bytes)
    for n in range(1, videos + 1):
        write(root, f"DCIM/100CAMRA/MVI_{n:04d}.MP4", video_bytes)
    return root


def card_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def import_snapshot(db: Path, archive: Path, source: Path) -> dict[str, object]:
    """What an import of the card at `source` left, comparable between runs from other places:
    each media row (hash, archive path relative to the archive, names, source path relative to the
    card, size) and each archived file's content hash."""
    snapshot: dict[str, object] = {}
    for kind, (table, _, _) in MEDIA.items():
        found = rows(
            db,
            f"SELECT {kind}hash, {kind}loc, {kind}nam, {kind}namo, {kind}loco, file_size_bytes FROM {table}"
            f" ORDER BY {kind}hash",
        )
        snapshot[table] = [
            (h, str(Path(loc).relative_to(archive)), nam, namo, str(Path(loco).relative_to(source)), size)
            for h, loc, nam, namo, loco, size in found
        ]
    snapshot["files"] = {str(p.relative_to(archive)): hash16(p) for p in org_files(archive)}
    return snapshot
