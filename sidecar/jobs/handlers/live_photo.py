"""`live-photo`: link the still and the video of each Live Photo of a location, and hide the video
(the app shows the pair as one photo).

A pair is the still and the video that carry the same Apple `ContentIdentifier`: an iPhone writes
it into the still's maker note and the video's QuickTime keys, and the exiftool job stores both
flat in `meta_exiftool`. Nothing else pairs: a same-named JPEG and MOV from the same folder,
taken together, is as often a camera's photo and its voice memo (a Panasonic writes
P1000244.JPG and P1000244.MOV), and hiding that MOV loses it. The app's own job matched on the
identifier alone too (au-archive@38845de packages/desktop/electron/services/job-worker-service.ts
`detectLivePhotos`); its later name-only matching (au-archive HEAD
packages/desktop/electron/main/ipc-handlers/media-import.ts `detectLivePhotosForLocation`) is
what hid such memos. The queue runs this only once no metadata job is waiting (`WAITS_FOR_IDLE`
in the job store), so every file of the import has its tags.
"""

from typing import Any

from sidecar.jobs.handlers import JobContext

# Images are read a page at a time: a location may hold 100 000 of them.
IMAGE_PAGE = 5000

# The identifiers, read by SQLite so the tags never cross over here. On the still it is maker-note
# tag 0x0011, which exiftool ≥ 12.19 names MediaGroupUUID and earlier releases ContentIdentifier
# (exiftool's Apple.pm); on the video it is the QuickTime key ContentIdentifier.
_STILL_IDENTIFIER = (
    "CASE WHEN json_valid(meta_exiftool) THEN nullif(trim(coalesce("
    "json_extract(meta_exiftool, '$.MediaGroupUUID'), json_extract(meta_exiftool, '$.ContentIdentifier'))"
    "), '') END"
)
_VIDEO_IDENTIFIER = (
    "CASE WHEN json_valid(meta_exiftool) THEN"
    " nullif(trim(json_extract(meta_exiftool, '$.ContentIdentifier')), '') END"
)
_VIDEOS = (
    f"SELECT vidhash, {_VIDEO_IDENTIFIER} AS identifier FROM vids"
    " WHERE locid = ? AND is_live_photo = 0 AND hidden = 0 AND identifier IS NOT NULL ORDER BY rowid"
)
_IMAGES = (
    f"SELECT rowid, imghash, {_STILL_IDENTIFIER} AS identifier FROM imgs"
    " WHERE locid = ? AND is_live_photo = 0 AND hidden = 0 AND rowid > ? ORDER BY rowid LIMIT ?"
)
_LINK_IMAGE = "UPDATE imgs SET is_live_photo = 1 WHERE imghash = ?"
_LINK_VIDEO = (
    "UPDATE vids SET is_live_photo = 1, hidden = 1, hidden_reason = 'live_photo_video' WHERE vidhash = ?"
)


async def live_photo(job: JobContext) -> dict[str, Any]:
    locid = job.payload["locid"]
    videos: dict[str, str] = {}  # identifier → the first such video; each file in at most one pair
    for vidhash, identifier in await job.db.fetch_all(_VIDEOS, (locid,)):
        videos.setdefault(str(identifier), vidhash)
    pairs: list[tuple[str, str]] = []
    after = 0
    while videos and (page := await job.db.fetch_all(_IMAGES, (locid, after, IMAGE_PAGE))):
        after = page[-1][0]
        for _, imghash, identifier in page:
            video = videos.pop(str(identifier), None) if identifier is not None else None
            if video is not None:
                pairs.append((imghash, video))
    if pairs:
        async with job.db.transaction() as conn:
            for image, video in pairs:
                await conn.execute(_LINK_IMAGE, (image,))
                await conn.execute(_LINK_VIDEO, (video,))
    return {"locid": locid, "linkedPairs": len(pairs)}
