"""`exiftool`: read a file's tags with a long-lived exiftool, store them flat in `meta_exiftool`,
fill the typed columns the app reads (the app's own job wrote NULL into every one of them:
reference/original-app.md §8.2), and announce the typed fields with `asset:metadata-complete`."""

from collections.abc import Mapping
from typing import Any

import orjson

from sidecar.archive.media import MediaType
from sidecar.jobs.handlers import JobContext, JobHandler
from sidecar.tools.exif_tags import date_taken, displayed_size, first_int, gps, text
from sidecar.tools.exiftool import ExifToolPool


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
        width, height = displayed_size(tags)
        return {
            "width": width,
            "height": height,
            "dateTaken": date_taken(media_type, tags),
            "cameraMake": text(tags.get("Make")),
            "cameraModel": text(tags.get("Model")),
            "gps": gps(tags),
        }
    if media_type == "video":
        # The video's capture date is this job's alone (ffprobe owns the stream facts), so the
        # order the two jobs finish in never changes it.
        return {"dateTaken": date_taken(media_type, tags), "gps": gps(tags)}
    if media_type == "document":
        return {
            "author": text(tags.get("Author")) or text(tags.get("Creator")),
            "title": text(tags.get("Title")),
            "pageCount": first_int(tags, ("PageCount",)),
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
