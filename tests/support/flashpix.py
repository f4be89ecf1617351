"""Kodak FlashPix images for the tests, since nothing on the machine writes one: a small Microsoft
Compound File writer (CFB version 3, 512-byte sectors) and, over it, the FlashPix storages and
streams Pillow's reader needs, the pixels in JPEG-compressed 64x64 tiles.

The container follows [MS-CFB] (Compound File Binary File Format) and the property sets
[MS-OLEPS]; the FlashPix layout follows what Pillow's reader asks for (PIL/FpxImagePlugin.py:
_open_index, _open_subimage) and olefile's reading of property sets (olefile/olefile.py:
getproperties), and where Pillow is silent, what a real FlashPix holds (Pillow's
Tests/images/input_bw_one_band.fpx, read with olefile): the FlashPix specification itself was not
at hand. Test support only.
"""

import io
import struct
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

# [MS-CFB] 2.1 and 2.2: sector numbers with a meaning of their own, and the header's constants.
SECTOR = 512
MINI_SECTOR = 64
MINI_STREAM_CUTOFF = 4096
FREESECT = 0xFFFFFFFF
ENDOFCHAIN = 0xFFFFFFFE
FATSECT = 0xFFFFFFFD
NOSTREAM = 0xFFFFFFFF
SIGNATURE = bytes.fromhex("D0CF11E0A1B11AE1")
HEADER_DIFAT_ENTRIES = 109  # FAT sectors the header lists itself; more would need DIFAT sectors
_ENTRY = 128
_IDS_PER_SECTOR = SECTOR // 4
# [MS-CFB] 2.6.1: object types.
_STORAGE, _STREAM, _ROOT = 1, 2, 5


@dataclass(frozen=True, slots=True)
class Storage:
    """A folder of the compound file: streams (bytes) and storages by name (at most 31 UTF-16
    units each)."""

    entries: dict[str, "Storage | bytes"] = field(default_factory=dict)
    clsid: uuid.UUID | None = None


@dataclass(slots=True)
class _Entry:
    name: str
    kind: int
    clsid: uuid.UUID | None = None
    data: bytes = b""
    left: int = NOSTREAM
    right: int = NOSTREAM
    child: int = NOSTREAM
    start: int = ENDOFCHAIN
    size: int = 0
    black: bool = True


def compound_file(root: Storage) -> bytes:
    """The bytes of a compound file holding `root`'s tree. Streams under 4096 bytes go to the mini
    stream (64-byte mini sectors chained by the MiniFAT), larger ones to sectors of their own."""
    entries = [_Entry("Root Entry", _ROOT, root.clsid)]
    _add_children(entries, 0, root)

    # Layout: large streams, the mini stream, the MiniFAT, the directory, the FAT.
    sectors: list[bytes] = []
    chains: list[tuple[int, int]] = []  # (first sector, count) of every chain in the FAT
    mini_stream = bytearray()
    mini_chains: list[tuple[int, int]] = []
    for entry in entries:
        if entry.kind != _STREAM or not entry.data:
            continue
        entry.size = len(entry.data)
        if entry.size < MINI_STREAM_CUTOFF:
            entry.start = len(mini_stream) // MINI_SECTOR
            mini_stream += _padded(entry.data, MINI_SECTOR)
            mini_chains.append((entry.start, len(mini_stream) // MINI_SECTOR - entry.start))
        else:
            entry.start = _append(sectors, chains, entry.data)
    # The root entry's stream is the mini stream ([MS-CFB] 2.6.2).
    if mini_stream:
        entries[0].start = _append(sectors, chains, bytes(mini_stream))
        entries[0].size = len(mini_stream)
    mini_fat = _chain_table(mini_chains, len(mini_stream) // MINI_SECTOR, FREESECT)
    mini_fat_start = _append(sectors, chains, mini_fat) if mini_chains else ENDOFCHAIN
    mini_fat_count = len(mini_fat) // SECTOR if mini_chains else 0
    directory = b"".join(_directory_entry(entry) for entry in entries)
    directory += _unused_entry() * (-len(entries) % (SECTOR // _ENTRY))
    directory_start = _append(sectors, chains, directory)

    # The FAT covers itself too: grow it until its own sectors fit.
    fat_count = 1
    while fat_count * _IDS_PER_SECTOR < len(sectors) + fat_count:
        fat_count += 1
    if fat_count > HEADER_DIFAT_ENTRIES:
        raise ValueError(f"{fat_count} FAT sectors need DIFAT sectors, which this writer does not make")
    fat_start = len(sectors)
    fat = _chain_table(chains, fat_start, FREESECT, fat_count * _IDS_PER_SECTOR)
    fat_ids = list(struct.unpack(f"<{len(fat) // 4}I", fat))
    fat_ids[fat_start : fat_start + fat_count] = [FATSECT] * fat_count
    fat = struct.pack(f"<{len(fat_ids)}I", *fat_ids)

    difat = [fat_start + i for i in range(fat_count)]
    difat += [FREESECT] * (HEADER_DIFAT_ENTRIES - fat_count)
    header = b"".join(
        [
            SIGNATURE,
            bytes(16),  # header CLSID: zero
            struct.pack("<HHHHH", 0x003E, 0x0003, 0xFFFE, 9, 6),  # minor, major v3, byte order, shifts
            bytes(6),
            struct.pack("<II", 0, fat_count),  # directory sectors: always 0 in version 3
            struct.pack("<II", directory_start, 0),  # transaction signature 0
            struct.pack("<I", MINI_STREAM_CUTOFF),
            struct.pack("<II", mini_fat_start, mini_fat_count),
            struct.pack("<II", ENDOFCHAIN, 0),  # no DIFAT sectors
            struct.pack(f"<{HEADER_DIFAT_ENTRIES}I", *difat),
        ]
    )
    assert len(header) == SECTOR
    return header + b"".join(sectors) + fat


def _add_children(entries: list[_Entry], parent: int, storage: Storage) -> None:
    """Appends `storage`'s children and links them under `parent` as a red-black tree ([MS-CFB]
    2.6.4), ordered by name length, then by upper-cased name."""
    names = sorted(storage.entries, key=lambda name: (len(name.encode("utf-16-le")), name.upper()))
    ids = {}
    for name in names:
        value = storage.entries[name]
        if len(name) > 31:
            raise ValueError(f"name longer than 31 characters: {name!r}")
        ids[name] = len(entries)
        if isinstance(value, Storage):
            entries.append(_Entry(name, _STORAGE, value.clsid))
        else:
            entries.append(_Entry(name, _STREAM, data=value))
    entries[parent].child = _link([ids[name] for name in names], entries, 0, _red_depth(len(names)))
    for name in names:
        value = storage.entries[name]
        if isinstance(value, Storage):
            _add_children(entries, ids[name], value)


def _red_depth(count: int) -> int:
    """Where a tree of `count` nodes built by halving has its red nodes: halving keeps every empty
    child at depth d or d + 1, so with the nodes at depth d red (none when the tree is perfect)
    every path has d black nodes and no red node has a red child."""
    depth = (count + 1).bit_length() - 1
    return -1 if count + 1 == 1 << depth else depth


def _link(ordered: list[int], entries: list[_Entry], depth: int, red_depth: int) -> int:
    """The root of the subtree of `ordered` (sibling ids in order); links its children."""
    if not ordered:
        return NOSTREAM
    middle = len(ordered) // 2
    node = entries[ordered[middle]]
    node.black = depth != red_depth
    node.left = _link(ordered[:middle], entries, depth + 1, red_depth)
    node.right = _link(ordered[middle + 1 :], entries, depth + 1, red_depth)
    return ordered[middle]


def _padded(data: bytes, unit: int) -> bytes:
    return data + bytes(-len(data) % unit)


def _append(sectors: list[bytes], chains: list[tuple[int, int]], data: bytes) -> int:
    """Stores `data` in new consecutive sectors; returns the first one's number."""
    first = len(sectors)
    padded = _padded(data, SECTOR)
    sectors.extend(padded[i : i + SECTOR] for i in range(0, len(padded), SECTOR))
    chains.append((first, len(sectors) - first))
    return first


def _chain_table(chains: list[tuple[int, int]], used: int, free: int, total: int | None = None) -> bytes:
    """A FAT or MiniFAT: each sector names the next of its chain, the last ENDOFCHAIN; padded with
    `free` to whole sectors (or to `total` entries)."""
    table = [free] * (total if total is not None else used)
    for first, count in chains:
        for sector in range(first, first + count - 1):
            table[sector] = sector + 1
        table[first + count - 1] = ENDOFCHAIN
    table += [free] * (-len(table) % _IDS_PER_SECTOR)
    return struct.pack(f"<{len(table)}I", *table)


def _directory_entry(entry: _Entry) -> bytes:
    """[MS-CFB] 2.6.1: 128 bytes; times left zero (allowed for streams, and for the root)."""
    name = (entry.name + "\0").encode("utf-16-le")
    return b"".join(
        [
            name.ljust(64, b"\0"),
            struct.pack("<HBB", len(name), entry.kind, int(entry.black)),
            struct.pack("<III", entry.left, entry.right, entry.child),
            entry.clsid.bytes_le if entry.clsid else bytes(16),
            bytes(4 + 8 + 8),  # state bits, creation and modification times
            struct.pack("<IQ", entry.start if entry.kind != _STORAGE else 0, entry.size),
        ]
    )


def _unused_entry() -> bytes:
    return bytes(68) + struct.pack("<III", NOSTREAM, NOSTREAM, NOSTREAM) + bytes(48)


# --- FlashPix ---

# The root storage's class, which Pillow checks (FpxImagePlugin._open: "bad root CLSID").
FLASHPIX_CLSID = uuid.UUID("56616700-C154-11CE-8553-00AA00A1F95B")
TILE = 64
# [MS-OLEPS] 2.15 property types.
_VT_UI4 = 0x13
_VT_BLOB = 0x41
_VT_VECTOR = 0x1000
# A channel's colour space and index (FpxImagePlugin.MODES: NIFRGB is 0x0003xxxx).
_NIFRGB = (0x00030000, 0x00030001, 0x00030002)
# The subimage streams start with 28 bytes Pillow skips unread ("skip prefix"; zero here), and tile
# offsets count from after them (FpxImagePlugin._open_subimage: `+ 28`; in input_bw_one_band.fpx
# the last tile then ends where its stream does).
_PREFIX = bytes(28)
# The storages' classes, as input_bw_one_band.fpx has them; Pillow reads only the root's.
_STORE_CLSID = uuid.UUID("56616000-C154-11CE-8553-00AA00A1F95B")
_RESOLUTION_CLSID = uuid.UUID("56616100-C154-11CE-8553-00AA00A1F95B")
_JPEG = 2  # a tile's compression type: 0 uncompressed, 1 single colour, 2 JPEG


def write_flashpix(path: Path, image: Image.Image, quality: int = 95) -> Path:
    """A FlashPix image of the RGB `image` at `path`: every resolution from the full one down to
    the one that fits a 64x64 tile, each in 64x64 JPEG tiles."""
    if image.mode != "RGB":
        raise ValueError(f"RGB images only, not {image.mode}")
    levels = [image]
    while max(levels[-1].size) > TILE:  # how Pillow counts them (FpxImagePlugin._open_index)
        width, height = levels[-1].size
        levels.append(levels[-1].resize(((width + 1) // 2, (height + 1) // 2), Image.Resampling.BOX))
    levels.reverse()  # "Resolution 0000" is the smallest
    store: dict[str, Storage | bytes] = {"\x05Image Contents": _image_contents(levels)}
    for number, level in enumerate(levels):
        header, data = _subimage(level, quality)
        store[f"Resolution {number:04d}"] = Storage(
            {"Subimage 0000 Header": header, "Subimage 0000 Data": data}, _RESOLUTION_CLSID
        )
    root = Storage({"Data Object Store 000001": Storage(store, _STORE_CLSID)}, FLASHPIX_CLSID)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(compound_file(root))
    return path


def _image_contents(levels: list[Image.Image]) -> bytes:
    """The Image Contents property set: the number of resolutions, the full size, and each
    resolution's size, colour space per channel and sample format (8-bit unsigned)."""
    width, height = levels[-1].size
    properties: dict[int, tuple[int, bytes]] = {
        0x01000000: (_VT_UI4, struct.pack("<I", len(levels))),
        0x01000002: (_VT_UI4, struct.pack("<I", width)),
        0x01000003: (_VT_UI4, struct.pack("<I", height)),
    }
    for number, level in enumerate(levels):
        ident = number << 16
        colours = struct.pack(f"<II{len(_NIFRGB)}I", 1, len(_NIFRGB), *_NIFRGB)
        properties[0x02000000 | ident] = (_VT_UI4, struct.pack("<I", level.width))
        properties[0x02000001 | ident] = (_VT_UI4, struct.pack("<I", level.height))
        properties[0x02000002 | ident] = (_VT_BLOB, struct.pack("<I", len(colours)) + colours)
        properties[0x02000003 | ident] = (_VT_VECTOR | _VT_UI4, struct.pack("<4I", 3, 0x11, 0x11, 0x11))
    return property_set(properties)


def property_set(properties: dict[int, tuple[int, bytes]]) -> bytes:
    """An [MS-OLEPS] property set stream with one section: `properties` maps an id to its type and
    its value's bytes (padded here to 4 bytes). The section's FMTID is left zero: neither Pillow
    nor olefile reads it."""
    count = len(properties)
    offsets = []
    values = bytearray()
    for ident, (kind, value) in sorted(properties.items()):
        offsets.append(struct.pack("<II", ident, 8 + 8 * count + len(values)))
        values += struct.pack("<I", kind) + _padded(value, 4)
    section = struct.pack("<II", 8 + 8 * count + len(values), count) + b"".join(offsets) + values
    header = struct.pack("<HHI", 0xFFFE, 0, 0) + bytes(16) + struct.pack("<I", 1)
    return header + bytes(16) + struct.pack("<I", len(header) + 20) + section


def _subimage(level: Image.Image, quality: int) -> tuple[bytes, bytes]:
    """The Subimage Header stream (size, tiling, and a table of 16-byte entries: offset, length,
    compression type and subtype of each tile, row by row) and the Subimage Data stream."""
    columns = -(-level.width // TILE)
    rows = -(-level.height // TILE)
    # Edge tiles are stored whole, padded (black here): a FlashPix's 70x46 image has two 64x64 tiles
    # of 4096 bytes each (Pillow's Tests/images/input_bw_one_band.fpx, read with olefile).
    padded = level.crop((0, 0, columns * TILE, rows * TILE))
    table = bytearray()
    data = bytearray()
    # The subtype's bytes Pillow reads: [2] internal colour conversion (RGB stored as YCbCr, as a
    # plain JPEG is), [3] the JPEG tables' index (0: each tile carries its own); the rest zero.
    subtype = bytes([0, 0, 1, 0])
    for row in range(rows):
        for column in range(columns):
            tile = padded.crop((column * TILE, row * TILE, (column + 1) * TILE, (row + 1) * TILE))
            out = io.BytesIO()
            tile.save(out, "JPEG", quality=quality, subsampling=0)  # 4:4:4
            table += struct.pack("<III", len(data), out.tell(), _JPEG) + subtype
            data += out.getvalue()
    fields = (level.width, level.height, columns * rows, TILE, TILE, 3, 36, 16)
    header = _PREFIX + struct.pack("<9I", 36, *fields) + table
    return header, _PREFIX + bytes(data)
