"""The `live-photo` handler over a real SQLite file: rows as the import and the exiftool job leave
them (original name and folder, flat tags, capture time)."""

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest

from sidecar.jobs.handlers import live_photo as live_photo_module
from sidecar.jobs.handlers.exiftool import exiftool_handler
from sidecar.jobs.handlers.live_photo import live_photo
from sidecar.jobs.store import Queue
from sidecar.tools.exiftool import ExifToolPool
from tests.support.archive import LocationFixture, add_media_row
from tests.support.camera_files import make_iphone_still
from tests.support.jobs import ContextMaker
from tests.support.media import make_jpeg, make_video

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
    # The still's maker-note tag as exiftool ≥ 12.19 names it, and as earlier releases did.
    image = archived(
        tmp_path, db_path, location, "image", "/card/DCIM/IMG_0001.HEIC", tags={"MediaGroupUUID": "A-1"}
    )
    older = archived(
        tmp_path, db_path, location, "image", "/card/DCIM/IMG_0003.JPG", tags={"ContentIdentifier": "C-3"}
    )
    video = archived(
        tmp_path, db_path, location, "video", "/other/clip.MOV", tags={"ContentIdentifier": "A-1"}
    )
    older_video = archived(
        tmp_path, db_path, location, "video", "/card/DCIM/IMG_0003.MOV", tags={"ContentIdentifier": "C-3"}
    )
    other = archived(
        tmp_path, db_path, location, "video", "/card/DCIM/IMG_0002.MOV", tags={"ContentIdentifier": "B-2"}
    )

    result = await live_photo(make_context(Queue.LIVE_PHOTO, {"locid": location.locid}))

    assert result == {"locid": location.locid, "linkedPairs": 2}
    assert flags(db_path) == {
        image: LINKED_IMAGE,
        older: LINKED_IMAGE,
        video: LINKED_VIDEO,
        older_video: LINKED_VIDEO,
        other: UNTOUCHED,
    }


async def test_a_same_named_still_and_video_without_identifiers_stay_apart(
    tmp_path: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker
) -> None:
    """A 1999 Panasonic's photo and its voice memo: same folder, same name, same second. Not a
    Live Photo; the MOV stays visible. One identifier alone is not a pair either."""
    taken = "1999-08-07T06:05:04.000Z"
    still = archived(tmp_path, db_path, location, "image", "/c/P1000244.JPG", taken=taken)
    memo = archived(tmp_path, db_path, location, "video", "/c/P1000244.MOV", taken=taken)
    half = archived(
        tmp_path, db_path, location, "image", "/c/IMG_5.JPG", tags={"MediaGroupUUID": "X"}, taken=taken
    )
    other_half = archived(tmp_path, db_path, location, "video", "/c/IMG_5.MOV", taken=taken)

    result = await live_photo(make_context(Queue.LIVE_PHOTO, {"locid": location.locid}))

    assert result["linkedPairs"] == 0
    assert flags(db_path) == {still: UNTOUCHED, memo: UNTOUCHED, half: UNTOUCHED, other_half: UNTOUCHED}


async def test_real_files_pair_only_by_apples_identifier(
    tmp_path: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker
) -> None:
    """Through the real exiftool job: an iPhone's still (identifier in its Apple maker note) and
    video (QuickTime key) pair; a same-named JPEG and MOV without one do not."""
    uuid = "8B2B5A8E-1C2D-4E5F-9A0B-112233445566"
    files = {
        "image": [
            make_iphone_still(tmp_path / "a" / "IMG_0001.JPG", uuid),
            make_jpeg(tmp_path / "b" / "P1.JPG", 64, 48),
        ],
        "video": [
            make_video(tmp_path / "a" / "IMG_0001.MOV", 160, 120, seconds=0.2, content_identifier=uuid),
            make_video(tmp_path / "b" / "P1.MOV", 160, 120, seconds=0.2, seed=1),
        ],
    }
    digests: dict[Path, str] = {}
    pool = ExifToolPool(1)
    try:
        for media_type, paths in files.items():
            for path in paths:
                digests[path] = digest = add_media_row(db_path, media_type, path, location.locid)
                payload = {"hash": digest, "mediaType": media_type, "archivePath": str(path)}
                await exiftool_handler(pool)(make_context(Queue.EXIFTOOL, payload))
    finally:
        await pool.close()

    result = await live_photo(make_context(Queue.LIVE_PHOTO, {"locid": location.locid}))

    (iphone_still, still), (iphone_video, memo) = files["image"], files["video"]
    assert result["linkedPairs"] == 1
    assert flags(db_path) == {
        digests[iphone_still]: LINKED_IMAGE,
        digests[iphone_video]: LINKED_VIDEO,
        digests[still]: UNTOUCHED,
        digests[memo]: UNTOUCHED,
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
    pairs = []
    for n in range(5):
        tags = {"MediaGroupUUID": f"id-{n}"}
        image = archived(tmp_path, db_path, location, "image", f"/c/IMG_{n}.JPG", tags=tags)
        video = archived(
            tmp_path, db_path, location, "video", f"/c/IMG_{n}.MOV", tags={"ContentIdentifier": f"id-{n}"}
        )
        pairs.append((image, video))
    broken = archived(tmp_path, db_path, location, "image", "/c/odd.jpg")
    with closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        db.execute("UPDATE imgs SET meta_exiftool = '{not json' WHERE imghash = ?", (broken,))

    result = await live_photo(make_context(Queue.LIVE_PHOTO, {"locid": location.locid}))

    assert result["linkedPairs"] == 5
    linked = flags(db_path)
    assert all(linked[i] == LINKED_IMAGE and linked[v] == LINKED_VIDEO for i, v in pairs)
    assert linked[broken] == UNTOUCHED
