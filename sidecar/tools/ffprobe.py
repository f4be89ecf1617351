"""What ffprobe says about a video, read once for the `ffprobe` and `video-proxy` jobs: the probe's
JSON and the typed facts taken from it (size as a viewer sees it, rotation, duration, codec, fps,
colour transfer); not the capture date, which the exiftool job alone owns. It knows ffprobe's
output, never the database or the queue.
"""

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import orjson

from sidecar.errors import PermanentFailure
from sidecar.tools.discovery import Tool
from sidecar.tools.process import run_tool

PROBE_ARGS = ("-v", "error", "-print_format", "json", "-show_format", "-show_streams")
# Transfer functions of HDR video (PQ, HLG): a proxy needs tone mapping to look right in SDR.
HDR_TRANSFERS = frozenset({"smpte2084", "arib-std-b67"})


class NotAVideo(PermanentFailure):
    """The file has no video stream (ffprobe read it, but found only audio, data or cover art);
    another try cannot change that."""


class ProbeUnreadable(Exception):
    """ffprobe's output was not the JSON object it promises."""


@dataclass(frozen=True, slots=True)
class VideoFacts:
    """The typed fields of a probe. `width`/`height` are the stored frame's, swapped for a 90° or
    270° rotation (phone portrait footage is stored landscape with a display matrix);
    `display_size` also applies the pixel aspect."""

    width: int
    height: int
    rotation: int  # clockwise or not, normalised to 0, 90, 180 or 270; only 90/270 swap the size
    pixel_aspect: Fraction  # of the stored frame (1 for square pixels)
    duration: float | None
    codec: str | None
    fps: float | None
    interlaced: bool
    color_transfer: str | None
    color_primaries: str | None
    color_space: str | None
    audio_channels: int | None  # of the first audio stream; None without audio

    @property
    def display_size(self) -> tuple[float, float]:
        """Width and height a player shows, pixel aspect and rotation applied (may be fractional)."""
        coded_w, coded_h = (
            (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)
        )
        shown_w = coded_w * float(self.pixel_aspect)
        return (coded_h, shown_w) if self.rotation in (90, 270) else (shown_w, coded_h)

    @property
    def display_pixels(self) -> tuple[int, int]:
        """`display_size` in whole pixels (DV PAL 16:9, 720×576 at 64:45, is shown 1024×576)."""
        shown_w, shown_h = self.display_size
        return max(round(shown_w), 1), max(round(shown_h), 1)

    @property
    def hdr(self) -> bool:
        return self.color_transfer in HDR_TRANSFERS


async def probe(tool: Tool, path: str) -> dict[str, Any]:
    """ffprobe's JSON for a file at an absolute path (a relative `name:rest` would be read as a
    protocol URL); ToolFailed (from run_tool) when ffprobe cannot read it."""
    output = await run_tool(tool, [*PROBE_ARGS, path])
    try:
        data = orjson.loads(output.stdout)
    except orjson.JSONDecodeError as exc:
        raise ProbeUnreadable(f"ffprobe printed no JSON for {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ProbeUnreadable(f"ffprobe printed no JSON object for {path}")
    return data


def video_facts(data: dict[str, Any], path: str) -> VideoFacts:
    """The facts of the first real video stream (cover art in an audio file is not one)."""
    streams = [s for s in data.get("streams") or () if isinstance(s, dict)]
    video = next((s for s in streams if _is_video(s)), None)
    if video is None:
        raise NotAVideo(f"no video stream in {path}")
    width, height = _int(video.get("width")), _int(video.get("height"))
    if not width or not height:
        raise NotAVideo(f"the video stream of {path} has no frame size")
    rotation = _rotation(video)
    if rotation in (90, 270):
        width, height = height, width
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    fmt: dict[str, Any] = data["format"] if isinstance(data.get("format"), dict) else {}
    return VideoFacts(
        width=width,
        height=height,
        rotation=rotation,
        pixel_aspect=_ratio(video.get("sample_aspect_ratio"), ":") or Fraction(1),
        duration=_positive_float(fmt.get("duration")) or _positive_float(video.get("duration")),
        codec=video.get("codec_name") if isinstance(video.get("codec_name"), str) else None,
        fps=_fps(video, fmt),
        interlaced=video.get("field_order") in ("tt", "bb", "tb", "bt"),
        color_transfer=_str(video.get("color_transfer")),
        color_primaries=_str(video.get("color_primaries")),
        color_space=_str(video.get("color_space")),
        audio_channels=None if audio is None else (_int(audio.get("channels")) or None),
    )


def _is_video(stream: dict[str, Any]) -> bool:
    disposition = stream.get("disposition")
    cover_art = isinstance(disposition, dict) and disposition.get("attached_pic") == 1
    return stream.get("codec_type") == "video" and not cover_art


def _rotation(stream: dict[str, Any]) -> int:
    """The display matrix's rotation (ffmpeg ≥ 5 side data), else the older `rotate` tag."""
    found: Any = None
    for side in stream.get("side_data_list") or ():
        if isinstance(side, dict) and "rotation" in side:
            found = side["rotation"]
            break
    if found is None:
        tags = stream.get("tags")
        found = tags.get("rotate") if isinstance(tags, dict) else None
    try:
        degrees = float(found)
    except (TypeError, ValueError):
        return 0
    if not math.isfinite(degrees):
        return 0
    return round(degrees / 90) * 90 % 360


def _fps(stream: dict[str, Any], fmt: dict[str, Any]) -> float | None:
    """The average rate (frames over duration): `r_frame_rate` is ffmpeg's guess at a base rate,
    the shortest frame interval of a variable-rate stream or even its time base (a thermal
    camera's 7.4 fps MP4 reads 600/1 there). Without an average: frames over duration, then
    `r_frame_rate` unless it is merely the time base."""
    rate = _ratio(stream.get("avg_frame_rate"), "/")
    if rate is None:
        counted = stream.get("nb_frames")  # ffprobe prints it as a string
        frames = int(counted) if isinstance(counted, str) and counted.isdigit() else 0
        duration = _positive_float(stream.get("duration")) or _positive_float(fmt.get("duration"))
        if frames and duration:
            rate = Fraction(frames) / Fraction(duration)
    if rate is None:
        guess = _ratio(stream.get("r_frame_rate"), "/")
        time_base = _ratio(stream.get("time_base"), "/")
        rate = None if guess is None or (time_base and guess == 1 / time_base) else guess
    return None if rate is None else round(float(rate), 3)


def _ratio(value: Any, separator: str) -> Fraction | None:
    """A positive "a/b" (or "a:b"); None for "0/0", "0:1", "N/A" and the like."""
    if not isinstance(value, str):
        return None
    numerator, _, denominator = value.partition(separator)
    try:
        a, b = int(numerator), int(denominator)
    except ValueError:
        return None
    return Fraction(a, b) if a > 0 and b > 0 else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value and value != "unknown" else None


def _positive_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None
