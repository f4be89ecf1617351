"""The tests' FlashPix writer (tests/support/flashpix.py), read back by olefile and Pillow: the
compound file holds exactly the streams given, and the image decodes to the pixels written."""

import olefile
import pytest
from PIL import Image

from tests.support.flashpix import (
    FLASHPIX_CLSID,
    MINI_STREAM_CUTOFF,
    NOSTREAM,
    SECTOR,
    Storage,
    compound_file,
    write_flashpix,
)

# Strict: olefile raises on anything it finds against [MS-CFB], not only on what stops it.
STRICT = olefile.DEFECT_POTENTIAL


def _pattern(size: int, seed: int) -> bytes:
    return bytes((seed + i * 7) % 251 for i in range(size))


def test_olefile_lists_every_stream_with_its_size_and_bytes() -> None:
    streams = {
        "small": _pattern(100, 1),  # the mini stream
        "just under": _pattern(MINI_STREAM_CUTOFF - 1, 2),
        "cutoff": _pattern(MINI_STREAM_CUTOFF, 3),  # sectors of its own from 4096 bytes on
        "large": _pattern(70_000, 4),  # more sectors than one FAT sector lists
        "empty": b"",
    }
    siblings = {f"stream {i:02d}": _pattern(i * 50, i) for i in range(12)}
    inner, leaf = _pattern(600, 5), _pattern(5000, 6)
    folder = Storage({"inner": inner, "deeper": Storage({"leaf": leaf})})
    data = compound_file(Storage({**streams, **siblings, "folder": folder}, FLASHPIX_CLSID))

    assert len(data) % SECTOR == 0
    ole = olefile.OleFileIO(data, raise_defects=STRICT)
    expected: dict[tuple[str, ...], bytes] = {
        (name,): value for name, value in {**streams, **siblings}.items()
    }
    expected |= {("folder", "inner"): inner, ("folder", "deeper", "leaf"): leaf}
    assert sorted(tuple(path) for path in ole.listdir()) == sorted(expected)
    for path, value in expected.items():
        assert ole.get_size(list(path)) == len(value), path
        assert ole.openstream(list(path)).read() == value, path
    assert ole.get_type(["folder"]) == olefile.STGTY_STORAGE
    assert ole.root.clsid == str(FLASHPIX_CLSID).upper()
    # Below the cutoff a stream lives in the mini stream, from it on in sectors of its own.
    assert ole.minisectorcutoff == MINI_STREAM_CUTOFF
    assert ole.root.size == sum(-(-len(v) // 64) * 64 for v in expected.values() if len(v) < 4096)
    assert ole.num_fat_sectors > 1


@pytest.mark.parametrize("count", [1, 2, 3, 6, 7, 12])
def test_each_storage_s_children_form_a_red_black_tree_in_name_order(count: int) -> None:
    names = [f"s{'x' * (i % 4)}{i}" for i in range(count)]
    ole = olefile.OleFileIO(compound_file(Storage({name: b"x" for name in names})), raise_defects=STRICT)
    entries = ole.direntries
    in_order: list[str] = []

    def walk(sid: int, parent_red: bool) -> int:
        """The subtree's black height; checks that no red node has a red child."""
        if sid == NOSTREAM:
            return 1
        entry = entries[sid]
        red = entry.color == 0
        assert not (red and parent_red), f"{entry.name} red under red"
        left = walk(entry.sid_left, red)
        in_order.append(entry.name)
        right = walk(entry.sid_right, red)
        assert left == right, f"black heights differ under {entry.name}"
        return left + (0 if red else 1)

    root = ole.root.sid_child
    assert entries[root].color == 1, "the tree's root is black"
    walk(root, False)
    # [MS-CFB] 2.6.4: shorter names first, then by the upper-cased name.
    assert in_order == sorted(names, key=lambda name: (len(name), name.upper()))


@pytest.mark.parametrize("size", [(320, 192), (64, 64), (128, 320)])
def test_pillow_decodes_a_written_flashpix_to_the_same_pixels(tmp_path, size: tuple[int, int]) -> None:
    # Sizes of whole tiles: Pillow's reader clips the edge tiles, which the thumbnail job undoes.
    width, height = size
    image = Image.new("RGB", size, (128, 128, 128))
    corners = {(0, 0): (255, 0, 0), (width - 1, 0): (0, 255, 0), (0, height - 1): (0, 0, 255)}
    corners[(width - 1, height - 1)] = (255, 255, 0)
    for (x, y), colour in corners.items():
        image.paste(colour, (max(0, x - 7), max(0, y - 7), x + 1, y + 1))

    path = write_flashpix(tmp_path / "photo.fpx", image)

    olefile.OleFileIO(str(path), raise_defects=STRICT).close()
    with Image.open(path) as decoded:
        assert (decoded.format, decoded.mode, decoded.size) == ("FPX", "RGB", size)
        decoded.load()
        for xy, colour in corners.items():
            shown = decoded.getpixel(xy)
            assert isinstance(shown, tuple)
            assert all(abs(a - b) <= 8 for a, b in zip(shown, colour, strict=True)), (xy, shown)


def test_a_flashpix_has_every_resolution_down_to_one_tile(tmp_path) -> None:
    path = write_flashpix(tmp_path / "photo.fpx", Image.new("RGB", (300, 130), (10, 20, 30)))

    with olefile.OleFileIO(str(path), raise_defects=STRICT) as ole:
        contents = ole.getproperties(["Data Object Store 000001", "\x05Image Contents"])
        # 300x130, 150x65, 75x33, 38x17: halved until the long side fits a 64-pixel tile.
        sizes = [(38, 17), (75, 33), (150, 65), (300, 130)]
        assert contents[0x01000000] == len(sizes)
        assert (contents[0x01000002], contents[0x01000003]) == (300, 130)
        for number, (width, height) in enumerate(sizes):
            assert (contents[0x02000000 | number << 16], contents[0x02000001 | number << 16]) == (
                width,
                height,
            )
            header = ["Data Object Store 000001", f"Resolution {number:04d}", "Subimage 0000 Header"]
            assert ole.exists(header)
