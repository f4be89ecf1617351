"""`exiftool`: read a file's tags with a long-lived exiftool, store them flat in `meta_exiftool`,
fill the typed columns the app reads (the app's own job wrote NULL into every one of them:
reference/original-app.md §8.2), and announce the typed fields with `asset:metadata-complete`."""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson

from sidecar.archive.media import MediaType
from sidecar.jobs.handlers import JobContext, JobHandler
from sidecar.timestamps import iso
from sidecar.tools.exiftool import ExifToolPool

# The first tag present wins.
_DATE_TAGS = (
    "DateTimeOriginal",
    "SubSecDateTimeOriginal",
    "CreateDate",
    "MediaCreateDate",
    "TrackCreateDate",
)
_WIDTH_TAGS = ("ImageWidth", "ExifImageWidth")
_HEIGHT_TAGS = ("ImageHeight", "ExifImageHeight")


def exiftool_handler(pool: ExifToolPool) -> JobHandler:
    async def exiftool(job: JobContext) -> dict[str, Any]:
        media_type = job.payload["mediaType"]
        digest = job.payload["hash"]
        tags = await pool.read_tags(job.tools.exiftool, job.payload["archivePath"])
        typed = typed_fields(media_type, tags)
        async with job.db.transaction() as conn:
            await conn.execute(*_update(media_type, digest, tags, typed))
        job.events.metadata_complete(digest, MediaType(media_type), typed)
        return {"metadata": typed, "tags": len(tags)}

    return exiftool


def typed_fields(media_type: str, tags: Mapping[str, Any]) -> dict[str, Any]:
    """The fields the app's ExifTool service exposes (its summary object without `rawExif`)."""
    if media_type == "image":
        return {
            "width": _first_int(tags, _WIDTH_TAGS),
            "height": _first_int(tags, _HEIGHT_TAGS),
            "dateTaken": date_taken(tags),
            "cameraMake": _text(tags.get("Make")),
            "cameraModel": _text(tags.get("Model")),
            "gps": gps(tags),
        }
    if media_type == "video":
        return {"dateTaken": date_taken(tags), "gps": gps(tags)}
    if media_type == "document":
        return {
            "author": _text(tags.get("Author")) or _text(tags.get("Creator")),
            "title": _text(tags.get("Title")),
            "pageCount": _first_int(tags, ("PageCount",)),
        }
    return {}


def _update(
    media_type: str, digest: str, tags: Mapping[str, Any], typed: Mapping[str, Any]
) -> tuple[str, tuple[Any, ...]]:
    stored = orjson.dumps(tags).decode()
    position = typed.get("gps") or {}
    if media_type == "image":
        return (
            "UPDATE imgs SET meta_exiftool = ?, meta_width = ?, meta_height = ?, meta_date_taken = ?,"
            " meta_camera_make = ?, meta_camera_model = ?, meta_gps_lat = ?, meta_gps_lng = ?"
            " WHERE imghash = ?",
            (
                stored,
                typed["width"],
                typed["height"],
                typed["dateTaken"],
                typed["cameraMake"],
                typed["cameraModel"],
                position.get("lat"),
                position.get("lng"),
                digest,
            ),
        )
    if media_type == "video":
        return (
            "UPDATE vids SET meta_exiftool = ?, meta_date_taken = ?, meta_gps_lat = ?, meta_gps_lng = ?"
            " WHERE vidhash = ?",
            (stored, typed["dateTaken"], position.get("lat"), position.get("lng"), digest),
        )
    if media_type == "document":
        return (
            "UPDATE docs SET meta_exiftool = ?, meta_author = ?, meta_title = ?, meta_page_count = ?"
            " WHERE dochash = ?",
            (stored, typed["author"], typed["title"], typed["pageCount"], digest),
        )
    if media_type == "map":
        return "UPDATE maps SET meta_exiftool = ? WHERE maphash = ?", (stored, digest)
    raise ValueError(f"no metadata table for media type {media_type!r}")


def date_taken(tags: Mapping[str, Any]) -> str | None:
    """The capture time in the app's ISO format. A zone written with the time (or EXIF's
    `OffsetTimeOriginal`) is honoured; a time without one is kept as the camera's wall clock, stored
    as if UTC (what exiftool-vendored's toISOString gave the app); QuickTime dates are UTC by spec."""
    for tag in _DATE_TAGS:
        parsed = parse_exif_date(
            tags.get(tag), tags.get("OffsetTimeOriginal") if tag == "DateTimeOriginal" else None
        )
        if parsed is not None:
            return iso(parsed)
    return None


def parse_exif_date(value: Any, offset: Any = None) -> datetime | None:
    """`2024:05:06 07:08:09[.123][+02:00|Z]` → an aware UTC datetime; None for anything else
    (including the `0000:00:00 00:00:00` cameras write when their clock was never set)."""
    if not isinstance(value, str) or len(value) < 19:
        return None
    try:
        moment = datetime.strptime(value[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    rest = value[19:]
    if rest.startswith("."):
        digits = rest[1:].split("+")[0].split("-")[0].rstrip("Z")
        if digits.isdigit():
            moment = moment.replace(microsecond=int((digits + "000000")[:6]))
        rest = rest[1 + len(digits) :]
    zone = _zone(rest) or _zone(offset if isinstance(offset, str) else "")
    return moment.replace(tzinfo=zone or UTC).astimezone(UTC)


def _zone(text: str) -> timezone | None:
    text = text.strip()
    if text == "Z":
        return UTC
    if len(text) == 6 and text[0] in "+-" and text[3] == ":" and (text[1:3] + text[4:]).isdigit():
        minutes = int(text[1:3]) * 60 + int(text[4:])
        return timezone(timedelta(minutes=minutes if text[0] == "+" else -minutes))
    return None


def gps(tags: Mapping[str, Any]) -> dict[str, float | None] | None:
    """Signed decimal degrees (`-n` makes exiftool apply the N/S and E/W references)."""
    lat, lng = _number(tags.get("GPSLatitude")), _number(tags.get("GPSLongitude"))
    altitude = _number(tags.get("GPSAltitude"))
    if (lat is None or lng is None) and isinstance(tags.get("GPSCoordinates"), str):
        # QuickTime keeps "lat lng [alt]" in one tag.
        parts = [_number(p) for p in tags["GPSCoordinates"].split()]
        if len(parts) >= 2:
            lat, lng = parts[0], parts[1]
            altitude = parts[2] if len(parts) > 2 else altitude
    if lat is None or lng is None or not (-90 <= lat <= 90 and -180 <= lng <= 180):
        return None
    return {"lat": lat, "lng": lng, "altitude": altitude}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _first_int(tags: Mapping[str, Any], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = _number(tags.get(name))
        if value is not None and value >= 0:
            return int(value)
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None
