"""The `ffprobe` handler with the real ffprobe on videos made by ffmpeg, over a real SQLite file;
and the reading of ffprobe's JSON (`video_facts`) on the cases real files rarely show."""

import asyncio
import dataclasses
import os
import sqlite3
import subprocess
from contextlib import closing
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson
import pytest

from sidecar.errors import PermanentFailure
from sidecar.jobs.handlers.ffprobe import MAX_META_BYTES, BadPayload, _meta_json, ffprobe
from sidecar.jobs.store import Queue
from sidecar.tools.discovery import Toolset
from sidecar.tools.ffprobe import NotAVideo, probe, video_facts
from sidecar.tools.process import ToolFailed, ToolMissing
from tests.support.archive import LocationFixture, add_media_row
from tests.support.camera_files import make_anamorphic_dv, make_variable_rate_video
from tests.support.jobs import ContextMaker
from tests.support.media import ffmpeg, make_video
from tests.support.processes import children, lowered, niceness


def _vid(db_path: Path, digest: str) -> sqlite3.Row:
    with closing(sqlite3.connect(db_path)) as db:
        db.row_factory = sqlite3.Row
        row: sqlite3.Row | None = db.execute("SELECT * FROM vids WHERE vidhash = ?", (digest,)).fetchone()
    assert row is not None
    return row


def _payload(digest: str, path: Path) -> dict[str, Any]:
    return {"hash": digest, "mediaType": "video", "archivePath": str(path), "sessionId": "s", "jobId": "j"}


async def test_a_landscape_video_fills_every_typed_column(
    archive: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker
) -> None:
    video = make_video(
        archive / "org-vid" / "clip.mp4", 640, 360, seconds=1.0, creation_time="2024-05-06T07:08:09Z"
    )
    digest = add_media_row(db_path, "video", video, location.locid)

    result = await ffprobe(make_context(Queue.FFPROBE, _payload(digest, video)))

    row = _vid(db_path, digest)
    assert row["meta_duration"] == pytest.approx(1.0, abs=0.1)
    assert (row["meta_width"], row["meta_height"]) == (640, 360)
    assert row["meta_codec"] == "h264"
    assert row["meta_fps"] == 25.0
    assert row["meta_date_taken"] is None  # the exiftool job's column
    stored = orjson.loads(row["meta_ffmpeg"])
    assert float(stored["format"]["duration"]) == pytest.approx(row["meta_duration"])
    assert [s["codec_type"] for s in stored["streams"]] == ["video", "audio"]
    assert result == {
        "hash": digest,
        "duration": row["meta_duration"],
        "width": 640,
        "height": 360,
        "rotation": 0,
        "codec": "h264",
        "fps": 25.0,
    }


async def test_portrait_phone_footage_is_stored_as_displayed(
    archive: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker
) -> None:
    """Frames stored 640×360 with a 90° display matrix are shown 360×640 (the app stored 640×360)."""
    video = make_video(archive / "org-vid" / "phone.mov", 640, 360, seconds=0.5, rotate=90)
    digest = add_media_row(db_path, "video", video, location.locid)

    result = await ffprobe(make_context(Queue.FFPROBE, _payload(digest, video)))

    row = _vid(db_path, digest)
    assert (row["meta_width"], row["meta_height"]) == (360, 640)
    assert result["rotation"] == 90
    stored = orjson.loads(row["meta_ffmpeg"])
    assert (stored["streams"][0]["width"], stored["streams"][0]["height"]) == (640, 360)  # raw probe


async def test_the_capture_date_is_never_the_ffprobe_jobs(
    archive: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker
) -> None:
    """The exiftool job owns it: whatever the container says, ffprobe leaves the column alone."""
    video = make_video(
        archive / "org-vid" / "dated.mp4", 320, 240, seconds=0.5, creation_time="2024-05-06T07:08:09Z"
    )
    digest = add_media_row(db_path, "video", video, location.locid)
    with closing(sqlite3.connect(db_path, isolation_level=None)) as conn:
        conn.execute(
            "UPDATE vids SET meta_date_taken = '2023-01-02T03:04:05.000Z' WHERE vidhash = ?", (digest,)
        )

    result = await ffprobe(make_context(Queue.FFPROBE, _payload(digest, video)))

    assert "dateTaken" not in result
    assert _vid(db_path, digest)["meta_date_taken"] == "2023-01-02T03:04:05.000Z"


async def test_a_variable_rate_video_gets_its_average_frame_rate(
    archive: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker
) -> None:
    video = make_variable_rate_video(archive / "org-vid" / "thermal.mp4")
    digest = add_media_row(db_path, "video", video, location.locid)

    result = await ffprobe(make_context(Queue.FFPROBE, _payload(digest, video)))

    [stream] = orjson.loads(_vid(db_path, digest)["meta_ffmpeg"])["streams"]
    assert stream["r_frame_rate"] == "30/1"  # what the app stored
    assert _vid(db_path, digest)["meta_fps"] == result["fps"] == 7.5


async def test_anamorphic_dv_is_stored_as_displayed(
    archive: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker
) -> None:
    video = make_anamorphic_dv(archive / "org-vid" / "tape.dv")
    digest = add_media_row(db_path, "video", video, location.locid)

    result = await ffprobe(make_context(Queue.FFPROBE, _payload(digest, video)))

    row = _vid(db_path, digest)
    [stream] = orjson.loads(row["meta_ffmpeg"])["streams"]
    assert (stream["width"], stream["height"], stream["sample_aspect_ratio"]) == (720, 576, "64:45")
    assert (row["meta_width"], row["meta_height"]) == (result["width"], result["height"]) == (1024, 576)


async def test_a_corrupt_video_fails_the_attempt(
    archive: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker
) -> None:
    bad = archive / "org-vid" / "bad.mp4"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 16)
    digest = add_media_row(db_path, "video", bad, location.locid)

    with pytest.raises(ToolFailed, match=r"(?s)ffprobe exited with 1: .*Invalid data found"):
        await ffprobe(make_context(Queue.FFPROBE, _payload(digest, bad)))
    assert _vid(db_path, digest)["meta_ffmpeg"] is None


async def test_a_file_without_video_is_a_clear_non_retryable_error(
    archive: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker
) -> None:
    audio = archive / "org-vid" / "voice.m4a"
    audio.parent.mkdir(parents=True)
    subprocess.run(
        [ffmpeg(), "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=duration=0.3", str(audio)],
        check=True,
    )
    digest = add_media_row(db_path, "video", audio, location.locid)

    with pytest.raises(NotAVideo, match=r"no video stream in .*voice\.m4a") as raised:
        await ffprobe(make_context(Queue.FFPROBE, _payload(digest, audio)))
    assert isinstance(raised.value, PermanentFailure)


async def test_missing_ffprobe_names_the_option(
    archive: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker, toolset: Toolset
) -> None:
    video = make_video(archive / "org-vid" / "clip.mp4", 320, 240, seconds=0.5)
    digest = add_media_row(db_path, "video", video, location.locid)
    without = dataclasses.replace(toolset, ffprobe=None)

    with pytest.raises(ToolMissing, match=r"^ffprobe not found; set --ffprobe$") as raised:
        await ffprobe(make_context(Queue.FFPROBE, _payload(digest, video), tools=without))
    assert isinstance(raised.value, PermanentFailure)


async def test_a_deleted_video_is_skipped_and_a_bad_hash_refused(
    archive: Path, make_context: ContextMaker, location: LocationFixture
) -> None:
    video = make_video(archive / "org-vid" / "clip.mp4", 320, 240, seconds=0.5)

    result = await ffprobe(make_context(Queue.FFPROBE, _payload("0123456789abcdef", video)))
    assert result == {"hash": "0123456789abcdef", "skipped": "the video is no longer in the archive"}

    with pytest.raises(BadPayload) as raised:
        await ffprobe(make_context(Queue.FFPROBE, _payload("../../etc/passwd", video)))
    assert isinstance(raised.value, PermanentFailure)


def _stream(**fields: Any) -> dict[str, Any]:
    return {"codec_type": "video", "codec_name": "h264", "width": 1920, "height": 1080, **fields}


def test_facts_from_the_cases_real_files_rarely_show() -> None:
    # fps from the average even when r_frame_rate is 0/0.
    facts = video_facts(
        {
            "format": {
                "duration": "N/A",
                "tags": {
                    "creation_time": "2024-05-06T11:09:00.000000Z",
                    "com.apple.quicktime.creationdate": "2024-05-06T07:08:09-0400",
                },
            },
            "streams": [
                _stream(
                    codec_type="video",
                    disposition={"attached_pic": 1},
                    codec_name="mjpeg",
                    width=600,
                    height=600,
                ),
                _stream(
                    r_frame_rate="0/0",
                    avg_frame_rate="30000/1001",
                    duration="12.5",
                    side_data_list=[{"side_data_type": "Display Matrix", "rotation": -90}],
                    sample_aspect_ratio="0:1",
                ),
            ],
        },
        "x.mov",
    )
    assert (facts.width, facts.height, facts.rotation) == (1080, 1920, 270)
    assert facts.codec == "h264" and facts.fps == 29.97 and facts.duration == 12.5
    assert facts.pixel_aspect == 1 and facts.audio_channels is None

    # The older `rotate` tag counts; anamorphic pixels widen the display; no rate is no fps.
    old = video_facts(
        {
            "format": {"tags": {"creation_time": "1904-01-01T00:00:00.000000Z"}},
            "streams": [
                _stream(width=1440, tags={"rotate": "180"}, sample_aspect_ratio="4:3", r_frame_rate="25/0"),
                {"codec_type": "audio", "channels": 6},
            ],
        },
        "x.m2ts",
    )
    assert old.rotation == 180 and old.fps is None and old.duration is None
    assert old.pixel_aspect == Fraction(4, 3) and old.display_size == (1920.0, 1080)
    assert old.display_pixels == (1920, 1080)
    assert old.audio_channels == 6

    with pytest.raises(NotAVideo):
        video_facts({"streams": [_stream(disposition={"attached_pic": 1})]}, "cover.m4a")
    with pytest.raises(NotAVideo):
        video_facts({"streams": [_stream(width=0)]}, "broken.mp4")


@pytest.mark.parametrize(
    ("rates", "expected"),
    [
        ({"avg_frame_rate": "37/5", "r_frame_rate": "600/1", "time_base": "1/600"}, 7.4),
        # No average: frames over duration, then r_frame_rate unless it is only the time base.
        ({"avg_frame_rate": "0/0", "nb_frames": "74", "duration": "10.0", "r_frame_rate": "600/1"}, 7.4),
        ({"avg_frame_rate": "0/0", "r_frame_rate": "600/1", "time_base": "1/600"}, None),
        ({"avg_frame_rate": "0/0", "r_frame_rate": "25/1", "time_base": "1/1000"}, 25.0),
    ],
)
def test_the_frame_rate_is_the_average_never_a_time_base(
    rates: dict[str, str], expected: float | None
) -> None:
    assert video_facts({"streams": [_stream(**rates)]}, "x.mp4").fps == expected


def test_a_huge_probe_is_stored_as_a_subset() -> None:
    streams = [_stream(), {"codec_type": "audio", "codec_name": "aac"}]
    streams += [{"codec_type": "data", "index": i, "tags": {"x": "y" * 100}} for i in range(3000)]
    stored = orjson.loads(_meta_json({"format": {"duration": "1.0"}, "streams": streams}))
    assert stored["subset"] == "2 of 3002 streams"
    assert [s["codec_type"] for s in stored["streams"]] == ["video", "audio"]

    tagged = {"format": {"tags": {"comment": "z" * (MAX_META_BYTES + 1)}}, "streams": [_stream()]}
    stored = orjson.loads(_meta_json(tagged))
    assert stored["subset"] == "1 of 1 streams, tags left out" and "tags" not in stored["format"]


async def test_ffprobe_runs_at_background_priority(tmp_path: Path, toolset: Toolset) -> None:
    """The quick jobs' tools leave the cores to an import too, not only the transcodes."""
    assert toolset.ffprobe is not None
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    probing = asyncio.create_task(probe(toolset.ffprobe, str(fifo)), name="ffprobe-on-a-fifo")
    writer = None
    try:
        async with asyncio.timeout(10):
            # Returns once ffprobe has opened the other end: it runs, waiting for the first bytes.
            writer = await asyncio.to_thread(os.open, fifo, os.O_WRONLY)
        [pid] = [pid for pid, name in children().items() if name == "ffprobe"]
        assert niceness(pid) == lowered(niceness(os.getpid()))
    finally:
        if writer is None:  # ffprobe never opened it: our own reader frees the waiting thread
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        else:
            os.close(writer)  # an empty input: ffprobe fails
        with pytest.raises(ToolFailed):
            async with asyncio.timeout(10):
                await probing
