"""The `thumbnail` handler on real files (JPEGs with EXIF by exiftool, videos and JPEG XLs by ffmpeg,
a DNG-shaped RAW with an embedded JPEG read by the real exiftool, a FlashPix by the tests' own
writer) over a real SQLite file."""

import asyncio
import dataclasses
import io
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageFile, PngImagePlugin

from sidecar.db.connection import Database
from sidecar.errors import PermanentFailure
from sidecar.jobs.handlers import thumbnail
from sidecar.jobs.handlers.thumbnail import (
    CannotRender,
    ThumbnailError,
    target_size,
    thumbnail_handler,
    thumbnail_paths,
)
from sidecar.jobs.scheduler import JobScheduler
from sidecar.jobs.store import JobStore, NewJob, Queue
from sidecar.tools.discovery import Toolset
from sidecar.tools.exiftool import ExifToolPool
from sidecar.tools.process import ToolMissing
from tests.support.archive import LocationFixture, add_media_row
from tests.support.flashpix import write_flashpix
from tests.support.jobs import ContextMaker, RecordedEvents, add_jobs, job_row
from tests.support.media import exiftool, make_corrupt_jpeg, make_heic, make_jpeg, make_jxl, make_video
from tests.support.processes import lowered, this_thread
from tests.support.raws import jpeg_bytes, make_cfa_dng, make_dng

SIZES = {"sm": 400, "lg": 800, "preview": 1920}
BLOCK = (200, 0, 40)  # make_jpeg's top-left block with seed 0


@pytest.fixture
async def pool() -> AsyncIterator[ExifToolPool]:
    exiftool_pool = ExifToolPool(1)
    yield exiftool_pool
    await exiftool_pool.close()


def _row(db_path: Path, table: str, digest: str) -> dict[str, Any]:
    column = "imghash" if table == "imgs" else "vidhash"
    with closing(sqlite3.connect(db_path)) as db:
        db.row_factory = sqlite3.Row
        row = db.execute(f"SELECT * FROM {table} WHERE {column} = ?", (digest,)).fetchone()
    assert row is not None
    return dict(row)


def _sizes(paths: dict[str, str]) -> dict[str, tuple[int, int]]:
    sizes = {}
    for name, path in paths.items():
        with Image.open(path) as image:
            assert image.format == "JPEG"
            assert image.getexif().get(0x0112) is None, "no orientation left to apply"
            sizes[name] = image.size
    return sizes


def _temp_files(archive: Path) -> list[Path]:
    return list((archive / ".thumbnails").rglob("*.aus-tmp"))


def _colour_at(path: str, fx: float, fy: float) -> tuple[int, ...]:
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        return tuple(rgb.getpixel((int(rgb.width * fx), int(rgb.height * fy))))  # type: ignore[arg-type]


def _near(colour: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 30) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected, strict=True))


def _quantization_of(quality: int) -> dict[int, list[int]]:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, "JPEG", quality=quality)
    with Image.open(buffer) as image:
        return dict(image.quantization)  # type: ignore[attr-defined]


async def test_a_landscape_jpeg_gets_three_sizes_on_its_short_edge(
    tmp_path: Path,
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    events: RecordedEvents,
    pool: ExifToolPool,
) -> None:
    photo = make_jpeg(archive / "loc" / "photo.jpg", 3000, 2000)
    digest = add_media_row(db_path, "image", photo, location.locid)
    job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(photo)})

    result = await thumbnail_handler(pool)(job)

    expected = thumbnail_paths(str(archive), digest)
    paths = {"sm": expected[400], "lg": expected[800], "preview": expected[1920]}
    assert paths["sm"] == str(archive / ".thumbnails" / digest[:2] / f"{digest}_400.jpg")
    assert result == {"paths": paths, "source": "file"}
    assert _sizes(paths) == {"sm": (600, 400), "lg": (1200, 800), "preview": (2880, 1920)}
    with Image.open(paths["sm"]) as small, Image.open(paths["preview"]) as preview:
        assert small.quantization == _quantization_of(85)  # type: ignore[attr-defined]
        assert preview.quantization == _quantization_of(90)  # type: ignore[attr-defined]
    assert _near(_colour_at(paths["lg"], 0.05, 0.05), BLOCK)
    row = _row(db_path, "imgs", digest)
    assert (row["thumb_path_sm"], row["thumb_path_lg"], row["preview_path"], row["thumb_path"]) == (
        paths["sm"],
        paths["lg"],
        paths["preview"],
        paths["sm"],
    )
    assert row["preview_extracted"] == 0
    # RecordedEvents checks every payload against protocol/.
    assert events.of("asset:thumbnail-ready") == [{"hash": digest, "mediaType": "image", "paths": paths}]
    assert _temp_files(archive) == []


async def test_exif_orientation_6_gives_portrait_thumbnails_the_right_way_up(
    db_path: Path, archive: Path, location: LocationFixture, make_context: ContextMaker, pool: ExifToolPool
) -> None:
    photo = make_jpeg(archive / "loc" / "turned.jpg", 3000, 2000, orientation=6)
    digest = add_media_row(db_path, "image", photo, location.locid)
    job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(photo)})

    result = await thumbnail_handler(pool)(job)
    assert result is not None

    paths = result["paths"]
    assert _sizes(paths) == {"sm": (400, 600), "lg": (800, 1200), "preview": (1920, 2880)}
    # Orientation 6 = the camera was turned clockwise: the stored top-left shows at the top right.
    for path in paths.values():
        assert _near(_colour_at(path, 0.95, 0.05), BLOCK)
        assert not _near(_colour_at(path, 0.05, 0.05), BLOCK)


async def test_the_pixel_work_runs_off_the_event_loop_thread(
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    pool: ExifToolPool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[threading.Thread] = []
    real_render = thumbnail.render

    def render(*args: Any) -> Any:
        threads.append(threading.current_thread())
        return real_render(*args)

    monkeypatch.setattr(thumbnail, "render", render)
    photo = make_jpeg(archive / "loc" / "photo.jpg", 900, 600)
    digest = add_media_row(db_path, "image", photo, location.locid)
    job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(photo)})

    await thumbnail_handler(pool)(job)

    assert threads and threads[0] is not threading.current_thread()


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (300, 200, {"sm": (300, 200), "lg": (300, 200), "preview": (300, 200)}),
        (1200, 900, {"sm": (533, 400), "lg": (1067, 800), "preview": (1200, 900)}),
    ],
)
async def test_a_small_source_is_never_upscaled(
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    pool: ExifToolPool,
    width: int,
    height: int,
    expected: dict[str, tuple[int, int]],
) -> None:
    photo = make_jpeg(archive / "loc" / f"small-{width}.jpg", width, height)
    digest = add_media_row(db_path, "image", photo, location.locid)
    job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(photo)})

    result = await thumbnail_handler(pool)(job)
    assert result is not None

    assert _sizes(result["paths"]) == expected


def test_target_size_keeps_the_aspect_on_the_short_edge() -> None:
    assert target_size(6000, 4000, 1920) == (2880, 1920)
    assert target_size(4000, 6000, 400) == (400, 600)
    assert target_size(4032, 3024, 800) == (1067, 800)
    assert target_size(1920, 1080, 1920) == (1920, 1080)
    assert target_size(20000, 1000, 400) == (8000, 400)


async def test_a_rerun_overwrites_in_place_and_removes_a_killed_runs_temp_files(
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    events: RecordedEvents,
    pool: ExifToolPool,
) -> None:
    photo = make_jpeg(archive / "loc" / "again.jpg", 2400, 1600)
    digest = add_media_row(db_path, "image", photo, location.locid)
    job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(photo)})
    handler = thumbnail_handler(pool)
    first = await handler(job)
    assert first is not None
    folder = Path(first["paths"]["sm"]).parent
    inodes = {name: os.stat(path).st_ino for name, path in first["paths"].items()}
    # What a run killed mid-write (another process) leaves, and a temp file of another hash.
    killed = folder / f".{digest}_1920.jpg.0badc0de.aus-tmp"
    killed.write_bytes(b"\xff\xd8\xff half a JPEG")
    other = folder / f".{'f' * 16}_400.jpg.0badc0de.aus-tmp"
    other.write_bytes(b"not ours to remove")

    second = await handler(job)
    assert second is not None

    assert second == first
    assert _sizes(second["paths"]) == {"sm": (600, 400), "lg": (1200, 800), "preview": (2400, 1600)}
    # Renamed over the old files (new inodes), never written in place.
    assert all(os.stat(path).st_ino != inodes[name] for name, path in second["paths"].items())
    assert not killed.exists()
    assert other.exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [other.name, *(Path(p).name for p in second["paths"].values())]
    )
    assert len(events.of("asset:thumbnail-ready")) == 2


# --- Orientation, per format ---

RED, GREEN = (220, 30, 30), (30, 200, 60)
# Where the stored top-left (red) and top-right (green) corners show, and whether the image shows
# portrait, for each EXIF Orientation value: row 0 / column 0 of the stored image are at the
# visual ... 1 top/left, 2 top/right, 3 bottom/right, 4 bottom/left, 5 left/top, 6 right/top,
# 7 right/bottom, 8 left/bottom (Exif 2.32, CIPA DC-008, tag 0x0112). Written from the standard,
# not from Pillow's transpose table, so a wrong mapping in either fails here.
SHOWN = {
    1: ("top-left", "top-right", False),
    2: ("top-right", "top-left", False),
    3: ("bottom-right", "bottom-left", False),
    4: ("bottom-left", "bottom-right", False),
    5: ("top-left", "bottom-left", True),
    6: ("top-right", "bottom-right", True),
    7: ("bottom-right", "top-right", True),
    8: ("bottom-left", "top-left", True),
}
CORNERS = {
    "top-left": (0.1, 0.1),
    "top-right": (0.9, 0.1),
    "bottom-left": (0.1, 0.9),
    "bottom-right": (0.9, 0.9),
}


def _two_corner_image(width: int = 900, height: int = 600) -> Image.Image:
    """Grey, with a red stored top-left and a green stored top-right: any turn or mirror moves them."""
    image = Image.new("RGB", (width, height), (128, 128, 128))
    image.paste(RED, (0, 0, width // 4, height // 4))
    image.paste(GREEN, (width - width // 4, 0, width, height // 4))
    return image


def _assert_shown_as(
    paths: dict[str, str], orientation: int, stored: tuple[int, int] = (900, 600), *, hues_only: bool = False
) -> None:
    """Thumbnails of a `_two_corner_image` of size `stored`, shown as `orientation` says. `hues_only`
    for a LibRaw decode, whose colours are its default camera matrix's, not the image's."""
    red_at, green_at, portrait = SHOWN[orientation]
    expected = {name: target_size(*stored, edge) for name, edge in SIZES.items()}
    if portrait:
        expected = {name: (height, width) for name, (width, height) in expected.items()}
    assert _sizes(paths) == expected
    for path in paths.values():
        for corner, (fx, fy) in CORNERS.items():
            colour = _colour_at(path, fx, fy)
            want = RED if corner == red_at else GREEN if corner == green_at else (128, 128, 128)
            matches = _hue(colour) == _hue(want) if hues_only else _near(colour, want)
            assert matches, f"orientation {orientation}: {corner} of {path} is {colour}"


def _hue(colour: tuple[int, ...]) -> str:
    r, g, b = colour[:3]
    if r > g + 80 and r > b + 80:
        return "red"
    if g > r + 80 and g > b + 80:
        return "green"
    return "grey" if max(colour[:3]) - min(colour[:3]) < 40 else "other"


@pytest.mark.parametrize("orientation", range(10))  # 0 and 9 are no orientation: shown as stored
@pytest.mark.parametrize(
    ("extension", "save"),
    [
        (".jpg", {"format": "JPEG", "quality": 90}),
        (".tif", {"format": "TIFF"}),
        (".tif", {"format": "TIFF", "compression": "tiff_lzw"}),
        (".png", {"format": "PNG"}),
        (".webp", {"format": "WEBP", "quality": 90}),
    ],
    ids=["jpeg", "tiff", "tiff-lzw", "png", "webp"],
)
async def test_every_exif_orientation_gives_upright_thumbnails(
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    pool: ExifToolPool,
    extension: str,
    save: dict[str, Any],
    orientation: int,
) -> None:
    photo = archive / "loc" / f"o{orientation}{extension}"
    photo.parent.mkdir(parents=True, exist_ok=True)
    _two_corner_image().save(photo, **save)
    # exiftool writes the tag where each format keeps it (IFD0 of a TIFF, the eXIf chunk of a PNG).
    subprocess.run(
        [exiftool(), "-q", "-overwrite_original", f"-Orientation#={orientation}", str(photo)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    digest = add_media_row(db_path, "image", photo, location.locid)
    job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(photo)})

    result = await thumbnail_handler(pool)(job)
    assert result is not None

    _assert_shown_as(result["paths"], orientation if orientation in SHOWN else 1)


# --- Truncated, oversized and undecodable files ---


async def test_a_truncated_jpeg_renders_what_is_there(
    db_path: Path, archive: Path, location: LocationFixture, make_context: ContextMaker, pool: ExifToolPool
) -> None:
    # A phone photo missing its last bytes, and one cut in half: the top is there, the rest grey.
    whole = make_jpeg(archive / "loc" / "whole.jpg", 1200, 900).read_bytes()
    cases = {"end": whole[:-33], "half": whole[: len(whole) // 2]}
    for name, data in cases.items():
        photo = archive / "loc" / f"cut-{name}.jpg"
        photo.write_bytes(data)
        digest = add_media_row(db_path, "image", photo, location.locid)
        job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(photo)})

        result = await thumbnail_handler(pool)(job)
        assert result is not None

        assert _sizes(result["paths"]) == {"sm": (533, 400), "lg": (1067, 800), "preview": (1200, 900)}
        assert _near(_colour_at(result["paths"]["lg"], 0.05, 0.05), BLOCK)
    # Strict again once no decode of ours runs.
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert PngImagePlugin.MAX_TEXT_CHUNK == ImageFile.SAFEBLOCK


async def test_a_png_with_a_large_text_chunk_renders(
    db_path: Path, archive: Path, location: LocationFixture, make_context: ContextMaker, pool: ExifToolPool
) -> None:
    # A zTXt chunk that inflates past Pillow's 1 MiB default (Pillow alone raises "Decompressed data
    # too large for PngImagePlugin.MAX_TEXT_CHUNK").
    info = PngImagePlugin.PngInfo()
    info.add_text("XML:com.adobe.xmp", "".join(f"<rdf:li>{n}</rdf:li>" for n in range(80_000)), zip=True)
    photo = archive / "loc" / "text.png"
    photo.parent.mkdir(parents=True, exist_ok=True)
    _two_corner_image().save(photo, "PNG", pnginfo=info)
    with pytest.raises(ValueError, match="MAX_TEXT_CHUNK"), Image.open(photo):
        pass
    digest = add_media_row(db_path, "image", photo, location.locid)
    job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(photo)})

    result = await thumbnail_handler(pool)(job)
    assert result is not None

    _assert_shown_as(result["paths"], 1)


def _write_garbage(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes((n * 7919) % 251 for n in range(64 * 1024)))
    return path


async def _first_dead_letter(
    db: Database, toolset: Toolset, archive: Path, pool: ExifToolPool
) -> dict[str, Any]:
    """Run the real scheduler over the queued thumbnail jobs until one is dead; its event."""
    events = RecordedEvents()

    async def tools() -> Toolset:
        return toolset

    async def archive_root() -> str:
        return str(archive)

    scheduler = JobScheduler(
        JobStore(db),
        {Queue.THUMBNAIL: thumbnail_handler(pool)},
        tools=tools,
        archive_root=archive_root,
        events=events,
    )
    task = asyncio.create_task(scheduler.run(), name="jobs-thumbnail-test")
    try:
        scheduler.wake()
        async with asyncio.timeout(10):
            return await events.dead.get()
    finally:
        await scheduler.stop(0)
        async with asyncio.timeout(10):
            await task


async def test_an_undecodable_file_is_dead_after_one_attempt_saying_why(
    db: Database,
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    toolset: Toolset,
    pool: ExifToolPool,
) -> None:
    garbage = _write_garbage(archive / "loc" / "garbage.jpg")
    digest = add_media_row(db_path, "image", garbage, location.locid)
    (job_id,) = await add_jobs(
        db, NewJob(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(garbage)})
    )

    dead = await _first_dead_letter(db, toolset, archive, pool)

    row = await job_row(db, job_id)
    assert (row["status"], row["attempts"]) == ("dead", 1)
    assert row["error"].startswith(f"cannot decode {garbage}: cannot identify image file")
    assert (dead["jobId"], dead["attempts"], dead["error"]) == (job_id, 1, row["error"])
    assert _row(db_path, "imgs", digest)["thumb_path_sm"] is None
    assert not (archive / ".thumbnails").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="a niceness per thread is Linux's")
async def test_the_render_runs_at_background_priority_and_the_default_threads_keep_theirs(
    db: Database,
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    toolset: Toolset,
    pool: ExifToolPool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A thumbnail job under the real scheduler decodes and resizes on a thread an import's work
    comes before; the event loop's default threads, where the import's own calls run, keep the
    sidecar's priority."""
    photo = make_jpeg(archive / "loc" / "photo.jpg", 1200, 900)
    digest = add_media_row(db_path, "image", photo, location.locid)
    (job_id,) = await add_jobs(
        db, NewJob(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(photo)})
    )
    loop = asyncio.get_running_loop()
    rendered = asyncio.Event()
    render_niceness: list[int] = []
    real_render = thumbnail.render

    def render(*args: Any) -> None:
        render_niceness.append(this_thread())
        real_render(*args)
        loop.call_soon_threadsafe(rendered.set)

    monkeypatch.setattr(thumbnail, "render", render)

    async def tools() -> Toolset:
        return toolset

    async def archive_root() -> str:
        return str(archive)

    scheduler = JobScheduler(
        JobStore(db),
        {Queue.THUMBNAIL: thumbnail_handler(pool)},
        tools=tools,
        archive_root=archive_root,
        events=RecordedEvents(),
    )
    task = asyncio.create_task(scheduler.run(), name="jobs-thumbnail-priority-test")
    try:
        scheduler.wake()
        async with asyncio.timeout(10):
            await rendered.wait()
    finally:
        await scheduler.stop(10)  # the job records its thumbnails before it ends
        async with asyncio.timeout(10):
            await task

    base = this_thread()
    assert render_niceness == [lowered(base)]
    assert await asyncio.to_thread(this_thread) == base
    assert (await job_row(db, job_id))["status"] == "completed"


# --- HEIC/HEIF ---


@pytest.mark.parametrize(
    ("name", "orientation"),
    [
        ("IMG_0005.HEIC", None),
        ("IMG_0006.HEIC", 6),
        ("IMG_0007.heif", 3),
        ("_DSC0001.HIF", 8),  # Canon's and Sony's 10-bit HEIF
        ("exported-as.jpg", None),
    ],
    ids=["upright", "turned-6", "turned-3", "hif", "heic-named-jpg"],
)
async def test_a_heic_gets_thumbnails_shown_as_its_transforms_say(
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    pool: ExifToolPool,
    name: str,
    orientation: int | None,
) -> None:
    heic = make_heic(
        archive / "loc" / name, _two_corner_image(), orientation=orientation, ten_bit=name.endswith(".HIF")
    )
    if name.endswith(".HIF"):
        assert (
            subprocess.run(
                [exiftool(), "-s3", "-BitDepthLuma", str(heic)], check=True, capture_output=True, text=True
            ).stdout.strip()
            == "10"
        )
    digest = add_media_row(db_path, "image", heic, location.locid)
    job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(heic)})

    result = await thumbnail_handler(pool)(job)
    assert result is not None

    assert result["source"] == "file"
    _assert_shown_as(result["paths"], orientation or 1)


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
async def test_an_avif_stays_with_pillows_decoder_and_upright(
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    pool: ExifToolPool,
    orientation: int,
) -> None:
    # AVIF is a HEIF brand too; pi-heif has no AV1 decoder, so it must not take these from Pillow.
    exif = Image.Exif()
    exif[0x0112] = orientation
    avif = archive / "loc" / f"o{orientation}.avif"
    avif.parent.mkdir(parents=True, exist_ok=True)
    _two_corner_image().save(avif, "AVIF", quality=90, speed=10, exif=exif.tobytes())
    digest = add_media_row(db_path, "image", avif, location.locid)
    job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(avif)})

    result = await thumbnail_handler(pool)(job)
    assert result is not None

    _assert_shown_as(result["paths"], orientation)


async def test_a_broken_heic_fails_for_good_saying_why(
    db_path: Path, archive: Path, location: LocationFixture, make_context: ContextMaker, pool: ExifToolPool
) -> None:
    whole = make_heic(archive / "loc" / "whole.heic", _two_corner_image()).read_bytes()
    heic = archive / "loc" / "IMG_0008.HEIC"
    heic.write_bytes(whole[:200])  # the boxes that say HEIC, no image data
    digest = add_media_row(db_path, "image", heic, location.locid)
    job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(heic)})

    with pytest.raises(CannotRender, match=r"cannot decode .*IMG_0008\.HEIC: \S") as raised:
        await thumbnail_handler(pool)(job)

    assert isinstance(raised.value, PermanentFailure)


# --- RAW ---


def _store_tags(db_path: Path, digest: str, path: Path) -> None:
    """meta_exiftool as the exiftool job stores it: the flat `-json -n` object."""
    out = subprocess.run(
        [exiftool(), "-json", "-n", str(path)], check=True, capture_output=True, stdin=subprocess.DEVNULL
    ).stdout
    with closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        db.execute("UPDATE imgs SET meta_exiftool = ? WHERE imghash = ?", (out.decode()[1:-2], digest))


@pytest.mark.parametrize("tags_stored", [True, False], ids=["tags-stored", "tags-read"])
async def test_a_raw_uses_its_largest_embedded_preview_turned_by_the_raws_orientation(
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    events: RecordedEvents,
    pool: ExifToolPool,
    tags_stored: bool,
) -> None:
    # The preview says "upside down" (3); the camera said 6. The small IFD1 thumbnail must lose.
    raw = make_dng(
        archive / "loc" / "IMG_0001.dng",
        orientation=6,
        jpg_from_raw=jpeg_bytes(1500, 1000, orientation=3),
        thumbnail=jpeg_bytes(160, 120),
    )
    digest = add_media_row(db_path, "image", raw, location.locid)
    if tags_stored:
        _store_tags(db_path, digest, raw)
    job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(raw)})

    result = await thumbnail_handler(pool)(job)
    assert result is not None

    assert result["source"] == "embedded-preview"
    assert _sizes(result["paths"]) == {"sm": (400, 600), "lg": (800, 1200), "preview": (1000, 1500)}
    assert _near(_colour_at(result["paths"]["preview"], 0.95, 0.05), BLOCK)
    row = _row(db_path, "imgs", digest)
    assert row["preview_extracted"] == 1
    assert row["preview_path"] == result["paths"]["preview"]
    assert len(events.of("asset:thumbnail-ready")) == 1


async def test_a_raw_prefers_its_paired_jpeg(
    db_path: Path, archive: Path, location: LocationFixture, make_context: ContextMaker, pool: ExifToolPool
) -> None:
    jpeg = make_jpeg(archive / "loc" / "IMG_0002.jpg", 2400, 1600)
    jpeg_hash = add_media_row(db_path, "image", jpeg, location.locid)
    raw = make_dng(archive / "loc" / "IMG_0002.dng", jpg_from_raw=jpeg_bytes(300, 200))
    digest = add_media_row(db_path, "image", raw, location.locid)
    payload = {"hash": digest, "mediaType": "image", "archivePath": str(raw), "pairedHash": jpeg_hash}

    result = await thumbnail_handler(pool)(make_context(Queue.THUMBNAIL, payload))
    assert result is not None

    assert result["source"] == "paired-jpeg"
    assert _sizes(result["paths"]) == {"sm": (600, 400), "lg": (1200, 800), "preview": (2400, 1600)}
    assert Path(result["paths"]["sm"]).name == f"{digest}_400.jpg"
    assert _row(db_path, "imgs", digest)["preview_extracted"] == 0


@pytest.mark.parametrize(
    ("name", "stored", "tag"),
    [("DC50_0001.KDC", (900, 600), "PreviewTIFF"), ("DSC_0001.NEF", (240, 160), "ThumbnailTIFF")],
    ids=["kdc-preview-tiff", "nef-thumbnail-tiff"],
)
async def test_a_raw_whose_only_preview_is_a_tiff_uses_it_turned_by_the_raws_orientation(
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    pool: ExifToolPool,
    name: str,
    stored: tuple[int, int],
    tag: str,
) -> None:
    # Kodak KDCs and early NEFs keep an uncompressed RGB image in IFD0, exiftool rebuilds it as a TIFF.
    raw = make_dng(archive / "loc" / name, orientation=6, rgb_preview=_two_corner_image(*stored))
    digest = add_media_row(db_path, "image", raw, location.locid)
    _store_tags(db_path, digest, raw)
    job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(raw)})

    result = await thumbnail_handler(pool)(job)
    assert result is not None

    assert result["source"] == "embedded-preview"
    _assert_shown_as(result["paths"], 6, stored)
    assert _row(db_path, "imgs", digest)["preview_extracted"] == 1
    assert tag in _row(db_path, "imgs", digest)["meta_exiftool"]


async def test_a_jpeg_preview_written_by_exiftool_is_used_turned_by_the_raws_orientation(
    tmp_path: Path,
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    pool: ExifToolPool,
) -> None:
    # The layout holds a 16x16 placeholder; exiftool writes the real preview in, as a converter would
    # (it rewrites the file: offsets, sizes, IFD order are exiftool's own from then on).
    raw = make_dng(archive / "loc" / "IMG_0010.dng", orientation=8, jpg_from_raw=jpeg_bytes(16, 16))
    preview = tmp_path / "preview.jpg"
    _two_corner_image(1200, 800).save(preview, "JPEG", quality=92)
    subprocess.run(
        [exiftool(), "-q", "-overwrite_original", f"-JpgFromRaw<={preview}", str(raw)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    digest = add_media_row(db_path, "image", raw, location.locid)
    _store_tags(db_path, digest, raw)
    job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(raw)})

    result = await thumbnail_handler(pool)(job)
    assert result is not None

    assert result["source"] == "embedded-preview"
    _assert_shown_as(result["paths"], 8, (1200, 800))


@pytest.mark.parametrize(("own", "raws"), [(3, 6), (6, 1), (8, 6), (5, 2)])
def test_a_tiff_preview_turned_by_its_own_tag_is_shown_by_the_raws_instead(
    tmp_path: Path, own: int, raws: int
) -> None:
    # Pillow turns a TIFF by its own tag while loading it; a RAW's preview must show as the RAW says.
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = own
    _two_corner_image().save(buffer, "TIFF", exif=exif)
    source = thumbnail.Source(
        thumbnail.SourceKind.EMBEDDED_PREVIEW,
        "PreviewTIFF of a RAW",
        data=buffer.getvalue(),
        orientation=raws,
    )
    paths = thumbnail_paths(str(tmp_path), "0123456789abcdef")

    thumbnail.render(source, paths, "0123456789abcdef")

    _assert_shown_as({"sm": paths[400], "lg": paths[800], "preview": paths[1920]}, raws)


async def test_the_largest_preview_is_the_one_with_most_pixels_not_bytes(
    db_path: Path, archive: Path, location: LocationFixture, make_context: ContextMaker, pool: ExifToolPool
) -> None:
    # A 160x120 uncompressed TIFF (57 KB) and a 900x600 JPEG (24 KB): the JPEG shows more.
    raw = make_dng(
        archive / "loc" / "DSC_0002.NEF",
        rgb_preview=Image.new("RGB", (160, 120), (20, 20, 200)),
        jpg_from_raw=jpeg_bytes(900, 600),
    )
    digest = add_media_row(db_path, "image", raw, location.locid)
    job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(raw)})

    result = await thumbnail_handler(pool)(job)
    assert result is not None

    assert _sizes(result["paths"]) == {"sm": (600, 400), "lg": (900, 600), "preview": (900, 600)}
    assert _near(_colour_at(result["paths"]["preview"], 0.05, 0.05), BLOCK)


@pytest.mark.parametrize("orientation", [1, 6, 3])
async def test_a_raw_without_any_preview_is_decoded_by_libraw_upright(
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    pool: ExifToolPool,
    orientation: int,
) -> None:
    raw = make_cfa_dng(
        archive / "loc" / f"L100000{orientation}.DNG", _two_corner_image(), orientation=orientation
    )
    digest = add_media_row(db_path, "image", raw, location.locid)
    job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(raw)})

    result = await thumbnail_handler(pool)(job)
    assert result is not None

    assert result["source"] == "raw-decode"
    # LibRaw decodes at half size: 450x300 from the 900x600 sensor.
    _assert_shown_as(result["paths"], orientation, (450, 300), hues_only=True)
    assert _row(db_path, "imgs", digest)["preview_extracted"] == 0


async def test_a_raw_libraw_cannot_decode_without_pair_or_preview_fails_for_good_saying_why(
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    events: RecordedEvents,
    pool: ExifToolPool,
) -> None:
    raw = make_dng(archive / "loc" / "IMG_0003.dng")  # an RGB raster where LibRaw wants a mosaic
    digest = add_media_row(db_path, "image", raw, location.locid)
    job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(raw)})

    with pytest.raises(
        CannotRender, match=r"IMG_0003\.dng \(no embedded preview; LibRaw\): Unsupported file"
    ) as raised:
        await thumbnail_handler(pool)(job)

    assert isinstance(raised.value, PermanentFailure)
    assert _row(db_path, "imgs", digest)["thumb_path_sm"] is None
    assert events.sent == []


async def test_a_raw_whose_paired_jpeg_is_not_archived_yet_is_retried(
    db_path: Path, archive: Path, location: LocationFixture, make_context: ContextMaker, pool: ExifToolPool
) -> None:
    raw = make_dng(archive / "loc" / "IMG_0004.dng")
    digest = add_media_row(db_path, "image", raw, location.locid)
    payload = {"hash": digest, "mediaType": "image", "archivePath": str(raw), "pairedHash": "0" * 16}

    with pytest.raises(ThumbnailError, match="not in the archive yet") as raised:
        await thumbnail_handler(pool)(make_context(Queue.THUMBNAIL, payload))

    assert not isinstance(raised.value, PermanentFailure)


# --- Video ---


@pytest.mark.parametrize(
    ("rotate", "seconds", "expected"),
    [
        (None, 2.0, {"sm": (711, 400), "lg": (1280, 720), "preview": (1280, 720)}),
        (90, 2.0, {"sm": (400, 711), "lg": (720, 1280), "preview": (720, 1280)}),
        (None, 0.4, {"sm": (711, 400), "lg": (1280, 720), "preview": (1280, 720)}),
    ],
    ids=["landscape", "portrait-phone", "shorter-than-1s"],
)
async def test_a_video_gets_a_poster_frame_shown_as_it_plays(
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    events: RecordedEvents,
    pool: ExifToolPool,
    rotate: int | None,
    seconds: float,
    expected: dict[str, tuple[int, int]],
) -> None:
    video = make_video(archive / "loc" / "clip.mp4", 1280, 720, seconds=seconds, rotate=rotate)
    digest = add_media_row(db_path, "video", video, location.locid)
    job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "video", "archivePath": str(video)})

    result = await thumbnail_handler(pool)(job)
    assert result is not None

    assert result["source"] == "poster-frame"
    assert _sizes(result["paths"]) == expected
    row = _row(db_path, "vids", digest)
    assert row["poster_extracted"] == 1
    assert (row["thumb_path_sm"], row["thumb_path_lg"], row["preview_path"], row["thumb_path"]) == (
        result["paths"]["sm"],
        result["paths"]["lg"],
        result["paths"]["preview"],
        result["paths"]["sm"],
    )
    assert events.of("asset:thumbnail-ready") == [
        {"hash": digest, "mediaType": "video", "paths": result["paths"]}
    ]


async def test_without_ffmpeg_a_video_fails_for_good_naming_the_option(
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    toolset: Toolset,
    pool: ExifToolPool,
) -> None:
    video = make_video(archive / "loc" / "clip.mp4")
    digest = add_media_row(db_path, "video", video, location.locid)
    payload = {"hash": digest, "mediaType": "video", "archivePath": str(video)}
    job = make_context(Queue.THUMBNAIL, payload, tools=dataclasses.replace(toolset, ffmpeg=None))

    with pytest.raises(ToolMissing, match="ffmpeg not found; set --ffmpeg") as raised:
        await thumbnail_handler(pool)(job)

    assert isinstance(raised.value, PermanentFailure)
    assert _row(db_path, "vids", digest)["poster_extracted"] == 0


# --- JPEG XL, decoded by ffmpeg ---

BLUE, YELLOW = (40, 60, 210), (230, 210, 40)


def _four_corner_image(width: int, height: int) -> Image.Image:
    """Grey, with red, green, blue and yellow corners (stored top-left, top-right, bottom-left,
    bottom-right): any turn, mirror or swapped edge moves one."""
    image = Image.new("RGB", (width, height), (128, 128, 128))
    w, h = width // 4, height // 4
    image.paste(RED, (0, 0, w, h))
    image.paste(GREEN, (width - w, 0, width, h))
    image.paste(BLUE, (0, height - h, w, height))
    image.paste(YELLOW, (width - w, height - h, width, height))
    return image


async def test_a_jpeg_xl_gets_three_sizes_decoded_by_ffmpeg_upright(
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    events: RecordedEvents,
    pool: ExifToolPool,
) -> None:
    jxl = make_jxl(archive / "loc" / "photo.jxl", _four_corner_image(1800, 1200))
    assert jxl.read_bytes()[:2] == b"\xff\x0a"  # a JPEG XL codestream, not a PNG renamed
    corners = {"top-left": RED, "top-right": GREEN, "bottom-left": BLUE, "bottom-right": YELLOW}
    probes = {corner: (CORNERS[corner], colour) for corner, colour in corners.items()}
    await _assert_four_corner_thumbnails(
        jxl, "ffmpeg-decode", probes, db_path, archive, location, make_context, events, pool
    )


async def test_a_flashpix_gets_three_sizes_upright_its_edge_tiles_included(
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    events: RecordedEvents,
    pool: ExifToolPool,
) -> None:
    # 1800x1200 in 64x64 JPEG tiles: the last column of tiles holds 8 pixels, the last row 48.
    fpx = write_flashpix(archive / "loc" / "photo.fpx", _four_corner_image(1800, 1200))
    assert fpx.read_bytes()[:8] == bytes.fromhex("D0CF11E0A1B11AE1")  # a compound file
    # The corners, and the image's very edges, which lie in the partial tiles.
    probes = {
        "top-left": (CORNERS["top-left"], RED),
        "top-right": ((0.999, 0.001), GREEN),
        "bottom-left": ((0.001, 0.999), BLUE),
        "bottom-right": ((0.999, 0.999), YELLOW),
        "middle of the right edge": ((0.999, 0.5), (128, 128, 128)),
    }
    await _assert_four_corner_thumbnails(
        fpx, "file", probes, db_path, archive, location, make_context, events, pool
    )


async def _assert_four_corner_thumbnails(
    image: Path,
    source: str,
    probes: dict[str, tuple[tuple[float, float], tuple[int, int, int]]],
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    events: RecordedEvents,
    pool: ExifToolPool,
) -> None:
    """An 1800x1200 image of _four_corner_image gets its three sizes upright from `source`: each
    probe (label -> (point, colour)) and the grey centre where they belong, the row's paths, the
    event, no temp file left."""
    digest = add_media_row(db_path, "image", image, location.locid)
    job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(image)})

    result = await thumbnail_handler(pool)(job)
    assert result is not None

    expected = thumbnail_paths(str(archive), digest)
    paths = {"sm": expected[400], "lg": expected[800], "preview": expected[1920]}
    assert result == {"paths": paths, "source": source}
    assert _sizes(paths) == {"sm": (600, 400), "lg": (1200, 800), "preview": (1800, 1200)}
    for path in paths.values():
        for label, (point, colour) in probes.items():
            shown = _colour_at(path, *point)
            assert _near(shown, colour), f"{label} of {path} is {shown}"
        assert _near(_colour_at(path, 0.5, 0.5), (128, 128, 128))
    row = _row(db_path, "imgs", digest)
    assert (row["thumb_path_sm"], row["thumb_path_lg"], row["preview_path"], row["thumb_path"]) == (
        paths["sm"],
        paths["lg"],
        paths["preview"],
        paths["sm"],
    )
    assert row["preview_extracted"] == 0
    assert events.of("asset:thumbnail-ready") == [{"hash": digest, "mediaType": "image", "paths": paths}]
    assert _temp_files(archive) == []


async def test_an_undecodable_jpeg_xl_is_dead_after_one_attempt_with_ffmpegs_reason(
    db: Database,
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    toolset: Toolset,
    pool: ExifToolPool,
) -> None:
    garbage = _write_garbage(archive / "loc" / "garbage.jxl")
    digest = add_media_row(db_path, "image", garbage, location.locid)
    (job_id,) = await add_jobs(
        db, NewJob(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(garbage)})
    )

    dead = await _first_dead_letter(db, toolset, archive, pool)

    row = await job_row(db, job_id)
    assert (row["status"], row["attempts"]) == ("dead", 1)
    assert row["error"].startswith(
        f"cannot decode JPEG XL image {garbage} with ffmpeg: ffmpeg exited with 1: "
    )
    # ffmpeg's own words for AVERROR_INVALIDDATA, which its libjxl wrapper returns on a decode error.
    assert "Invalid data found when processing input" in row["error"]
    assert (dead["jobId"], dead["attempts"], dead["error"]) == (job_id, 1, row["error"])
    assert _row(db_path, "imgs", digest)["thumb_path_sm"] is None
    assert not (archive / ".thumbnails").exists()


async def test_without_ffmpeg_a_jpeg_xl_fails_for_good_naming_the_option(
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    toolset: Toolset,
    pool: ExifToolPool,
) -> None:
    jxl = make_jxl(archive / "loc" / "photo.jxl", _four_corner_image(300, 200))
    digest = add_media_row(db_path, "image", jxl, location.locid)
    payload = {"hash": digest, "mediaType": "image", "archivePath": str(jxl)}
    job = make_context(Queue.THUMBNAIL, payload, tools=dataclasses.replace(toolset, ffmpeg=None))

    with pytest.raises(ToolMissing, match="ffmpeg not found; set --ffmpeg") as raised:
        await thumbnail_handler(pool)(job)

    assert isinstance(raised.value, PermanentFailure)
    assert _row(db_path, "imgs", digest)["thumb_path_sm"] is None


# --- Failures ---


async def test_a_corrupt_jpeg_fails_for_good_leaving_nothing(
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    events: RecordedEvents,
    pool: ExifToolPool,
) -> None:
    broken = make_corrupt_jpeg(archive / "loc" / "broken.jpg")
    digest = add_media_row(db_path, "image", broken, location.locid)
    job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(broken)})

    with pytest.raises(CannotRender, match=r"cannot decode .*broken\.jpg") as raised:
        await thumbnail_handler(pool)(job)

    # The same bytes fail the same way again: dead at once, not retried.
    assert isinstance(raised.value, PermanentFailure)
    assert not any(Path(p).exists() for p in thumbnail_paths(str(archive), digest).values())
    assert not (archive / ".thumbnails").exists()
    assert _row(db_path, "imgs", digest)["thumb_path_sm"] is None
    assert events.sent == []


async def test_without_an_archive_folder_the_job_says_so(
    db_path: Path, archive: Path, location: LocationFixture, make_context: ContextMaker, pool: ExifToolPool
) -> None:
    photo = make_jpeg(archive / "loc" / "photo.jpg", 600, 400)
    digest = add_media_row(db_path, "image", photo, location.locid)
    job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(photo)})

    with pytest.raises(ThumbnailError, match="archive folder not configured"):
        await thumbnail_handler(pool)(dataclasses.replace(job, archive_root=None))


async def test_a_row_deleted_before_the_job_ran_is_skipped(
    archive: Path, make_context: ContextMaker, events: RecordedEvents, pool: ExifToolPool
) -> None:
    job = make_context(
        Queue.THUMBNAIL, {"hash": "0123456789abcdef", "mediaType": "image", "archivePath": "/x.jpg"}
    )

    result = await thumbnail_handler(pool)(job)

    assert result == {"paths": None, "skipped": "no imgs row for 0123456789abcdef"}
    assert events.sent == []
    assert not (archive / ".thumbnails").exists()


async def test_a_payload_hash_that_is_not_a_hash_never_becomes_a_path(
    make_context: ContextMaker, pool: ExifToolPool
) -> None:
    job = make_context(Queue.THUMBNAIL, {"hash": "../../etc/passwd", "mediaType": "image"})

    with pytest.raises(CannotRender, match="without a valid hash"):
        await thumbnail_handler(pool)(job)


@pytest.mark.parametrize("name", ["gone.jpg", "gone.dng", "gone.jxl"])
async def test_a_missing_source_file_fails_the_attempt_saying_so(
    db_path: Path,
    archive: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    pool: ExifToolPool,
    name: str,
) -> None:
    photo = make_jpeg(archive / "loc" / name, 600, 400)
    digest = add_media_row(db_path, "image", photo, location.locid)
    _store_tags(db_path, digest, photo)  # a RAW's tags say it has no preview: LibRaw would be next
    photo.unlink()
    job = make_context(Queue.THUMBNAIL, {"hash": digest, "mediaType": "image", "archivePath": str(photo)})

    with pytest.raises(ThumbnailError, match=rf"source file missing: .*{name}") as raised:
        await thumbnail_handler(pool)(job)

    assert not isinstance(raised.value, PermanentFailure)  # a drive may come back
