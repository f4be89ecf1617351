"""`ffprobe`: a video's probe into `vids.meta_ffmpeg` and its typed columns (duration, size as
displayed, codec, fps), in one short transaction. The capture date is the exiftool job's column,
never written here, so the order the two jobs end in cannot change it. Also finds the archived
video a video job is about (shared with `video-proxy`)."""

import asyncio
import os
import re
from dataclasses import dataclass
from typing import Any

import orjson

from sidecar.errors import PermanentFailure
from sidecar.jobs.handlers import JobContext
from sidecar.tools.ffprobe import probe, video_facts
from sidecar.tools.process import require

# A probe larger than this (hundreds of streams, huge tags) is stored as a subset, see _meta_json.
MAX_META_BYTES = 256 * 1024
_HASH = re.compile(r"[0-9a-f]{16}")

_UPDATE_VIDEO = """
UPDATE vids SET meta_ffmpeg = ?, meta_duration = ?, meta_width = ?, meta_height = ?, meta_codec = ?,
  meta_fps = ?
WHERE vidhash = ?"""


class BadPayload(PermanentFailure):
    """The job's payload does not name an archived video; another try cannot fix it."""


@dataclass(frozen=True, slots=True)
class ArchivedVideo:
    hash: str
    path: str  # absolute


async def archived_video(job: JobContext) -> ArchivedVideo | None:
    """The video of a job's payload as its `vids` row has it; None when the row is gone (the
    video was deleted since the import). Raises FileNotFoundError (retryable: a volume may come
    back) when the row's file is not there."""
    vidhash = job.payload.get("hash")
    if not isinstance(vidhash, str) or not _HASH.fullmatch(vidhash):
        # The hash becomes part of a file name (`.<hash>.proxy.mp4`): nothing else may pass.
        raise BadPayload(f"payload hash {vidhash!r} is not 16 lowercase hex digits")
    row = await job.db.fetch_one("SELECT vidloc FROM vids WHERE vidhash = ?", (vidhash,))
    if row is None:
        return None
    path = await asyncio.to_thread(_existing_file, row["vidloc"] or job.payload.get("archivePath") or "")
    return ArchivedVideo(vidhash, path)


def _existing_file(path: str) -> str:
    absolute = os.path.abspath(path)
    if not os.path.isfile(absolute):
        raise FileNotFoundError(f"archived video not found: {absolute}")
    return absolute


async def ffprobe(job: JobContext) -> dict[str, Any]:
    tool = require(job.tools.ffprobe, "ffprobe")
    video = await archived_video(job)
    if video is None:
        return {"hash": job.payload["hash"], "skipped": "the video is no longer in the archive"}
    data = await probe(tool, video.path)
    facts = video_facts(data, video.path)
    width, height = facts.display_pixels
    async with job.db.transaction() as conn:
        await conn.execute(
            _UPDATE_VIDEO,
            (
                _meta_json(data),
                facts.duration,
                width,
                height,
                facts.codec,
                facts.fps,
                video.hash,
            ),
        )
    return {
        "hash": video.hash,
        "duration": facts.duration,
        "width": width,
        "height": height,
        "rotation": facts.rotation,
        "codec": facts.codec,
        "fps": facts.fps,
    }


def _meta_json(data: dict[str, Any]) -> str:
    """The whole probe as JSON; if that exceeds MAX_META_BYTES, the format and the first video
    and audio stream (marked `"subset"`), then without their tags if still too large."""
    encoded = orjson.dumps(data)
    if len(encoded) <= MAX_META_BYTES:
        return encoded.decode()
    streams = [s for s in data.get("streams") or () if isinstance(s, dict)]
    kept = [
        stream
        for kind in ("video", "audio")
        for stream in [next((s for s in streams if s.get("codec_type") == kind), None)]
        if stream is not None
    ]
    subset: dict[str, Any] = {
        "format": data.get("format"),
        "streams": kept,
        "subset": f"{len(kept)} of {len(streams)} streams",
    }
    encoded = orjson.dumps(subset)
    if len(encoded) > MAX_META_BYTES:
        subset["format"] = _without_tags(data.get("format"))
        subset["streams"] = [_without_tags(s) for s in kept]
        subset["subset"] += ", tags left out"
        encoded = orjson.dumps(subset)
    return encoded.decode()


def _without_tags(value: Any) -> Any:
    return {k: v for k, v in value.items() if k != "tags"} if isinstance(value, dict) else value
