"""The `exiftool` handler and the pool of long-lived exiftool processes, with the real exiftool on
real files written by exiftool and ffmpeg, over a real SQLite file."""

import asyncio
import dataclasses
import os
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from pathlib import Path

import orjson
import pytest
from PIL import Image, PngImagePlugin

from sidecar.db.connection import Database
from sidecar.errors import PermanentFailure
from sidecar.jobs.handlers.exiftool import exiftool_handler
from sidecar.jobs.store import Queue
from sidecar.tools.discovery import Toolset
from sidecar.tools.exif_tags import date_taken, displayed_size, gps, parse_date
from sidecar.tools.exiftool import ExifToolPool, _read_until_marker
from sidecar.tools.process import ToolFailed, ToolMissing
from tests.support.archive import LocationFixture, add_media_row
from tests.support.camera_files import make_avchd_clip, make_cr2_standin, make_dng_standin, make_raf_standin
from tests.support.jobs import ContextMaker, RecordedEvents
from tests.support.media import exiftool, make_jpeg, make_video
from tests.support.processes import lowered, niceness


@pytest.fixture
async def pool() -> AsyncIterator[ExifToolPool]:
    exiftool = ExifToolPool(2)
    yield exiftool
    await exiftool.close()


def _row(db_path: Path, sql: str, params: tuple[object, ...]) -> sqlite3.Row:
    with closing(sqlite3.connect(db_path)) as db:
        db.row_factory = sqlite3.Row
        row: sqlite3.Row | None = db.execute(sql, params).fetchone()
    assert row is not None
    return row


async def test_an_image_gets_its_tags_and_every_typed_column(
    tmp_path: Path,
    db_path: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    events: RecordedEvents,
    pool: ExifToolPool,
) -> None:
    photo = make_jpeg(
        tmp_path / "a" / "photo.jpg",
        1200,
        900,
        orientation=6,
        gps=(-33.8568, 151.2153),
        taken="2024:05:06 07:08:09",
        make="Canon",
        model="EOS R5",
    )
    digest = add_media_row(db_path, "image", photo, location.locid)
    job = make_context(Queue.EXIFTOOL, {"hash": digest, "mediaType": "image", "archivePath": str(photo)})

    result = await exiftool_handler(pool)(job)
    assert result is not None

    row = _row(db_path, "SELECT * FROM imgs WHERE imghash = ?", (digest,))
    # Coded 1200×900, turned a quarter by orientation 6: shown (and stored) 900×1200.
    assert (row["meta_width"], row["meta_height"]) == (900, 1200)
    assert row["meta_date_taken"] == "2024-05-06T07:08:09.000Z"
    assert (row["meta_camera_make"], row["meta_camera_model"]) == ("Canon", "EOS R5")
    # South and East: the sign comes from the references.
    assert row["meta_gps_lat"] == pytest.approx(-33.8568)
    assert row["meta_gps_lng"] == pytest.approx(151.2153)
    stored = orjson.loads(row["meta_exiftool"])
    assert stored["Orientation"] == 6 and stored["Make"] == "Canon"  # flat tags, numeric values
    [event] = events.of("asset:metadata-complete")
    assert event["hash"] == digest and event["mediaType"] == "image"
    assert event["metadata"]["cameraModel"] == "EOS R5"
    assert "Orientation" not in event["metadata"]  # typed fields only, never every raw tag
    assert result["metadata"] == event["metadata"]


async def test_a_video_gets_its_capture_time(
    tmp_path: Path,
    db_path: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    pool: ExifToolPool,
) -> None:
    clip = make_video(tmp_path / "clip.mp4", creation_time="2023-11-12T13:14:15Z")
    digest = add_media_row(db_path, "video", clip, location.locid)
    job = make_context(Queue.EXIFTOOL, {"hash": digest, "mediaType": "video", "archivePath": str(clip)})

    await exiftool_handler(pool)(job)

    row = _row(db_path, "SELECT meta_date_taken, meta_exiftool FROM vids WHERE vidhash = ?", (digest,))
    assert row["meta_date_taken"] == "2023-11-12T13:14:15.000Z"
    assert orjson.loads(row["meta_exiftool"])["MIMEType"].startswith("video/")


async def test_a_document_gets_author_title_and_pages(
    tmp_path: Path,
    db_path: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    pool: ExifToolPool,
) -> None:
    pdf = tmp_path / "report.pdf"
    Image.new("RGB", (200, 100), "white").save(pdf, "PDF", title="Survey", author="Ada", save_all=True)
    digest = add_media_row(db_path, "document", pdf, location.locid)
    job = make_context(Queue.EXIFTOOL, {"hash": digest, "mediaType": "document", "archivePath": str(pdf)})

    await exiftool_handler(pool)(job)

    row = _row(
        db_path, "SELECT meta_author, meta_title, meta_page_count FROM docs WHERE dochash = ?", (digest,)
    )
    assert tuple(row) == ("Ada", "Survey", 1)


async def test_an_unreadable_file_fails_the_job_with_exiftools_reason(
    tmp_path: Path, make_context: ContextMaker, pool: ExifToolPool
) -> None:
    job = make_context(
        Queue.EXIFTOOL,
        {"hash": "0" * 16, "mediaType": "image", "archivePath": str(tmp_path / "gone.jpg")},
    )
    with pytest.raises(ToolFailed, match="File not found"):
        await exiftool_handler(pool)(job)
    # The process that answered stays usable.
    photo = make_jpeg(tmp_path / "ok.jpg", 64, 48)
    assert (await pool.read_tags(job.tools.exiftool, str(photo)))["ImageWidth"] == 64


async def test_a_missing_exiftool_is_a_clear_error_that_no_retry_can_fix(
    tmp_path: Path, make_context: ContextMaker, toolset: Toolset, pool: ExifToolPool
) -> None:
    photo = make_jpeg(tmp_path / "p.jpg", 64, 48)
    job = make_context(
        Queue.EXIFTOOL,
        {"hash": "0" * 16, "mediaType": "image", "archivePath": str(photo)},
        tools=dataclasses.replace(toolset, exiftool=None),
    )
    with pytest.raises(ToolMissing, match="exiftool not found; set --exiftool") as raised:
        await exiftool_handler(pool)(job)
    assert isinstance(raised.value, PermanentFailure)


async def test_a_dead_exiftool_process_is_replaced(tmp_path: Path, toolset: Toolset) -> None:
    photo = make_jpeg(tmp_path / "p.jpg", 64, 48)
    pool = ExifToolPool(1)
    try:
        await pool.read_tags(toolset.exiftool, str(photo))
        [process] = pool._idle
        process.kill()
        # The dead one fails the command it was given; the next command gets a fresh process.
        with pytest.raises(ToolFailed, match="exited unexpectedly"):
            await pool.read_tags(toolset.exiftool, str(photo))
        assert (await pool.read_tags(toolset.exiftool, str(photo)))["ImageWidth"] == 64
        assert pool._idle and pool._idle[0] is not process
    finally:
        await pool.close()


async def test_a_cancelled_command_never_leaves_its_process_in_the_pool(
    tmp_path: Path, toolset: Toolset
) -> None:
    photos = [str(make_jpeg(tmp_path / f"p{i}.jpg", 64, 48, seed=i)) for i in range(200)]
    pool = ExifToolPool(1)
    try:
        await pool.read_tags(toolset.exiftool, photos[0])
        [process] = pool._idle
        command = asyncio.create_task(pool.execute(toolset.exiftool, ["-json", *photos]))
        await asyncio.sleep(0)  # one step: it takes the process, sends, and waits for the answer
        assert pool._idle == []
        command.cancel()
        with pytest.raises(asyncio.CancelledError):
            await command
        # Its answer would arrive out of step with the next command: killed and reaped, not reused.
        assert pool._idle == [] and not process.alive
        assert (await pool.read_tags(toolset.exiftool, photos[0]))["ImageWidth"] == 64
    finally:
        await pool.close()


async def test_the_stay_open_process_runs_at_background_priority(tmp_path: Path, toolset: Toolset) -> None:
    photo = make_jpeg(tmp_path / "p.jpg", 64, 48)
    pool = ExifToolPool(1)
    try:
        assert (await pool.read_tags(toolset.exiftool, str(photo)))["ImageWidth"] == 64
        [process] = pool._idle
        assert niceness(process.pid) == lowered(niceness(os.getpid()))
    finally:
        await pool.close()


@pytest.mark.parametrize(
    ("value", "subsec", "zone", "expected"),
    [
        ("2024:05:06 07:08:09", None, None, "2024-05-06T07:08:09+00:00"),
        ("2024:05:06 07:08:09+02:00", None, None, "2024-05-06T05:08:09+00:00"),
        ("2024:05:06 07:08:09", None, "-05:00", "2024-05-06T12:08:09+00:00"),
        ("2024:05:06 07:08:09+01:00", None, "-05:00", "2024-05-06T06:08:09+00:00"),  # its own zone wins
        ("2024:05:06 07:08:09.25Z", None, None, "2024-05-06T07:08:09.250000+00:00"),
        ("2024:05:06 07:08:09", "05", None, "2024-05-06T07:08:09.050000+00:00"),  # "05" is 50 ms
        ("2024:05:06 07:08:09", 5, None, "2024-05-06T07:08:09.500000+00:00"),  # a number: 5 tenths
        # Sony AVCHD as exiftool's H264.pm prints it: the offset already includes DST.
        ("2019:04:24 22:24:00+02:00 DST", None, None, "2019-04-24T20:24:00+00:00"),
        ("2019:01:24 22:24:00+01:00 STD", None, None, "2019-01-24T21:24:00+00:00"),
        ("2024-05-06T07:08:09.5+0200", None, None, "2024-05-06T05:08:09.500000+00:00"),  # ISO
        ("Mon, 06 May 2024 07:08:09 +0200", None, None, "2024-05-06T05:08:09+00:00"),  # PNG's RFC 1123
        ("0000:00:00 00:00:00", None, None, None),
        ("2024:05:06", None, None, None),  # a day is not a moment
        ("not a date", None, None, None),
        (20240506, None, None, None),
    ],
)
def test_exif_dates(value: object, subsec: object, zone: str | None, expected: str | None) -> None:
    parsed = parse_date(value, subsec=subsec, zone=zone)
    assert (None if parsed is None else parsed.isoformat()) == expected


def test_the_first_date_of_the_policy_wins() -> None:
    # A still: the original's own sub-seconds and zone beat every later fallback.
    still = {
        "DateTimeOriginal": "2024:05:06 07:08:09",
        "SubSecTimeOriginal": "123",
        "OffsetTimeOriginal": "+02:00",
        "CreateDate": "2024:05:06 07:08:10",
        "ModifyDate": "2025:01:01 00:00:00",
    }
    assert date_taken("image", still) == "2024-05-06T05:08:09.123Z"
    assert date_taken(
        "image", {"ModifyDate": "2025:01:01 00:00:00", "GPSDateTime": "2024:05:06 07:08:09Z"}
    ) == ("2025-01-01T00:00:00.000Z")
    # A video: Apple's CreationDate (local, zoned) before the movie header's UTC CreateDate;
    # AVCHD's DateTimeOriginal with its DST note when nothing else is there; epochs are no date.
    video = {"CreateDate": "2024:05:06 05:08:19", "CreationDate": "2024:05:06 07:08:07+02:00"}
    assert date_taken("video", video) == "2024-05-06T05:08:07.000Z"
    assert date_taken("video", {"DateTimeOriginal": "2019:04:24 22:24:00+02:00 DST"}) == (
        "2019-04-24T20:24:00.000Z"
    )
    assert (
        date_taken("video", {"CreateDate": "1904:01:01 00:00:00", "TrackCreateDate": "1970:01:01 00:00:00"})
        is None
    )


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        # Each only date its file has; sub-seconds and zones from the tag's own partners.
        (
            [
                "-DateTimeOriginal=2024:05:06 07:08:09",
                "-SubSecTimeOriginal=045",
                "-OffsetTimeOriginal=-04:00",
            ],
            "2024-05-06T11:08:09.045Z",
        ),
        (["-CreateDate=2024:05:06 07:08:09", "-SubSecTimeDigitized=7"], "2024-05-06T07:08:09.700Z"),
        (["-ModifyDate=2024:05:06 07:08:09", "-OffsetTime=+09:00"], "2024-05-05T22:08:09.000Z"),
        (["-GPSDateStamp=2024:05:06", "-GPSTimeStamp=07:08:09.25"], "2024-05-06T07:08:09.250Z"),
    ],
)
async def test_a_still_is_dated_by_whatever_date_it_has(
    tmp_path: Path,
    db_path: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    pool: ExifToolPool,
    tags: list[str],
    expected: str,
) -> None:
    photo = make_jpeg(tmp_path / "p.jpg", 64, 48)
    subprocess.run([exiftool(), "-q", "-overwrite_original", *tags, str(photo)], check=True)
    digest = add_media_row(db_path, "image", photo, location.locid)

    await exiftool_handler(pool)(
        make_context(Queue.EXIFTOOL, {"hash": digest, "mediaType": "image", "archivePath": str(photo)})
    )

    assert _row(db_path, "SELECT meta_date_taken FROM imgs WHERE imghash = ?", (digest,))[0] == expected


async def test_an_avchd_clips_dst_date_is_read_with_its_zone(
    tmp_path: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker, pool: ExifToolPool
) -> None:
    clip = make_avchd_clip(tmp_path / "00001.MTS", taken="2019:04:24 22:24:01", zone_hours=2, dst=True)
    digest = add_media_row(db_path, "video", clip, location.locid)

    await exiftool_handler(pool)(
        make_context(Queue.EXIFTOOL, {"hash": digest, "mediaType": "video", "archivePath": str(clip)})
    )

    row = _row(db_path, "SELECT meta_date_taken, meta_exiftool FROM vids WHERE vidhash = ?", (digest,))
    assert orjson.loads(row["meta_exiftool"])["DateTimeOriginal"] == "2019:04:24 22:24:01+02:00 DST"
    assert row["meta_date_taken"] == "2019-04-24T20:24:01.000Z"  # not 22:24 (stored as if UTC)


async def test_a_png_is_dated_by_its_creation_time(
    tmp_path: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker, pool: ExifToolPool
) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Creation Time", "Mon, 06 May 2024 07:08:09 +0200")  # the PNG spec's suggested form
    png = tmp_path / "screen.png"
    Image.new("RGB", (32, 16)).save(png, pnginfo=info)
    digest = add_media_row(db_path, "image", png, location.locid)

    await exiftool_handler(pool)(
        make_context(Queue.EXIFTOOL, {"hash": digest, "mediaType": "image", "archivePath": str(png)})
    )

    row = _row(
        db_path, "SELECT meta_date_taken, meta_width, meta_height FROM imgs WHERE imghash = ?", (digest,)
    )
    assert tuple(row) == ("2024-05-06T05:08:09.000Z", 32, 16)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        # IFD0 is a 1536×1024 preview; the sensor (ExifImageWidth/Height) is 3456×2304.
        (lambda p: make_cr2_standin(p / "IMG_0001.CR2", (1536, 1024), (3456, 2304)), (3456, 2304)),
        (
            lambda p: make_cr2_standin(p / "IMG_0002.CR2", (1536, 1024), (3456, 2304), orientation=8),
            (2304, 3456),
        ),
        # IFD0 is a 256×171 preview; the SubIFD with SubfileType 0 holds the 6000×4000 raw.
        (lambda p: make_dng_standin(p / "L1000001.DNG", (256, 171), (6000, 4000)), (6000, 4000)),
        # The embedded JPEG is 160×120; the RAF directory's cropped size is the picture, 6000×4000.
        (lambda p: make_raf_standin(p / "DSCF0001.RAF", (160, 120), (6000, 4000)), (6000, 4000)),
    ],
)
async def test_a_raw_is_measured_at_sensor_size_not_by_its_preview(
    tmp_path: Path,
    db_path: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    pool: ExifToolPool,
    make: Callable[[Path], Path],
    expected: tuple[int, int],
) -> None:
    raw = make(tmp_path)
    digest = add_media_row(db_path, "image", raw, location.locid)

    await exiftool_handler(pool)(
        make_context(Queue.EXIFTOOL, {"hash": digest, "mediaType": "image", "archivePath": str(raw)})
    )

    row = _row(db_path, "SELECT meta_width, meta_height FROM imgs WHERE imghash = ?", (digest,))
    assert tuple(row) == expected


async def test_an_avif_is_measured_as_its_irot_turns_it(
    tmp_path: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker, pool: ExifToolPool
) -> None:
    # Pillow writes EXIF orientation 6 into an AVIF as an irot property and drops the EXIF tag.
    exif = Image.Exif()
    exif[0x0112] = 6
    avif = tmp_path / "turned.avif"
    Image.new("RGB", (120, 80), "blue").save(avif, exif=exif.tobytes(), quality=50)
    digest = add_media_row(db_path, "image", avif, location.locid)

    await exiftool_handler(pool)(
        make_context(Queue.EXIFTOOL, {"hash": digest, "mediaType": "image", "archivePath": str(avif)})
    )

    row = _row(
        db_path, "SELECT meta_width, meta_height, meta_exiftool FROM imgs WHERE imghash = ?", (digest,)
    )
    stored = orjson.loads(row["meta_exiftool"])
    assert (stored["ImageWidth"], stored["ImageHeight"], stored["Rotation"]) == (120, 80, 270)
    assert (row["meta_width"], row["meta_height"]) == (80, 120)
    # A maker note's own Rotation tag never turns a JPEG; only its EXIF Orientation does.
    assert displayed_size({"MIMEType": "image/jpeg", "ImageSize": "120 80", "Rotation": 90}) == (120, 80)


async def test_gps_zeros_are_no_position(
    tmp_path: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker, pool: ExifToolPool
) -> None:
    photo = make_jpeg(tmp_path / "nofix.jpg", 64, 48, gps=(0.0, 0.0))
    digest = add_media_row(db_path, "image", photo, location.locid)

    result = await exiftool_handler(pool)(
        make_context(Queue.EXIFTOOL, {"hash": digest, "mediaType": "image", "archivePath": str(photo)})
    )

    row = _row(
        db_path, "SELECT meta_gps_lat, meta_gps_lng, meta_exiftool FROM imgs WHERE imghash = ?", (digest,)
    )
    assert orjson.loads(row["meta_exiftool"])["GPSLatitude"] == 0  # the zeros were really written
    assert (row["meta_gps_lat"], row["meta_gps_lng"]) == (None, None)
    assert result is not None and result["metadata"]["gps"] is None
    # QuickTime's one-tag form too; a real position on the equator or the meridian stays.
    assert gps({"GPSCoordinates": "0 0 0"}) is None
    assert gps({"GPSLatitude": 0.0, "GPSLongitude": 9.5}) == {"lat": 0.0, "lng": 9.5, "altitude": None}


async def test_the_handler_never_touches_rows_of_other_files(
    tmp_path: Path,
    db: Database,
    db_path: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    pool: ExifToolPool,
) -> None:
    first = make_jpeg(tmp_path / "1.jpg", 64, 48, make="A", seed=1)
    second = make_jpeg(tmp_path / "2.jpg", 64, 48, make="B", seed=2)
    digests = [add_media_row(db_path, "image", p, location.locid) for p in (first, second)]
    await exiftool_handler(pool)(
        make_context(Queue.EXIFTOOL, {"hash": digests[0], "mediaType": "image", "archivePath": str(first)})
    )
    rows = await db.fetch_all("SELECT imghash, meta_camera_make FROM imgs ORDER BY imghash")
    assert dict((r[0], r[1]) for r in rows) == {digests[0]: "A", digests[1]: None}


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"{ready1}\n"], b""),
        ([b"[]\n{ready1}"], b"[]\n"),
        ([b"x" * 70_000, b"y{ready1}\r\n"], b"x" * 70_000 + b"y"),  # binary output over many reads
        ([b"a{rea", b"dy1}\n"], b"a"),  # the marker split across reads
    ],
)
async def test_output_ends_at_the_ready_marker(chunks: list[bytes], expected: bytes) -> None:
    stream = asyncio.StreamReader()
    for chunk in chunks:
        stream.feed_data(chunk)
    assert await _read_until_marker(stream, b"{ready1}") == expected


async def test_a_stream_that_ends_without_the_marker_is_a_dead_exiftool() -> None:
    stream = asyncio.StreamReader()
    stream.feed_data(b"partial")
    stream.feed_eof()
    with pytest.raises(ToolFailed, match="exited unexpectedly"):
        await _read_until_marker(stream, b"{ready1}")
