"""Real media for the job tests, made by the real tools: JPEGs with EXIF written by exiftool, videos
encoded by ffmpeg (a rotated one tagged as phones do), HEICs by pillow-heif, JPEG XLs by ffmpeg's
libjxl, and a corrupt JPEG.

Every maker writes to the path it is given and returns it; nothing is cached between tests.
"""

import shutil
import subprocess
from pathlib import Path

from PIL import Image


def _run(*args: str) -> None:
    subprocess.run(args, check=True, stdin=subprocess.DEVNULL, capture_output=True)


def make_jpeg(
    path: Path,
    width: int = 1200,
    height: int = 900,
    *,
    orientation: int | None = None,
    gps: tuple[float, float] | None = None,
    taken: str | None = None,
    make: str | None = None,
    model: str | None = None,
    seed: int = 0,
) -> Path:
    """A JPEG whose pixels differ per seed (so hashes differ), then EXIF written by exiftool.

    `taken` is EXIF's own format, "2024:05:06 07:08:09"; `gps` is signed decimal degrees.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # A left-to-right gradient with a seed-coloured top-left block: orientation is visible in pixels.
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    image.paste((200, (seed * 37) % 256, 40), (0, 0, max(width // 4, 1), max(height // 4, 1)))
    image.save(path, "JPEG", quality=85)
    tags = []
    if orientation is not None:
        tags.append(f"-Orientation#={orientation}")
    if gps is not None:
        lat, lng = gps
        tags += [
            f"-GPSLatitude={abs(lat)}",
            f"-GPSLatitudeRef={'N' if lat >= 0 else 'S'}",
            f"-GPSLongitude={abs(lng)}",
            f"-GPSLongitudeRef={'E' if lng >= 0 else 'W'}",
        ]
    if taken is not None:
        tags.append(f"-DateTimeOriginal={taken}")
    if make is not None:
        tags.append(f"-Make={make}")
    if model is not None:
        tags.append(f"-Model={model}")
    if tags:
        _run(exiftool(), "-q", "-overwrite_original", *tags, str(path))
    return path


def make_video(
    path: Path,
    width: int = 640,
    height: int = 360,
    *,
    seconds: float = 1.0,
    rotate: int | None = None,
    creation_time: str | None = None,
    content_identifier: str | None = None,
    seed: int = 0,
) -> Path:
    """An H.264/AAC video (the container follows the suffix: .mp4, .mov). `rotate` sets the
    display-matrix rotation a phone writes for portrait footage (the stored frames stay landscape);
    `content_identifier` the QuickTime key an iPhone writes into a Live Photo's video (exiftool
    reads it as `ContentIdentifier`; it cannot write Apple's maker-note twin into a JPEG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    args = [
        ffmpeg(),
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc=size={width}x{height}:rate=25:duration={seconds}",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency={440 + seed}:duration={seconds}",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        "-metadata",
        f"comment=seed {seed}",
    ]
    if creation_time is not None:
        args += ["-metadata", f"creation_time={creation_time}"]
    if content_identifier is not None:
        key = f"com.apple.quicktime.content.identifier={content_identifier}"
        args += ["-movflags", "use_metadata_tags", "-metadata", key]
    if rotate is None:
        _run(*args, str(path))
        return path
    # ffmpeg 5 writes the rotation as the display matrix only when it copies the stream, as a
    # phone's recorder leaves the frames untouched.
    plain = path.with_name(f".plain-{path.name}")
    _run(*args, str(plain))
    remux = [ffmpeg(), "-nostdin", "-v", "error", "-y", "-i", str(plain), "-map", "0", "-c", "copy"]
    if creation_time is not None:
        remux += ["-metadata", f"creation_time={creation_time}"]
    if content_identifier is not None:
        remux += ["-movflags", "use_metadata_tags"]
    _run(*remux, "-metadata:s:v:0", f"rotate={rotate}", str(path))
    plain.unlink()
    return path


def make_heic(
    path: Path,
    image: Image.Image,
    *,
    orientation: int | None = None,
    quality: int = 80,
    ten_bit: bool = False,
) -> Path:
    """A HEIC encoded by pillow-heif (libheif + x265: a test-only dependency; the sidecar decodes with
    pi-heif, which cannot encode). `orientation` is written as the EXIF tag, which libheif turns
    into the HEIF transforms (irot/imir) every reader applies. `ten_bit`: 10 bits per sample, as
    Canon's and Sony's HIF files are."""
    import numpy as np
    import pillow_heif  # the test extra only; imported here so the sidecar never loads it

    path.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, object] = {"quality": quality}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif.tobytes()
    if ten_bit:
        samples = np.asarray(image.convert("RGB"), dtype=np.uint16) * 257  # 8 bits to 16, full range
        heif = pillow_heif.from_bytes(mode="RGB;16", size=image.size, data=samples.tobytes())
    else:
        heif = pillow_heif.from_pillow(image)
    heif.save(str(path), **options)
    return path


def make_jxl(path: Path, image: Image.Image) -> Path:
    """A lossless JPEG XL of `image`, encoded by the real ffmpeg's libjxl from a PNG (removed
    again): the sidecar decodes it with the same ffmpeg."""
    path.parent.mkdir(parents=True, exist_ok=True)
    png = path.with_name(f".{path.name}.png")
    image.save(png, "PNG")
    lossless = ["-c:v", "libjxl", "-distance", "0", "-effort", "1", "-frames:v", "1"]
    try:
        _run(ffmpeg(), "-nostdin", "-v", "error", "-y", "-i", str(png), *lossless, str(path))
    finally:
        png.unlink()
    return path


def make_corrupt_jpeg(path: Path) -> Path:
    """Starts like a JPEG, then garbage: every decoder refuses it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8)
    return path


def exiftool() -> str:
    return _tool("exiftool")


def ffmpeg() -> str:
    return _tool("ffmpeg")


def _tool(name: str) -> str:
    found = shutil.which(name)
    assert found is not None, f"{name} is missing: scripts/setup installs it"
    return found
