"""`video-proxy`: a small H.264/AAC MP4 for playback in the app, next to the original as
`.<hash>.proxy.mp4` (hidden, so the location's bag leaves it out), with `video_proxies` upserted,
`jobs:progress` while ffmpeg transcodes and `asset:proxy-ready` at the end.

The proxy is written under a temp name, fsync'd and renamed; an existing proxy is reused only when
its `video_proxies` row records this path, version and the file's exact size (the app accepted
truncated outputs of crashed runs). A failed transcode fails the job.
"""

import asyncio
import contextlib
import os
from typing import Any

from sidecar import fs
from sidecar.errors import PermanentFailure
from sidecar.jobs.handlers import JobContext
from sidecar.jobs.handlers.ffprobe import archived_video
from sidecar.timestamps import now_iso
from sidecar.tools.ffprobe import VideoFacts, probe, video_facts
from sidecar.tools.process import require, run_tool

PROXY_VERSION = 1
LONG_SIDE = 720
MAX_FPS = 60  # slow-motion footage plays back as a normal-speed proxy, not 240 frames a second
# ffmpeg writes a progress block this often (seconds); the notification is latest-wins anyway.
PROGRESS_PERIOD_S = 0.5
# Tone mapping of PQ/HLG to SDR BT.709 (ecosystem-notes §8.3): zscale to linear light, Hable.
_HDR_PRIMARIES = frozenset({"bt2020", "bt709", "smpte432", "smpte431"})
_HDR_MATRICES = frozenset({"bt2020nc", "bt2020c", "bt709"})

_SELECT_PROXY = """
SELECT proxy_path, file_size_bytes, proxy_version, proxy_width, proxy_height
FROM video_proxies WHERE vidhash = ?"""
_UPSERT_PROXY = """
INSERT INTO video_proxies (vidhash, proxy_path, generated_at, last_accessed, file_size_bytes,
  original_width, original_height, proxy_width, proxy_height, proxy_version)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (vidhash) DO UPDATE SET proxy_path = excluded.proxy_path,
  generated_at = excluded.generated_at, last_accessed = excluded.last_accessed,
  file_size_bytes = excluded.file_size_bytes, original_width = excluded.original_width,
  original_height = excluded.original_height, proxy_width = excluded.proxy_width,
  proxy_height = excluded.proxy_height, proxy_version = excluded.proxy_version"""


class ProxyUnusable(PermanentFailure):
    """ffmpeg exited 0 but its output has no video stream of the size asked for (the same input
    would give the same output)."""


def proxy_path(original: str, vidhash: str) -> str:
    return os.path.join(os.path.dirname(original), f".{vidhash}.proxy.mp4")


async def video_proxy(job: JobContext) -> dict[str, Any]:
    ffmpeg = require(job.tools.ffmpeg, "ffmpeg")
    ffprobe = require(job.tools.ffprobe, "ffprobe")
    video = await archived_video(job)
    if video is None:
        return {"hash": job.payload["hash"], "skipped": "the video is no longer in the archive"}
    final = proxy_path(video.path, video.hash)
    existing = await job.db.fetch_one(_SELECT_PROXY, (video.hash,))
    if existing is not None and await asyncio.to_thread(_intact, dict(existing), final):
        _ready(job, video.hash, final)
        return {
            "hash": video.hash,
            "proxyPath": final,
            "width": existing["proxy_width"],
            "height": existing["proxy_height"],
            "fileSizeBytes": existing["file_size_bytes"],
            "reused": True,
        }

    source = video_facts(await probe(ffprobe, video.path), video.path)
    width, height = proxy_size(source)
    folder = os.path.dirname(video.path)
    # A killed run's output (one job per hash runs at a time).
    await asyncio.to_thread(fs.sweep_temps, [folder], os.path.basename(final))
    temp = fs.temp_path(final)
    try:
        await run_tool(
            ffmpeg,
            proxy_command(video.path, temp, source, width, height),
            on_stdout_line=TranscodeProgress(job, source.duration),
        )
        made = video_facts(await probe(ffprobe, temp), temp)
        if (made.width, made.height) != (width, height):
            raise ProxyUnusable(f"ffmpeg made {made.width}×{made.height}, not {width}×{height}: {temp}")
        size = await asyncio.to_thread(_commit, temp, final)
    finally:
        # Failed, cancelled (run_tool has killed ffmpeg by now) or already renamed: no temp stays.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)

    now = now_iso()
    async with job.db.transaction() as conn:
        await conn.execute(
            _UPSERT_PROXY,
            (video.hash, final, now, now, size, source.width, source.height, width, height, PROXY_VERSION),
        )
    job.progress(100, "done")
    _ready(job, video.hash, final)
    return {
        "hash": video.hash,
        "proxyPath": final,
        "width": width,
        "height": height,
        "fileSizeBytes": size,
        "reused": False,
    }


def proxy_size(source: VideoFacts) -> tuple[int, int]:
    """The proxy's frame as displayed: long side at most LONG_SIDE, never upscaled, square pixels,
    both sides even (H.264 4:2:0), rounded down."""
    shown_w, shown_h = source.display_size
    scale = min(1.0, LONG_SIDE / max(shown_w, shown_h))
    return _even(shown_w * scale), _even(shown_h * scale)


def proxy_command(source_path: str, temp: str, source: VideoFacts, width: int, height: int) -> list[str]:
    """ffmpeg's arguments (absolute paths: see `probe`). ffmpeg rotates a display-matrix video
    while it decodes (autorotate) and before the filters below, so `scale` gets the upright frame
    and the proxy needs no matrix."""
    filters: list[str] = []
    if source.interlaced:
        filters.append("yadif=deint=interlaced")
    if source.hdr:
        primaries = source.color_primaries if source.color_primaries in _HDR_PRIMARIES else "bt2020"
        matrix = source.color_space if source.color_space in _HDR_MATRICES else "bt2020nc"
        filters += [
            f"zscale=tin={source.color_transfer}:pin={primaries}:min={matrix}:t=linear:npl=100",
            "format=gbrpf32le",
            "zscale=p=bt709",
            "tonemap=tonemap=hable:desat=0",
            "zscale=t=bt709:m=bt709:r=tv",
            "format=yuv420p",
        ]
    filters += [f"scale={width}:{height}", "setsar=1"]
    args = [
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-i",
        source_path,
        "-map",
        "0:v:0",
        "-map",
        "0:a:0?",
        "-vf",
        ",".join(filters),
        "-fpsmax",
        str(MAX_FPS),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "23",
        "-pix_fmt",
        "yuv420p",
    ]
    if source.hdr:
        args += ["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709"]
    args += ["-c:a", "aac", "-b:a", "128k"]
    if source.audio_channels is not None and source.audio_channels > 2:
        args += ["-ac", "2"]
    args += [
        "-movflags",
        "+faststart",
        "-progress",
        "pipe:1",
        "-nostats",
        "-stats_period",
        str(PROGRESS_PERIOD_S),
        "-f",
        "mp4",
        temp,
    ]
    return args


class TranscodeProgress:
    """ffmpeg's `-progress` lines (`out_time_us=…`) as `jobs:progress` percents of the source's
    duration: at most one per whole percent, held below 100 until the proxy is in place."""

    def __init__(self, job: JobContext, duration: float | None) -> None:
        self._job = job
        self._duration = duration
        self._sent: float | None = None

    def __call__(self, line: bytes) -> None:
        key, _, value = line.decode("ascii", errors="replace").strip().partition("=")
        if key != "out_time_us":
            return
        if not self._duration:
            if self._sent is None:
                self._sent = 0.0
                self._job.progress(0, "transcoding (length unknown)")
            return
        try:
            seconds = int(value) / 1_000_000
        except ValueError:  # "N/A" before the first frame
            seconds = 0.0
        percent = max(0.0, min(seconds / self._duration * 100, 99.0))
        if self._sent is None or percent - self._sent >= 1:
            self._sent = percent
            self._job.progress(round(percent, 1), "transcoding")


def _ready(job: JobContext, vidhash: str, path: str) -> None:
    job.events.proxy_ready(vidhash, path)


def _intact(row: dict[str, Any], final: str) -> bool:
    """The recorded proxy is this one and complete: same path and version, same size on disk."""
    if row["proxy_path"] != final or row["proxy_version"] != PROXY_VERSION or not row["file_size_bytes"]:
        return False
    try:
        size = os.stat(final).st_size
    except OSError:
        return False
    return bool(size == row["file_size_bytes"])


def _commit(temp: str, final: str) -> int:
    """ffmpeg's finished output flushed and renamed over the final name; its size."""
    size = fs.flush_path(temp)
    fs.publish(temp, final)
    return size


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)
