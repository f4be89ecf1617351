"""One job owns each column of a video's row: the exiftool and ffprobe jobs, run in either order on
a MOV dated as an iPhone dates one, leave the same row."""

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from sidecar.jobs.handlers.exiftool import exiftool_handler
from sidecar.jobs.handlers.ffprobe import ffprobe
from sidecar.jobs.store import Queue
from sidecar.tools.exiftool import ExifToolPool
from tests.support.archive import LocationFixture, add_media_row
from tests.support.camera_files import make_iphone_dated_mov
from tests.support.jobs import ContextMaker

COLUMNS = "meta_date_taken, meta_width, meta_height, meta_duration, meta_fps, meta_codec"


@pytest.mark.parametrize("order", [("exiftool", "ffprobe"), ("ffprobe", "exiftool")])
async def test_a_videos_date_does_not_depend_on_which_job_ends_last(
    tmp_path: Path,
    db_path: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    order: tuple[str, str],
) -> None:
    # Recording started 07:08:07.250 at +02:00; the movie header holds its end (05:08:19 UTC),
    # the track headers yet another time: only the first is when the video was taken.
    video = make_iphone_dated_mov(
        tmp_path / "IMG_0001.MOV",
        creation_date="2024:05:06 07:08:07.250+02:00",
        create_date="2024:05:06 07:08:19+02:00",
        container="2024-05-06T05:08:30Z",
    )
    digest = add_media_row(db_path, "video", video, location.locid)
    payload: dict[str, Any] = {"hash": digest, "mediaType": "video", "archivePath": str(video)}
    pool = ExifToolPool(1)
    try:
        for name in order:
            if name == "exiftool":
                await exiftool_handler(pool)(make_context(Queue.EXIFTOOL, payload))
            else:
                await ffprobe(make_context(Queue.FFPROBE, payload))
    finally:
        await pool.close()

    with closing(sqlite3.connect(db_path)) as db:
        row = db.execute(f"SELECT {COLUMNS} FROM vids WHERE vidhash = ?", (digest,)).fetchone()
    assert row[0] == "2024-05-06T05:08:07.250Z"
    assert tuple(row[1:3]) == (320, 240) and row[4] == 25.0 and row[5] == "h264"
