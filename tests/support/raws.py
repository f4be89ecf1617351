"""RAW stand-ins for the thumbnail job and the bench, laid out byte by byte as cameras and converters
write them (Pillow cannot write these structures, and exiftool only replaces previews that exist,
creating none in a TIFF-based file): embedded JPEG and TIFF previews that the real exiftool finds,
and a Bayer-mosaic DNG that the real LibRaw (rawpy) demosaics."""

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

BLOCK = (200, 0, 40)  # jpeg_bytes' top-left quarter


def jpeg_bytes(width: int, height: int, *, orientation: int | None = None) -> bytes:
    """A JPEG with a BLOCK-coloured top-left quarter (and its own EXIF orientation, if given)."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    image.paste(BLOCK, (0, 0, width // 4, height // 4))
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(buffer, "JPEG", quality=90, exif=exif)
    return buffer.getvalue()


class TiffWriter:
    """Little-endian TIFF built by hand: data first, IFDs after, the header pointing at IFD0."""

    def __init__(self) -> None:
        self.data = bytearray(b"II*\x00\x00\x00\x00\x00")

    def blob(self, data: bytes) -> int:
        if len(self.data) % 2:
            self.data.append(0)
        offset = len(self.data)
        self.data += data
        return offset

    def ifd(self, entries: dict[int, tuple[int, list[int] | bytes]], next_ifd: int = 0) -> int:
        formats = {1: "B", 3: "H", 4: "I"}
        fields = []
        for tag in sorted(entries):
            kind, values = entries[tag]
            if isinstance(values, bytes):
                packed, count = values, len(values)
            else:
                packed, count = struct.pack(f"<{len(values)}{formats[kind]}", *values), len(values)
            value = packed.ljust(4, b"\x00") if len(packed) <= 4 else struct.pack("<I", self.blob(packed))
            fields.append(struct.pack("<HHI", tag, kind, count) + value)
        body = struct.pack("<H", len(fields)) + b"".join(fields) + struct.pack("<I", next_ifd)
        return self.blob(body)

    def finish(self, first_ifd: int) -> bytes:
        self.data[4:8] = struct.pack("<I", first_ifd)
        return bytes(self.data)


def make_dng(
    path: Path,
    *,
    orientation: int = 1,
    jpg_from_raw: bytes | None = None,
    thumbnail: bytes | None = None,
    rgb_preview: Image.Image | None = None,
) -> Path:
    """A DNG-shaped file as cameras and converters lay them out: a small RGB raster in IFD0 (with
    DNGVersion and the camera's Orientation), a JPEG in a SubIFD (exiftool: JpgFromRaw) and one in
    IFD1 (ThumbnailImage). Pillow cannot write this and exiftool only replaces previews that exist,
    so the structure is written here; the handler reads it with the real exiftool. `rgb_preview`
    makes IFD0's raster a reduced-resolution image, as early NEFs have (exiftool: ThumbnailTIFF up
    to 256 px wide, PreviewTIFF above)."""
    raster = rgb_preview or Image.new("RGB", (60, 40), (90, 90, 90))
    width, height = raster.size
    tiff = TiffWriter()
    pixels = tiff.blob(raster.tobytes())
    ifd0: dict[int, tuple[int, list[int] | bytes]] = {
        0x00FE: (4, [0 if rgb_preview is None else 1]),
        0x0100: (4, [width]),
        0x0101: (4, [height]),
        0x0102: (3, [8, 8, 8]),
        0x0103: (3, [1]),
        0x0106: (3, [2]),
        0x010F: (2, b"TestCam\x00"),
        0x0110: (2, b"Stand-in\x00"),
        0x0111: (4, [pixels]),
        0x0112: (3, [orientation]),
        0x0115: (3, [3]),
        0x0116: (4, [height]),
        0x0117: (4, [width * height * 3]),
        0xC612: (1, [1, 4, 0, 0]),
    }
    if jpg_from_raw is not None:
        start = tiff.blob(jpg_from_raw)
        sub = tiff.ifd(
            {0x00FE: (4, [1]), 0x0103: (3, [6]), 0x0201: (4, [start]), 0x0202: (4, [len(jpg_from_raw)])}
        )
        ifd0[0x014A] = (4, [sub])
    ifd1 = 0
    if thumbnail is not None:
        start = tiff.blob(thumbnail)
        ifd1 = tiff.ifd({0x0103: (3, [6]), 0x0201: (4, [start]), 0x0202: (4, [len(thumbnail)])})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tiff.finish(tiff.ifd(ifd0, ifd1)))
    return path


def make_cfa_dng(path: Path, image: Image.Image, *, orientation: int = 1) -> Path:
    """A DNG with no preview at all: `image` mosaicked through an RGGB Bayer filter, 16-bit linear
    samples (sRGB decoded with gamma 2.2) up to a white level of 4095, and the camera's Orientation.
    The least DNG 1.4 asks for a CFA image (DNGVersion, UniqueCameraModel, CFARepeatPatternDim,
    CFAPattern, WhiteLevel; colour matrices are optional and LibRaw has defaults)."""
    width, height = image.size
    white = 4095
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
    linear = np.round((rgb / 255) ** 2.2 * white).astype("<u2")
    mosaic = np.empty((height, width), dtype="<u2")
    mosaic[0::2, 0::2] = linear[0::2, 0::2, 0]  # R G
    mosaic[0::2, 1::2] = linear[0::2, 1::2, 1]  # G B
    mosaic[1::2, 0::2] = linear[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = linear[1::2, 1::2, 2]
    samples = mosaic.tobytes()
    tiff = TiffWriter()
    data = tiff.blob(bytes(samples))
    ifd0: dict[int, tuple[int, list[int] | bytes]] = {
        0x00FE: (4, [0]),
        0x0100: (4, [width]),
        0x0101: (4, [height]),
        0x0102: (3, [16]),
        0x0103: (3, [1]),
        0x0106: (3, [32803]),  # CFA
        0x010F: (2, b"TestCam\x00"),
        0x0110: (2, b"Stand-in\x00"),
        0x0111: (4, [data]),
        0x0112: (3, [orientation]),
        0x0115: (3, [1]),
        0x0116: (4, [height]),
        0x0117: (4, [len(samples)]),
        0x828D: (3, [2, 2]),  # CFARepeatPatternDim
        0x828E: (1, [0, 1, 1, 2]),  # CFAPattern: R G / G B
        0xC612: (1, [1, 4, 0, 0]),  # DNGVersion
        0xC614: (2, b"TestCam Stand-in\x00"),  # UniqueCameraModel
        0xC61D: (4, [white]),  # WhiteLevel
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tiff.finish(tiff.ifd(ifd0)))
    return path
