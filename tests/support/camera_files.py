"""Stand-ins for what real cameras write, made here with Pillow, exiftool and ffmpeg (never files
taken from elsewhere): RAWs whose first image is only the preview, an iPhone still with Apple's
maker note, an iPhone-dated MOV, a variable-rate video, anamorphic DV.

Every maker writes to the path it is given and returns it.
"""

import io
import struct
import subprocess
from pathlib import Path

from PIL import Image

from tests.support.media import exiftool, ffmpeg

_BYTE, _ASCII, _SHORT, _LONG = 1, 2, 3, 4
_PACK = {_BYTE: "B", _SHORT: "H", _LONG: "I"}


class _Tiff:
    """A little-endian TIFF laid out by hand (Pillow cannot write SubIFDs or a CR2 header): blobs
    appended, IFDs pointing at them. Just enough structure for exiftool to read the tags."""

    def __init__(self, after_header: bytes = b"") -> None:
        self.data = bytearray(b"II*\0\0\0\0\0" + after_header)

    def blob(self, payload: bytes) -> int:
        self.data += b"\0" * (len(self.data) % 2)
        at = len(self.data)
        self.data += payload
        return at

    def ifd(self, entries: dict[int, tuple[int, str | int | list[int]]]) -> int:
        encoded = {tag: (kind, _encode(kind, value)) for tag, (kind, value) in entries.items()}
        outside = {tag: self.blob(raw) for tag, (_, raw) in encoded.items() if len(raw) > 4}
        body = struct.pack("<H", len(encoded))
        for tag in sorted(encoded):
            kind, raw = encoded[tag]
            size = 1 if kind in (_BYTE, _ASCII) else struct.calcsize(_PACK[kind])
            field = struct.pack("<I", outside[tag]) if tag in outside else raw.ljust(4, b"\0")
            body += struct.pack("<HHI", tag, kind, len(raw) // size) + field
        return self.blob(body + struct.pack("<I", 0))

    def write(self, path: Path, first_ifd: int) -> Path:
        self.data[4:8] = struct.pack("<I", first_ifd)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(self.data))
        return path


def _encode(kind: int, value: str | int | list[int]) -> bytes:
    if kind == _ASCII:
        assert isinstance(value, str)
        return value.encode() + b"\0"
    values = value if isinstance(value, list) else [value]
    assert all(isinstance(v, int) for v in values)
    return struct.pack("<" + _PACK[kind] * len(values), *values)


def _run(*args: str) -> None:
    subprocess.run(args, check=True, stdin=subprocess.DEVNULL, capture_output=True)


def _tiny_h264() -> list[str]:
    """ffmpeg's arguments up to the output options: a 0.4 s 320x240 test clip, x264."""
    return [
        ffmpeg(),
        *("-nostdin", "-v", "error", "-y", "-f", "lavfi"),
        *("-i", "testsrc=size=320x240:rate=25:duration=0.4"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
    ]


def _jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 200)).save(out, "JPEG")
    return out.getvalue()


def make_cr2_standin(
    path: Path, preview: tuple[int, int], sensor: tuple[int, int], *, orientation: int = 1
) -> Path:
    """A CR2 as a Canon 350D lays it out: the `CR\\x02\\0` header, IFD0 a JPEG preview smaller
    than the sensor, the EXIF IFD's ExifImageWidth/Height the sensor's size."""
    tiff = _Tiff(b"CR\x02\x00\0\0\0\0")
    image = _jpeg(*preview)
    at = tiff.blob(image)
    exif = tiff.ifd(
        {
            0x9003: (_ASCII, "2005:06:07 08:09:10"),
            0xA002: (_LONG, sensor[0]),
            0xA003: (_LONG, sensor[1]),
        }
    )
    ifd0 = tiff.ifd(
        {
            0x0100: (_LONG, preview[0]),
            0x0101: (_LONG, preview[1]),
            0x0103: (_SHORT, 6),  # JPEG
            0x010F: (_ASCII, "Canon"),
            0x0110: (_ASCII, "Canon EOS 350D DIGITAL"),
            0x0111: (_LONG, at),
            0x0112: (_SHORT, orientation),
            0x0117: (_LONG, len(image)),
            0x8769: (_LONG, exif),
        }
    )
    return tiff.write(path, ifd0)


def make_dng_standin(path: Path, preview: tuple[int, int], sensor: tuple[int, int]) -> Path:
    """A DNG's layout: IFD0 a small preview (SubfileType 1), a SubIFD the full-resolution raw
    (SubfileType 0). No pixel data: exiftool reads only the tags."""
    tiff = _Tiff()
    raw = tiff.ifd(
        {
            0x00FE: (_LONG, 0),
            0x0100: (_LONG, sensor[0]),
            0x0101: (_LONG, sensor[1]),
            0x0102: (_SHORT, 16),
            0x0103: (_SHORT, 1),
            0x0106: (_SHORT, 32803),  # CFA
        }
    )
    ifd0 = tiff.ifd(
        {
            0x00FE: (_LONG, 1),
            0x0100: (_LONG, preview[0]),
            0x0101: (_LONG, preview[1]),
            0x0102: (_SHORT, [8, 8, 8]),
            0x0103: (_SHORT, 1),
            0x0106: (_SHORT, 2),
            0x010F: (_ASCII, "Leica"),
            0x014A: (_LONG, raw),  # SubIFDs
            0xC612: (_BYTE, [1, 4, 0, 0]),  # DNGVersion
        }
    )
    return tiff.write(path, ifd0)


def make_raf_standin(path: Path, preview: tuple[int, int], sensor: tuple[int, int]) -> Path:
    """A Fujifilm RAF's layout as exiftool's FujiFilm.pm ProcessRAF reads it: the "FUJIFILM"
    header pointing at an embedded JPEG preview (whose size is all the JPEG knows) and at a RAF
    directory of big-endian (tag, length, value) entries holding RawImageFullSize (with borders)
    and RawImageCroppedSize, each as height then width."""
    preview_jpeg = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "FUJIFILM"
    exif[0x0110] = "X-T3"
    Image.new("RGB", preview, (40, 140, 60)).save(preview_jpeg, "JPEG", exif=exif.tobytes())
    jpeg = preview_jpeg.getvalue()
    width, height = sensor
    directory = struct.pack(">I", 2)
    directory += struct.pack(">HHHH", 0x100, 4, height + 32, width + 48)  # RawImageFullSize
    directory += struct.pack(">HHHH", 0x111, 4, height, width)  # RawImageCroppedSize
    directory_at, jpeg_at = 0x100, 0x200
    head = bytearray(jpeg_at)
    head[0:28] = b"FUJIFILMCCD-RAW 0201FF383501"
    head[0x1C:0x24] = b"X-T3\0\0\0\0"
    head[0x3C:0x40] = b"0100"  # RAF version
    head[0x54:0x5C] = struct.pack(">II", jpeg_at, len(jpeg))
    head[0x5C:0x60] = struct.pack(">I", directory_at)
    head[directory_at : directory_at + len(directory)] = directory
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(head) + jpeg)
    return path


def apple_maker_note(content_identifier: str) -> bytes:
    """An iPhone's maker note holding only tag 0x0011, the Live Photo's identifier: "Apple iOS\\0",
    version, byte order, then an IFD whose offsets count from the note's start (exiftool's
    MakerNotes.pm `MakerNoteApple`, Apple.pm 0x0011; exiftool ≥ 12.19 names it MediaGroupUUID,
    earlier releases ContentIdentifier). exiftool cannot create maker notes, so Pillow writes it."""
    value = content_identifier.encode() + b"\0"
    entries = struct.pack(">H", 1) + struct.pack(">HHII", 0x0011, _ASCII, len(value), 14 + 18)
    return b"Apple iOS\0" + b"\0\x01" + b"MM" + entries + struct.pack(">I", 0) + value


def make_iphone_still(
    path: Path,
    content_identifier: str | None,
    *,
    size: tuple[int, int] = (64, 48),
    taken: str | None = None,
    seed: int = 0,
) -> Path:
    """A JPEG as an iPhone writes one (Make "Apple"), with the Live Photo identifier in its maker
    note when given; `taken` is EXIF's "2024:05:06 07:08:09"."""
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x010F] = "Apple"
    exif[0x0110] = "iPhone 15"
    if taken is not None:
        exif.get_ifd(0x8769)[0x9003] = taken
    if content_identifier is not None:
        exif.get_ifd(0x8769)[0x927C] = apple_maker_note(content_identifier)
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    image.paste((seed * 37 % 256, 90, 40), (0, 0, max(size[0] // 4, 1), max(size[1] // 4, 1)))
    image.save(path, "JPEG", quality=85, exif=exif.tobytes())
    return path


def make_iphone_dated_mov(path: Path, *, creation_date: str, create_date: str, container: str) -> Path:
    """A MOV dated as an iPhone dates one: Apple's `CreationDate` (local start of recording, with
    its zone), the movie header's `CreateDate` (UTC; the iPhone writes the end of recording) and
    the track headers' times (`container`, ffmpeg's creation_time). Written by exiftool with
    `-api QuickTimeUTC`, so a zone given with CreateDate is converted to the UTC QuickTime stores."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _run(
        *_tiny_h264(),
        "-metadata",
        f"creation_time={container}",
        str(path),
    )
    _run(
        exiftool(),
        "-q",
        "-overwrite_original",
        "-api",
        "QuickTimeUTC",
        f"-Keys:CreationDate={creation_date}",
        f"-QuickTime:CreateDate={create_date}",
        str(path),
    )
    return path


def make_variable_rate_video(path: Path) -> Path:
    """60 frames over 8 s at uneven intervals in a 1/600 time base (as a thermal camera writes
    them): 7.5 fps on average, while ffprobe's `r_frame_rate` says 30/1."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _run(
        ffmpeg(),
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=30:duration=2",
        "-vf",
        r"setpts='(N*81+mod(N*7\,13))/600/TB'",
        "-fps_mode",
        "passthrough",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-video_track_timescale",
        "600",
        str(path),
    )
    return path


def make_anamorphic_dv(path: Path) -> Path:
    """PAL DV 16:9: 720×576 stored, sample aspect 64:45, shown 1024×576."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _run(
        ffmpeg(),
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=720x576:rate=25:duration=0.4",
        "-vf",
        "setsar=64/45",
        "-c:v",
        "dvvideo",
        "-pix_fmt",
        "yuv420p",
        str(path),
    )
    return path


def make_avchd_clip(path: Path, *, taken: str, zone_hours: int, dst: bool) -> Path:
    """An MPEG-TS H.264 clip carrying an AVCHD camcorder's recording time: the Modified DV Pack
    Metadata (MDPM) in an SEI unregistered-user-data message, UUID 17ee8c60f84d11d98cd60800200c9a66,
    as Sony and Panasonic write it and exiftool's H264.pm decodes it (`DateTimeOriginal`, with
    " DST" when the flag is set). x264's own SEI is removed first (exiftool reads only the first
    user-data message), the MDPM SEI goes before the first slice. `taken` is "2019:04:24 22:24:01"."""
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = path.with_name(f".plain-{path.stem}.h264")
    _run(
        *_tiny_h264(),
        "-bsf:v",
        "filter_units=remove_types=6",
        "-f",
        "h264",
        str(plain),
    )
    digits = [int(taken[i : i + 2]) for i in (0, 2, 5, 8, 11, 14, 17)]  # century, year, month, …
    bcd = [d // 10 * 16 + d % 10 for d in digits]
    zone = (0x40 if dst else 0) | (0x20 if zone_hours < 0 else 0) | (abs(zone_hours) << 1)
    # Entries: 0x18 = zone byte, century, year, month; 0x19 = day, hour, minute, second.
    mdpm = b"MDPM\x02" + bytes([0x18, zone, *bcd[:3], 0x19, *bcd[3:]])
    body = bytes.fromhex("17ee8c60f84d11d98cd60800200c9a66") + mdpm
    sei = b"\x00\x00\x00\x01\x06" + _escape_emulation(bytes([5, len(body)]) + body + b"\x80")
    stream = plain.read_bytes()
    plain.unlink()
    first_slice = next(
        i
        for i in range(len(stream) - 3)
        if stream[i : i + 3] == b"\x00\x00\x01" and stream[i + 3] & 0x1F == 5
    )
    first_slice -= 1 if stream[first_slice - 1] == 0 else 0
    with_sei = path.with_name(f".sei-{path.stem}.h264")
    with_sei.write_bytes(stream[:first_slice] + sei + stream[first_slice:])
    remux = ["-f", "h264", "-r", "25", "-i", str(with_sei), "-c", "copy", "-f", "mpegts", str(path)]
    _run(ffmpeg(), "-nostdin", "-v", "error", "-y", *remux)
    with_sei.unlink()
    return path


def _escape_emulation(payload: bytes) -> bytes:
    """H.264's emulation prevention: 0x03 after two zero bytes that precede a byte ≤ 3."""
    out = bytearray()
    zeros = 0
    for byte in payload:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)
