"""`gps-enrichment`: a location without coordinates takes them from its earliest geotagged image
(else video), as the later app's job worker did; coordinates already there are never replaced."""

import sqlite3
from contextlib import closing
from pathlib import Path

from sidecar.db.connection import Database
from sidecar.jobs.handlers.gps_enrichment import gps_enrichment
from sidecar.jobs.store import Queue
from tests.support.archive import LocationFixture, add_sublocation, rows
from tests.support.jobs import ContextMaker, RecordedEvents


def add_media(
    db_path: Path,
    table: str,
    digest: str,
    locid: str,
    gps: tuple[float, float] | None,
    taken: str | None,
    subid: str | None = None,
) -> None:
    prefix = table[:3]
    with closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        db.execute(
            f"INSERT INTO {table} ({prefix}hash, {prefix}nam, {prefix}namo, {prefix}loc, {prefix}loco,"
            f" locid, subid, {prefix}add, meta_gps_lat, meta_gps_lng, meta_date_taken)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, '2025-01-01T00:00:00.000Z', ?, ?, ?)",
            (
                digest,
                f"{digest}.jpg",
                "a.jpg",
                f"/a/{digest}.jpg",
                "/src/a.jpg",
                locid,
                subid,
                *(gps or (None, None)),
                taken,
            ),
        )


def location_gps(db_path: Path, locid: str) -> tuple[object, ...]:
    [row] = rows(db_path, "SELECT gps_lat, gps_lng, gps_source FROM locs WHERE locid = ?", (locid,))
    return row


async def test_the_earliest_geotagged_image_places_a_location_without_coordinates(
    db: Database, db_path: Path, location: LocationFixture, make_context: ContextMaker, events: RecordedEvents
) -> None:
    add_media(db_path, "vids", "b" * 16, location.locid, (10.0, 10.0), "2019-01-01T00:00:00.000Z")
    add_media(db_path, "imgs", "1" * 16, location.locid, (0.0, 0.0), "2018-01-01T00:00:00.000Z")  # no fix
    add_media(db_path, "imgs", "2" * 16, location.locid, (42.8864, -78.8784), "2020-06-01T12:00:00.000Z")
    add_media(db_path, "imgs", "3" * 16, location.locid, (40.7128, -74.0060), "2021-06-01T12:00:00.000Z")
    add_media(db_path, "imgs", "4" * 16, location.locid, None, "2017-01-01T00:00:00.000Z")

    result = await gps_enrichment(make_context(Queue.GPS_ENRICHMENT, {"locid": location.locid}))

    assert result["enriched"] is True
    assert location_gps(db_path, location.locid) == (42.8864, -78.8784, "media_gps")
    assert events.of("location:gps-enriched") == [
        {"locid": location.locid, "lat": 42.8864, "lng": -78.8784, "source": "image"}
    ]


async def test_a_video_places_it_when_no_image_has_gps(
    db: Database, db_path: Path, location: LocationFixture, make_context: ContextMaker, events: RecordedEvents
) -> None:
    add_media(db_path, "vids", "b" * 16, location.locid, (51.5, -0.12), None)
    await gps_enrichment(make_context(Queue.GPS_ENRICHMENT, {"locid": location.locid}))
    assert location_gps(db_path, location.locid) == (51.5, -0.12, "media_gps")
    assert events.of("location:gps-enriched")[0]["source"] == "video"


async def test_coordinates_the_user_set_are_never_replaced(
    db: Database, db_path: Path, location: LocationFixture, make_context: ContextMaker, events: RecordedEvents
) -> None:
    with closing(sqlite3.connect(db_path, isolation_level=None)) as conn:
        conn.execute(
            "UPDATE locs SET gps_lat = 1.5, gps_lng = 2.5, gps_source = 'geocoded' WHERE locid = ?",
            (location.locid,),
        )
    add_media(db_path, "imgs", "2" * 16, location.locid, (42.8864, -78.8784), None)
    result = await gps_enrichment(make_context(Queue.GPS_ENRICHMENT, {"locid": location.locid}))
    assert result["enriched"] is False
    assert location_gps(db_path, location.locid) == (1.5, 2.5, "geocoded")
    assert events.of("location:gps-enriched") == []


async def test_nothing_happens_without_geotagged_media(
    db: Database, db_path: Path, location: LocationFixture, make_context: ContextMaker, events: RecordedEvents
) -> None:
    add_media(db_path, "imgs", "4" * 16, location.locid, None, None)
    result = await gps_enrichment(make_context(Queue.GPS_ENRICHMENT, {"locid": location.locid}))
    assert result == {"enriched": False, "reason": "no media with GPS"}
    assert location_gps(db_path, location.locid) == (None, None, None)


async def test_an_import_into_a_sub_location_places_the_sub_location_from_its_own_media(
    db: Database, db_path: Path, location: LocationFixture, make_context: ContextMaker, events: RecordedEvents
) -> None:
    subid = add_sublocation(db_path, location.locid, "2c26b46b68ffc68f")
    add_media(db_path, "imgs", "2" * 16, location.locid, (42.0, -78.0), None)  # the host's, not the sub's
    add_media(db_path, "imgs", "3" * 16, location.locid, (43.0, -79.0), None, subid=subid)
    await gps_enrichment(make_context(Queue.GPS_ENRICHMENT, {"locid": location.locid, "subid": subid}))
    assert rows(db_path, "SELECT gps_lat, gps_lng, gps_source FROM slocs") == [(43.0, -79.0, "media_gps")]
    assert location_gps(db_path, location.locid) == (None, None, None)
    assert events.of("location:gps-enriched") == []  # the app listens for host locations only
