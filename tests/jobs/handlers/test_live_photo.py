"""The `live-photo` handler over a real SQLite file: rows as the import and the exiftool job leave
them (original name and folder, flat tags, capture time)."""

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest

from sidecar.jobs.handlers import live_photo as live_photo_module
from sidecar.jobs.handlers.live_photo import live_photo
from sidecar.jobs.store import Queue
from tests.support.archive import LocationFixture, add_media_row
from tests.support.jobs import ContextMaker

TABLE = {"image": ("imgs", "img"), "video": ("vids", "vid")}


def archived(
    tmp_path: Path,
    db_path: Path,
    location: LocationFixture,
    media_type: str,
    original: str,
    *,
    tags: dict[str, Any] | None = None,
    taken: str | None = None,
) -> str:
    """A row for a file imported from `original`, with what the exiftool job stored."""
    stored = tmp_path / "archive" / f"{len(list(tmp_path.glob('archive/*')))}{Path(original).suffix}"
    stored.parent.mkdir(exist_ok=True)
    stored.write_bytes(original.encode())  # distinct content per original: distinct hashes
    digest = add_media_row(db_path, media_type, stored, location.locid)
    table, prefix = TABLE[media_type]
    with closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        db.execute(
            f"UPDATE {table} SET {prefix}namo = ?, {prefix}loco = ?, meta_exiftool = ?, meta_date_taken = ?"
            f" WHERE {prefix}hash = ?",
            (Path(original).name, original, orjson.dumps(tags or {}).decode(), taken, digest),
        )
    return digest


def flags(db_path: Path) -> dict[str, tuple[Any, ...]]:
    with closing(sqlite3.connect(db_path)) as db:
        images = db.execute("SELECT imghash, is_live_photo, hidden, hidden_reason FROM imgs").fetchall()
        videos = db.execute("SELECT vidhash, is_live_photo, hidden, hidden_reason FROM vids").fetchall()
    return {row[0]: tuple(row[1:]) for row in images + videos}


LINKED_IMAGE = (1, 0, None)
LINKED_VIDEO = (1, 1, "live_photo_video")
UNTOUCHED = (0, 0, None)


async def test_pairs_by_content_identifier_whatever_the_names(
    tmp_path: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker
) -> None:
    image = archived(
        tmp_path, db_path, location, "image", "/card/DCIM/IMG_0001.HEIC", tags={"ContentIdentifier": "A-1"}
    )
    video = archived(
        tmp_path, db_path, location, "video", "/other/clip.MOV", tags={"ContentIdentifier": "A-1"}
    )
    other = archived(
        tmp_path, db_path, location, "video", "/card/DCIM/IMG_0002.MOV", tags={"ContentIdentifier": "B-2"}
    )

    result = await live_photo(make_context(Queue.LIVE_PHOTO, {"locid": location.locid}))

    assert result == {"locid": location.locid, "linkedPairs": 1}
    assert flags(db_path) == {image: LINKED_IMAGE, video: LINKED_VIDEO, other: UNTOUCHED}


async def test_without_identifiers_pairs_same_folder_same_name_taken_together(
    tmp_path: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker
) -> None:
    still = archived(tmp_path, db_path, location, "image", "/c/IMG_7.JPG", taken="2024-05-06T07:08:09.000Z")
    motion = archived(tmp_path, db_path, location, "video", "/c/img_7.mov", taken="2024-05-06T07:08:07.500Z")
    # Same name, another folder; same name, taken an hour apart; same name, no capture time.
    elsewhere = archived(
        tmp_path, db_path, location, "video", "/d/IMG_7.MOV", taken="2024-05-06T07:08:09.000Z"
    )
    later_still = archived(
        tmp_path, db_path, location, "image", "/e/IMG_8.JPG", taken="2024-05-06T08:00:00.000Z"
    )
    later_motion = archived(
        tmp_path, db_path, location, "video", "/e/IMG_8.MOV", taken="2024-05-06T07:00:00.000Z"
    )
    undated_still = archived(tmp_path, db_path, location, "image", "/f/IMG_9.JPG")
    undated_motion = archived(tmp_path, db_path, location, "video", "/f/IMG_9.MOV")

    await live_photo(make_context(Queue.LIVE_PHOTO, {"locid": location.locid}))

    assert flags(db_path) == {
        still: LINKED_IMAGE,
        motion: LINKED_VIDEO,
        elsewhere: UNTOUCHED,
        later_still: UNTOUCHED,
        later_motion: UNTOUCHED,
        undated_still: UNTOUCHED,
        undated_motion: UNTOUCHED,
    }


async def test_different_identifiers_are_never_paired_by_name(
    tmp_path: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker
) -> None:
    taken = "2024-05-06T07:08:09.000Z"
    image = archived(
        tmp_path, db_path, location, "image", "/c/IMG_1.JPG", tags={"ContentIdentifier": "X"}, taken=taken
    )
    video = archived(
        tmp_path, db_path, location, "video", "/c/IMG_1.MOV", tags={"ContentIdentifier": "Y"}, taken=taken
    )

    await live_photo(make_context(Queue.LIVE_PHOTO, {"locid": location.locid}))

    assert flags(db_path) == {image: UNTOUCHED, video: UNTOUCHED}


async def test_a_rerun_links_nothing_twice_and_only_this_location(
    tmp_path: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker
) -> None:
    archived(tmp_path, db_path, location, "image", "/c/IMG_1.JPG", tags={"ContentIdentifier": "X"})
    archived(tmp_path, db_path, location, "video", "/c/IMG_1.MOV", tags={"ContentIdentifier": "X"})
    job = make_context(Queue.LIVE_PHOTO, {"locid": location.locid})
    assert (await live_photo(job))["linkedPairs"] == 1
    assert (await live_photo(job))["linkedPairs"] == 0
    elsewhere = make_context(Queue.LIVE_PHOTO, {"locid": "another-location"})
    assert (await live_photo(elsewhere))["linkedPairs"] == 0


async def test_images_are_read_a_page_at_a_time_and_bad_stored_tags_are_ignored(
    tmp_path: Path,
    db_path: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live_photo_module, "IMAGE_PAGE", 2)
    taken = "2024-05-06T07:08:09.000Z"
    pairs = []
    for n in range(5):
        image = archived(tmp_path, db_path, location, "image", f"/c/IMG_{n}.JPG", taken=taken)
        video = archived(tmp_path, db_path, location, "video", f"/c/IMG_{n}.MOV", taken=taken)
        pairs.append((image, video))
    broken = archived(tmp_path, db_path, location, "image", "/c/odd.jpg")
    with closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        db.execute("UPDATE imgs SET meta_exiftool = '{not json' WHERE imghash = ?", (broken,))

    result = await live_photo(make_context(Queue.LIVE_PHOTO, {"locid": location.locid}))

    assert result["linkedPairs"] == 5
    linked = flags(db_path)
    assert all(linked[i] == LINKED_IMAGE and linked[v] == LINKED_VIDEO for i, v in pairs)
    assert linked[broken] == UNTOUCHED
