"""`thumbnail`: JPEGs of 400, 800 and 1920 px on the short edge of an image (a JPEG XL decoded by
ffmpeg), a RAW's paired JPEG or embedded preview, or a video's poster frame, at
`<archive>/.thumbnails/<hash[0:2]>/<hash>_<size>.jpg`, and their paths on the media row. Pixel work
runs on the jobs' threads (Pillow releases the GIL while it decodes, resizes and encodes), at
background priority; the event loop only waits. Nothing here knows the RPC layer.
"""

import asyncio
import io
import os
import re
import struct
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
from PIL import Image, ImageFile, PngImagePlugin

from sidecar import fs
from sidecar.archive.media import JPEG_EXTENSIONS, RAW_EXTENSIONS, MediaType, extension_of
from sidecar.archive.tables import MediaTable, media_table
from sidecar.errors import PermanentFailure
from sidecar.jobs.events import ThumbnailPaths
from sidecar.jobs.handlers import JobContext, JobHandler
from sidecar.log import get_logger
from sidecar.tools.exiftool import ExifToolPool
from sidecar.tools.process import ToolFailed, require, run_tool

log = get_logger(__name__)

# Short-edge sizes, smallest first: thumb_path_sm (= thumb_path), thumb_path_lg, preview_path.
SM, LG, PREVIEW = 400, 800, 1920
QUALITY = {SM: 85, LG: 85, PREVIEW: 90}
THUMBNAIL_FOLDER = ".thumbnails"
# Embedded RAW previews in exiftool's names, JPEG or TIFF: PreviewTIFF and ThumbnailTIFF are the
# uncompressed RGB images of a Kodak KDC or an early NEF, which exiftool rebuilds as TIFFs with the
# IFD's Orientation (Image/ExifTool/Exif.pm: RebuildTIFF; "Preview" when wider than 256 px).
PREVIEW_TAGS = ("JpgFromRaw", "PreviewImage", "OtherImage", "PreviewTIFF", "ThumbnailTIFF", "ThumbnailImage")
# The poster frame: this far in, or the first frame when the clip is shorter.
POSTER_AT_S = "1"
# No raster decoder in the app's image list; another try cannot help.
UNSUPPORTED_EXTENSIONS = frozenset({".svg"})
# Stills no bundled Python decoder reads, decoded by the app's ffmpeg instead, by their format's
# name for messages (JPEG XL: the one Pillow plugin is GPL; see the README's "Bundled decoders").
FFMPEG_DECODED_EXTENSIONS: Mapping[str, str] = {".jxl": "JPEG XL"}

_HASH = re.compile(r"^[0-9a-f]{16}$")
_BINARY_SIZE = re.compile(r"^\(Binary data (\d+) bytes")
_THUMBNAILED = frozenset({MediaType.IMAGE, MediaType.VIDEO})
# EXIF orientation -> the transpose that undoes it (as ImageOps.exif_transpose maps it).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# The transpose that reverts the one above: a quarter turn the other way; the others are their own.
_UNDO = {
    **_TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}
_ORIENTATION_TAG = 0x0112
# Resampling (bench/thumbnail_bench.py). The preview is resized from the JPEG's DCT-scaled decode,
# less than 2x its size (24 MP: 3000x2000 -> 2880x1920), where bilinear is as close to a full-decode
# Lanczos as bicubic (both ~45.9 dB PSNR: the DCT scaling dominates) and 30 ms cheaper. The smaller
# sizes come from the preview: a 2x box reduction, then bicubic (~50 dB; bilinear ~47 dB).
PREVIEW_RESAMPLE = Image.Resampling.BILINEAR
DERIVED_RESAMPLE = Image.Resampling.BICUBIC
DERIVED_REDUCING_GAP = 1.0


class ThumbnailError(Exception):
    """The thumbnails could not be made this time (another try may succeed)."""


class CannotRender(ThumbnailError, PermanentFailure):
    """Another try cannot help: no decoder, no preview, an image too large, a payload we cannot use."""


class SourceKind(StrEnum):
    FILE = "file"
    PAIRED_JPEG = "paired-jpeg"
    EMBEDDED_PREVIEW = "embedded-preview"
    RAW_DECODE = "raw-decode"
    POSTER_FRAME = "poster-frame"
    FFMPEG_DECODE = "ffmpeg-decode"


@dataclass(frozen=True, slots=True)
class Source:
    """What to decode: a file or bytes. `orientation` None means the source's own EXIF tag."""

    kind: SourceKind
    label: str  # for error messages: the path, or the tag and the path
    path: str | None = None
    data: bytes | None = None
    orientation: int | None = None


def thumbnail_paths(archive_root: str, hash_: str) -> dict[int, str]:
    folder = os.path.join(archive_root, THUMBNAIL_FOLDER, hash_[:2])
    return {size: os.path.join(folder, f"{hash_}_{size}.jpg") for size in (SM, LG, PREVIEW)}


def thumbnail_handler(exiftool: ExifToolPool) -> JobHandler:
    """The `thumbnail` queue's handler; RAW previews are read through the shared exiftool pool."""

    async def thumbnail(job: JobContext) -> dict[str, Any]:
        hash_, media_type = _parse_payload(job.payload)
        if not job.archive_root:
            # Not CannotRender: the archive root is read again when the job is retried.
            raise ThumbnailError("archive folder not configured; set --archive or the app's archive folder")
        table = media_table(media_type)
        is_image = media_type is MediaType.IMAGE
        row = await job.db.fetch_one(
            f"SELECT {table.path_column} AS loc{', meta_exiftool' if is_image else ''}"
            f" FROM {table.table} WHERE {table.hash_column} = ?",
            (hash_,),
        )
        if row is None:
            # Removed from the archive after the import: nothing to show thumbnails for.
            log.warning(
                "thumbnail of a missing row skipped",
                extra={"action": "thumbnail.no_row", "hash": hash_, "job_id": job.job_id},
            )
            return {"paths": None, "skipped": f"no {table.table} row for {hash_}"}
        path: str = row["loc"]
        stored_tags: str | None = row["meta_exiftool"] if is_image else None
        source = await _choose_source(job, exiftool, media_type, path, stored_tags)
        paths = thumbnail_paths(job.archive_root, hash_)
        await job.threads.run(render, source, paths, hash_)
        if not await _record(job, table, hash_, paths, source.kind):
            await asyncio.to_thread(fs.remove_files, paths.values())
            return {"paths": None, "skipped": f"{table.table} row for {hash_} removed meanwhile"}
        event_paths = {"sm": paths[SM], "lg": paths[LG], "preview": paths[PREVIEW]}
        job.events.thumbnail_ready(hash_, media_type, ThumbnailPaths(paths[SM], paths[LG], paths[PREVIEW]))
        return {"paths": event_paths, "source": source.kind.value}

    return thumbnail


def _parse_payload(payload: Mapping[str, Any]) -> tuple[str, MediaType]:
    hash_ = payload.get("hash")
    media_type = payload.get("mediaType")
    if not isinstance(hash_, str) or not _HASH.match(hash_):
        raise CannotRender(f"thumbnail job without a valid hash: {hash_!r}")
    if media_type not in _THUMBNAILED:
        raise CannotRender(f"no thumbnails for media type {media_type!r}")
    return hash_, MediaType(media_type)


async def _choose_source(
    job: JobContext, exiftool: ExifToolPool, media_type: MediaType, path: str, stored_tags: str | None
) -> Source:
    extension = extension_of(path)
    if media_type is MediaType.VIDEO:
        # Seeking past the end of a short clip gives no frame and exit 0: then the first frame.
        frame = await _ffmpeg_frame(job, path, (["-ss", POSTER_AT_S], []))
        if frame is None:
            raise CannotRender(f"no video frame in {path}")
        return Source(SourceKind.POSTER_FRAME, f"poster frame of {path}", data=frame, orientation=1)
    if extension in RAW_EXTENSIONS:
        return await _raw_source(job, exiftool, path, stored_tags)
    if extension in UNSUPPORTED_EXTENSIONS:
        raise CannotRender(f"no decoder for {extension} images: {path}")
    if extension in FFMPEG_DECODED_EXTENSIONS:
        return await _ffmpeg_still(job, path, FFMPEG_DECODED_EXTENSIONS[extension])
    return Source(SourceKind.FILE, path, path=path)


async def _ffmpeg_still(job: JobContext, path: str, format_name: str) -> Source:
    """A still decoded by ffmpeg, upright as it comes (the PPM carries no orientation). JPEG XL:
    libjxl turns the pixels by the codestream's orientation unless told to keep it
    (jxl/decode.h, JxlDecoderSetKeepOrientation, off by default), which ffmpeg's
    libavcodec/libjxldec.c never calls. Another format added here needs the same check."""
    label = f"{path} ({format_name}, decoded by ffmpeg)"
    try:
        frame = await _ffmpeg_frame(job, path, ([],))
    except ToolFailed as exc:
        if not await asyncio.to_thread(os.path.isfile, path):  # a share gone: another try may read it
            raise ThumbnailError(f"source file missing: {path}") from None
        # The same bytes, or the same ffmpeg without the decoder, fail the same way next time.
        raise CannotRender(f"cannot decode {format_name} image {path} with ffmpeg: {exc}") from None
    if frame is None:
        raise CannotRender(f"ffmpeg gave no {format_name} frame for {path}")
    return Source(SourceKind.FFMPEG_DECODE, label, data=frame, orientation=1)


async def _ffmpeg_frame(job: JobContext, path: str, seeks: Iterable[Sequence[str]]) -> bytes | None:
    """One frame as a PPM, rotated as it is shown (ffmpeg autorotates a video by default), from
    the first of `seeks` (input options) that gives one; None when none does. Raises ToolMissing
    without ffmpeg, ToolFailed when it fails."""
    ffmpeg = require(job.tools.ffmpeg, "ffmpeg")
    for seek in seeks:
        args = [
            "-nostdin", "-hide_banner", "-loglevel", "error",
            *seek, "-i", path,
            "-map", "0:v:0?", "-frames:v", "1", "-an", "-sn", "-dn",
            "-f", "image2pipe", "-c:v", "ppm", "-pix_fmt", "rgb24", "-",
        ]  # fmt: skip
        output = await run_tool(ffmpeg, args)
        if output.stdout:
            return output.stdout
    return None


async def _raw_source(job: JobContext, exiftool: ExifToolPool, path: str, stored_tags: str | None) -> Source:
    """The paired JPEG of the same import, else the largest embedded JPEG preview."""
    paired = job.payload.get("pairedHash")
    paired_missing = False
    if isinstance(paired, str) and _HASH.match(paired):
        pair = await job.db.fetch_one("SELECT imgloc FROM imgs WHERE imghash = ?", (paired,))
        pair_path: str | None = None if pair is None else pair["imgloc"]
        if (
            pair_path is not None
            and extension_of(pair_path) in JPEG_EXTENSIONS
            and await asyncio.to_thread(os.path.isfile, pair_path)
        ):
            return Source(SourceKind.PAIRED_JPEG, pair_path, path=pair_path)
        paired_missing = pair is None
    tags = _parse_tags(stored_tags)
    if tags is None:
        tags = await exiftool.read_tags(job.tools.exiftool, path)
    candidates = []
    for tag in _preview_order(tags):
        data = await exiftool.read_binary(job.tools.exiftool, path, tag)
        if data:
            candidates.append((tag, data))
    largest = await job.threads.run(_largest_image, candidates)
    if largest is not None:
        # The RAW's orientation: a preview's own tag often says 1 whatever the camera's was.
        tag, data = largest
        return Source(
            SourceKind.EMBEDDED_PREVIEW, f"{tag} of {path}", data=data, orientation=_orientation(tags)
        )
    if paired_missing:
        # The paired JPEG's row may not be committed yet (a later chunk of the same import).
        raise ThumbnailError(
            f"no paired JPEG and no embedded preview in {path} (paired JPEG {paired} not in the archive yet)"
        )
    # LibRaw demosaics it and turns it by the RAW's orientation itself.
    return Source(SourceKind.RAW_DECODE, f"{path} (no embedded preview; LibRaw)", path=path, orientation=1)


def _largest_image(candidates: list[tuple[str, bytes]]) -> tuple[str, bytes] | None:
    """The embedded image with the most pixels (by its header: a TIFF's bytes say nothing of its
    size next to a JPEG's), first in PREVIEW_TAGS order on a tie; None when none decodes."""
    largest: tuple[str, bytes] | None = None
    most = 0
    for tag, data in candidates:
        try:
            with _open(Source(SourceKind.EMBEDDED_PREVIEW, tag, data=data)) as image:
                pixels = image.width * image.height
        except (OSError, *_DECODE_ERRORS):
            continue  # not an image (a maker's own format): the next one may be
        if pixels > most:
            largest, most = (tag, data), pixels
    return largest


def _parse_tags(stored: str | None) -> dict[str, Any] | None:
    if not stored:
        return None
    try:
        parsed = orjson.loads(stored)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _tag(tags: Mapping[str, Any], name: str) -> Any:
    """A tag by its flat name, or grouped (`EXIF:Orientation`) if stored that way."""
    if name in tags:
        return tags[name]
    suffix = ":" + name
    return next((value for key, value in tags.items() if key.endswith(suffix)), None)


def _preview_order(tags: Mapping[str, Any]) -> list[str]:
    """The previews the tags show (exiftool writes "(Binary data N bytes…)" for each), in
    PREVIEW_TAGS order; every tag when the tags say nothing about them."""
    shown = [
        tag
        for tag in PREVIEW_TAGS
        if isinstance(value := _tag(tags, tag), str) and _BINARY_SIZE.match(value) is not None
    ]
    return shown or list(PREVIEW_TAGS)


def _orientation(tags: Mapping[str, Any]) -> int:
    value = _tag(tags, "Orientation")
    return value if isinstance(value, int) and value in _TRANSPOSE else 1


async def _record(
    job: JobContext, table: MediaTable, hash_: str, paths: Mapping[int, str], kind: SourceKind
) -> bool:
    """One short transaction; False when the row is gone."""
    flag = ""
    if kind is SourceKind.POSTER_FRAME:
        flag = ", poster_extracted = 1"
    elif kind is SourceKind.EMBEDDED_PREVIEW:
        flag = ", preview_extracted = 1"
    async with job.db.transaction() as conn:
        cursor = await conn.execute(
            f"UPDATE {table.table} SET thumb_path_sm = ?, thumb_path_lg = ?, preview_path = ?, thumb_path = ?"
            f"{flag} WHERE {table.hash_column} = ?",
            (paths[SM], paths[LG], paths[PREVIEW], paths[SM], hash_),
        )
        return cursor.rowcount > 0


# --- The pixel work (runs on the jobs' threads) ---


def render(source: Source, paths: Mapping[int, str], hash_: str) -> None:
    """Decode once, write every size (`paths`: size -> final path) atomically. Raises CannotRender
    when the bytes cannot be decoded, ThumbnailError when they could not be read."""
    images = _decode_sizes(source)
    folder = os.path.dirname(paths[PREVIEW])
    os.makedirs(folder, exist_ok=True)
    fs.sweep_temps([folder], of=f"{hash_}_")  # a killed run's (one job per hash runs at a time)
    moves: list[tuple[str | Path, str | Path]] = []
    try:
        for size, (image, icc) in images.items():
            moves.append((_staged_jpeg(image, paths[size], QUALITY[size], icc), paths[size]))
    except BaseException:
        fs.remove_files(temp for temp, _ in moves)
        raise
    fs.publish_all(moves)


def target_size(width: int, height: int, short_edge: int) -> tuple[int, int]:
    """`short_edge` px on the short side, aspect kept; never larger than the source."""
    short = min(width, height)
    if short <= short_edge:
        return width, height
    if width <= height:
        return short_edge, max(1, round(height * short_edge / width))
    return max(1, round(width * short_edge / height)), short_edge


def _open(source: Source) -> Image.Image:
    if source.kind is SourceKind.RAW_DECODE and source.path is not None:
        return _libraw_decode(source.path, source.label)
    _register_heif()
    image = Image.open(source.path if source.path is not None else io.BytesIO(source.data or b""))
    if image.format == "FPX":
        return _flashpix_whole_tiles(image)
    return image


# FlashPix stores every tile whole, the ones past the right and bottom edges padded; Pillow's reader
# sets those up clipped to the image (PIL/FpxImagePlugin.py, _open_subimage: x1 = min(xsize, x +
# xtile)), which its JPEG decoder refuses ("broken data stream") and its raw decoder reads with the
# clipped width as the stride. So a FlashPix is decoded at its padded size, every tile whole, and
# cropped: its tiles are 64x64 (Pillow refuses others), its draft is a no-op anyway.
_FLASHPIX_TILE = 64


def _flashpix_whole_tiles(image: ImageFile.ImageFile) -> Image.Image:
    with image:
        width, height = image.size
        tile = _FLASHPIX_TILE
        image._size = (-(-width // tile) * tile, -(-height // tile) * tile)
        image.tile = [
            descriptor._replace(extents=(x, y, x + tile, y + tile))
            for descriptor in image.tile
            if descriptor.extents is not None
            for x, y, _, _ in [descriptor.extents]
        ]
        image.load()
        return image.crop((0, 0, width, height))


def _libraw_decode(path: str, label: str) -> Image.Image:
    """A RAW without any embedded preview, demosaiced by LibRaw (rawpy) at half size (a 24 MP
    sensor still gives 3000x2000, more than the 1920 preview), white-balanced as the camera was,
    turned by the RAW's orientation. rawpy (and numpy) are imported on first use (160 ms)."""
    import rawpy  # lazily, see above

    if not os.path.isfile(path):  # LibRaw says only "Input/output error": say it, and retry
        raise FileNotFoundError(path)
    try:
        with rawpy.imread(path) as raw:
            rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
    except rawpy.LibRawError as exc:
        # LibRaw's message arrives as bytes (b'Unsupported file format or not RAW file').
        reason = exc.args[0] if exc.args else type(exc).__name__
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        raise CannotRender(f"cannot decode {label}: {reason}") from None
    return Image.fromarray(rgb)


_heif_lock = threading.Lock()
_heif_registered = False


def _register_heif() -> None:
    """HEIC/HEIF (and a HEIC named .jpg: Pillow goes by content) through pi-heif, a decoder-only
    libheif binding whose wheels bundle libheif and libde265 (LGPL) and no encoder (pillow-heif's
    bundle x265, GPL): see the README's "Bundled decoders and their licences". Imported on the
    first decode, not at start (50 ms). libheif applies the file's rotation and mirror (irot, imir)
    and pi-heif then sets the EXIF orientation to 1 (pi_heif/as_plugin.py, set_orientation), so
    nothing is turned twice."""
    global _heif_registered
    with _heif_lock:
        if not _heif_registered:
            import pi_heif  # lazily, see above

            pi_heif.register_heif_opener()
            _heif_registered = True


# What Pillow's decoders raise for corrupt data besides OSError (a TIFF without dimensions raises
# TypeError, a bad IFD struct.error), and for an image past its pixel limit.
_DECODE_ERRORS = (
    SyntaxError,
    ValueError,
    TypeError,
    EOFError,
    IndexError,
    KeyError,
    struct.error,
    Image.DecompressionBombError,
)
# A PNG's text chunks (an XMP or EXIF profile a camera app wrote as zTXt/iTXt) may be far larger
# than Pillow's 1 MiB per chunk; the 64 MiB total over all chunks stays Pillow's.
PNG_TEXT_CHUNK_LIMIT = 16 * 1024 * 1024
_lenient_lock = threading.Lock()
_lenient_users = 0
_strict_settings: tuple[bool, int] = (False, 0)


@contextmanager
def _lenient_decoding() -> Iterator[None]:
    """While one of our decodes runs: render what a truncated file holds (the rest grey) and accept
    large PNG text chunks. Pillow reads both as module globals at decode time, with no per-image
    switch (PIL/ImageFile.py LOAD_TRUNCATED_IMAGES, PIL/PngImagePlugin.py MAX_TEXT_CHUNK); this
    module is the sidecar's only Pillow user, and they are set back once no decode of ours runs."""
    global _lenient_users, _strict_settings
    with _lenient_lock:
        if _lenient_users == 0:
            _strict_settings = (ImageFile.LOAD_TRUNCATED_IMAGES, PngImagePlugin.MAX_TEXT_CHUNK)
            ImageFile.LOAD_TRUNCATED_IMAGES = True
            PngImagePlugin.MAX_TEXT_CHUNK = max(PNG_TEXT_CHUNK_LIMIT, _strict_settings[1])
        _lenient_users += 1
    try:
        yield
    finally:
        with _lenient_lock:
            _lenient_users -= 1
            if _lenient_users == 0:
                ImageFile.LOAD_TRUNCATED_IMAGES, PngImagePlugin.MAX_TEXT_CHUNK = _strict_settings


def _decode_sizes(source: Source) -> dict[int, tuple[Image.Image, bytes | None]]:
    try:
        with _lenient_decoding(), _open(source) as image:
            stored = _exif_orientation(image)
            # Every size from the source's own dimensions, so rounding never accumulates. They are
            # in the frame `load()` gives, which is already upright where Pillow turns it (TIFF).
            sizes = {edge: target_size(*image.size, edge) for edge in (SM, LG, PREVIEW)}
            size = sizes[PREVIEW]
            # JPEG: decode at 1/2, 1/4 or 1/8 scale (DCT scaling), as small as still covers `size`.
            image.draft(image.mode, size)
            image.load()
            # Pillow's TIFF loader applies the EXIF orientation itself and then drops the tag
            # (PIL/TiffImagePlugin.py, load_end: ImageOps.exif_transpose(self, in_place=True), Pillow
            # 13.0); JPEG, PNG and WebP keep theirs for us to apply. The tag gone after load() is the
            # one sign of which happened that does not depend on the format or Pillow's version.
            applied = stored if _exif_orientation(image) == 1 else 1
            wanted = stored if source.orientation is None else source.orientation
            icc = image.info.get("icc_profile") if image.mode in ("RGB", "L") else None
            preview = _output_mode(image)
            if preview.size != size:
                # Formats without draft (PNG, TIFF, a poster frame) box-reduce first when >= 4x.
                preview = preview.resize(size, PREVIEW_RESAMPLE, reducing_gap=2.0)
            elif preview is image:
                preview = image.copy()  # the file's image is closed when this block ends
    except FileNotFoundError:
        raise ThumbnailError(f"source file missing: {source.label}") from None
    except OSError as exc:
        if exc.errno is not None:  # the disk or the share, not the data: another try may read it
            raise ThumbnailError(f"cannot read {source.label}: {exc}") from None
        # Pillow's own OSErrors (UnidentifiedImageError, "broken data stream") carry no errno.
        raise CannotRender(f"cannot decode {source.label}: {exc or type(exc).__name__}") from None
    except _DECODE_ERRORS as exc:
        # The same bytes fail the same way next time: the job goes dead at once, saying why.
        raise CannotRender(f"cannot decode {source.label}: {exc or type(exc).__name__}") from None
    preview = _reorient(preview, applied, wanted)
    if (applied >= 5) != (wanted >= 5):  # a quarter turn in all: width and height swap
        sizes = {edge: (height, width) for edge, (width, height) in sizes.items()}
    lg = _derive(preview, sizes[LG])
    sm = _derive(lg, sizes[SM])
    return {SM: (sm, icc), LG: (lg, icc), PREVIEW: (preview, icc)}


def _reorient(image: Image.Image, applied: int, wanted: int) -> Image.Image:
    """`image` as orientation `wanted` shows it, when the decoder already applied `applied` (a RAW's
    TIFF preview turned by its own tag, to be shown by the RAW's instead)."""
    if applied == wanted:
        return image
    if applied in _UNDO:
        image = image.transpose(_UNDO[applied])
    if wanted in _TRANSPOSE:
        image = image.transpose(_TRANSPOSE[wanted])
    return image


def _exif_orientation(image: Image.Image) -> int:
    """The image's EXIF orientation, 1 when it has none or one outside 1-8 (shown as stored)."""
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not stop the thumbnail; show it as stored
        return 1
    return value if isinstance(value, int) and value in _TRANSPOSE else 1


def _output_mode(image: Image.Image) -> Image.Image:
    """RGB or L, transparency flattened onto white."""
    if image.mode in ("RGB", "L"):
        return image
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if image.mode.startswith("I;16") or image.mode == "I":
        # 16-bit greyscale (scans, PNGs, TIFFs): scaled to 8 bits instead of clipped at 255.
        return image.convert("I").point(lambda value: value / 256).convert("L")
    return image.convert("RGB")


def _derive(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if size == image.size:
        return image
    return image.resize(size, DERIVED_RESAMPLE, reducing_gap=DERIVED_REDUCING_GAP)


def _staged_jpeg(image: Image.Image, final: str, quality: int, icc: bytes | None) -> str:
    """Write a temp file beside `final`, flushed; returns its path."""
    with fs.staged(final) as (out, temp):
        options: dict[str, Any] = {"quality": quality}
        if icc:
            options["icc_profile"] = icc
        image.save(out, "JPEG", **options)
    return temp
