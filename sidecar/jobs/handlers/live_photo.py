"""`live-photo`: link the still and the video of each Live Photo of a location, and hide the video
(the app shows the pair as one photo).

A pair is matched by Apple's `ContentIdentifier`, which an iPhone writes into both files and the
exiftool job stores flat in `meta_exiftool` (the app looked for it where it never is: §8.2). Files
without it pair when they sat in the same source folder with the same base name and were taken
within a few seconds of each other. The queue runs this only once no metadata job is waiting
(`WAITS_FOR_IDLE` in the job store), so every file of the import has its metadata.
"""

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from sidecar.jobs.handlers import JobContext
from sidecar.pipeline.media import LIVE_IMAGE_EXTENSIONS

LIVE_VIDEO_EXTENSIONS = frozenset({".mov", ".mp4"})
# An iPhone's Live Photo video starts about 1.5 s before the still; allow a little more.
MAX_CAPTURE_GAP_S = 3.0
# Apple's maker-note tag was called MediaGroupUUID by older exiftool releases.
_IDENTIFIER_TAGS = ("ContentIdentifier", "MediaGroupUUID")

_CANDIDATES = {
    "imgs": "SELECT imghash, imgnamo, imgloco, meta_exiftool, meta_date_taken FROM imgs"
    " WHERE locid = ? AND is_live_photo = 0 AND hidden = 0",
    "vids": "SELECT vidhash, vidnamo, vidloco, meta_exiftool, meta_date_taken FROM vids"
    " WHERE locid = ? AND is_live_photo = 0 AND hidden = 0",
}
_LINK_IMAGE = "UPDATE imgs SET is_live_photo = 1 WHERE imghash = ?"
_LINK_VIDEO = (
    "UPDATE vids SET is_live_photo = 1, hidden = 1, hidden_reason = 'live_photo_video' WHERE vidhash = ?"
)


_Row = tuple[str, str, str, str | None, str | None]  # hash, original name, original path, tags, taken


@dataclass(frozen=True, slots=True)
class Candidate:
    hash: str
    identifier: str | None
    folder_and_stem: tuple[str, str]  # where the original sat, base name case-folded
    taken: datetime | None


async def live_photo(job: JobContext) -> dict[str, Any]:
    locid = job.payload["locid"]
    images = [c for c in await _candidates(job, "imgs", locid) if _extension(c) in LIVE_IMAGE_EXTENSIONS]
    videos = [c for c in await _candidates(job, "vids", locid) if _extension(c) in LIVE_VIDEO_EXTENSIONS]
    pairs = match(images, videos)
    if pairs:
        async with job.db.transaction() as conn:
            for image, video in pairs:
                await conn.execute(_LINK_IMAGE, (image,))
                await conn.execute(_LINK_VIDEO, (video,))
    return {"locid": locid, "linkedPairs": len(pairs)}


def match(images: list[_Row], videos: list[_Row]) -> list[tuple[str, str]]:
    """(image hash, video hash) pairs; each file in at most one pair."""
    image_candidates = [_candidate(row) for row in images]
    video_candidates = [_candidate(row) for row in videos]
    by_identifier = {v.identifier: v for v in video_candidates if v.identifier}
    by_name = {v.folder_and_stem: v for v in video_candidates}
    used: set[str] = set()
    pairs: list[tuple[str, str]] = []
    for image in image_candidates:
        video = by_identifier.get(image.identifier) if image.identifier else None
        if video is None:
            video = by_name.get(image.folder_and_stem)
            if video is None or (image.identifier and video.identifier) or not _close(image, video):
                continue
        if video.hash in used:
            continue
        used.add(video.hash)
        pairs.append((image.hash, video.hash))
    return pairs


async def _candidates(job: JobContext, table: str, locid: str) -> list[_Row]:
    rows = await job.db.fetch_all(_CANDIDATES[table], (locid,))
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def _extension(row: _Row) -> str:
    return os.path.splitext(row[1])[1].lower()


def _candidate(row: _Row) -> Candidate:
    digest, name, original, tags, taken = row
    return Candidate(
        hash=digest,
        identifier=_identifier(tags),
        folder_and_stem=(os.path.dirname(original), os.path.splitext(name)[0].casefold()),
        taken=_parse_iso(taken),
    )


def _identifier(stored: str | None) -> str | None:
    if not stored:
        return None
    try:
        tags = orjson.loads(stored)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(tags, dict):
        return None
    for name in _IDENTIFIER_TAGS:
        value = tags.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _close(image: Candidate, video: Candidate) -> bool:
    """Both capture times known and within MAX_CAPTURE_GAP_S: a name alone is not enough (a camera
    reuses IMG_0001 after 9999 shots)."""
    if image.taken is None or video.taken is None:
        return False
    return abs((image.taken - video.taken).total_seconds()) <= MAX_CAPTURE_GAP_S
