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

from sidecar.archive.media import LIVE_IMAGE_EXTENSIONS
from sidecar.jobs.handlers import JobContext

LIVE_VIDEO_EXTENSIONS = frozenset({".mov", ".mp4"})
# An iPhone's Live Photo video starts about 1.5 s before the still; allow a little more.
MAX_CAPTURE_GAP_S = 3.0
# Images are read a page at a time: a location may hold 100 000 of them.
IMAGE_PAGE = 5000

# Apple's identifier from the stored flat tags, read by SQLite so the tags never cross over here
# (older exiftool releases called the maker-note tag MediaGroupUUID).
_IDENTIFIER = (
    "CASE WHEN json_valid(meta_exiftool) THEN coalesce(json_extract(meta_exiftool, '$.ContentIdentifier'),"
    " json_extract(meta_exiftool, '$.MediaGroupUUID')) END"
)
_VIDEOS = (
    f"SELECT vidhash, vidnamo, vidloco, {_IDENTIFIER}, meta_date_taken FROM vids"
    " WHERE locid = ? AND is_live_photo = 0 AND hidden = 0"
)
_IMAGES = (
    f"SELECT rowid, imghash, imgnamo, imgloco, {_IDENTIFIER}, meta_date_taken FROM imgs"
    " WHERE locid = ? AND is_live_photo = 0 AND hidden = 0 AND rowid > ? ORDER BY rowid LIMIT ?"
)
_LINK_IMAGE = "UPDATE imgs SET is_live_photo = 1 WHERE imghash = ?"
_LINK_VIDEO = (
    "UPDATE vids SET is_live_photo = 1, hidden = 1, hidden_reason = 'live_photo_video' WHERE vidhash = ?"
)


@dataclass(frozen=True, slots=True)
class Candidate:
    hash: str
    identifier: str | None
    folder_and_stem: tuple[str, str]  # where the original sat, base name case-folded
    taken: datetime | None

    @classmethod
    def of(cls, row: Any) -> "Candidate":
        digest, name, original, identifier, taken = row
        text = "" if identifier is None else str(identifier).strip()
        return cls(
            hash=digest,
            identifier=text or None,
            folder_and_stem=(os.path.dirname(original), os.path.splitext(name)[0].casefold()),
            taken=_parse_iso(taken),
        )


class Matcher:
    """Pairs images with the location's candidate videos, each file in at most one pair."""

    def __init__(self, videos: list[Candidate]) -> None:
        self._by_identifier = {v.identifier: v for v in videos if v.identifier}
        self._by_name = {v.folder_and_stem: v for v in videos}
        self._used: set[str] = set()
        self.pairs: list[tuple[str, str]] = []

    def offer(self, image: Candidate) -> None:
        video = self._by_identifier.get(image.identifier) if image.identifier else None
        if video is None:
            video = self._by_name.get(image.folder_and_stem)
            if video is None or (image.identifier and video.identifier) or not _close(image, video):
                return
        if video.hash not in self._used:
            self._used.add(video.hash)
            self.pairs.append((image.hash, video.hash))


async def live_photo(job: JobContext) -> dict[str, Any]:
    locid = job.payload["locid"]
    videos = [
        Candidate.of(row)
        for row in await job.db.fetch_all(_VIDEOS, (locid,))
        if _extension(row[1]) in LIVE_VIDEO_EXTENSIONS
    ]
    matcher = Matcher(videos)
    after = 0
    while videos and (page := await job.db.fetch_all(_IMAGES, (locid, after, IMAGE_PAGE))):
        after = page[-1][0]
        for row in page:
            if _extension(row[2]) in LIVE_IMAGE_EXTENSIONS:
                matcher.offer(Candidate.of(tuple(row)[1:]))
    if matcher.pairs:
        async with job.db.transaction() as conn:
            for image, video in matcher.pairs:
                await conn.execute(_LINK_IMAGE, (image,))
                await conn.execute(_LINK_VIDEO, (video,))
    return {"locid": locid, "linkedPairs": len(matcher.pairs)}


def _extension(name: str) -> str:
    return os.path.splitext(name)[1].lower()


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
