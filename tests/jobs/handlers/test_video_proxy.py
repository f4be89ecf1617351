"""The `video-proxy` handler with the real ffmpeg and ffprobe on videos made by ffmpeg, over a real
SQLite file: sizes, rotation, progress, the table row, reuse only of an intact proxy, and no temp
file or ffmpeg process left by a failure or a cancellation."""

import asyncio
import dataclasses
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Hashable
from contextlib import closing
from fractions import Fraction
from io import BytesIO
from pathlib import Path
from typing import Any

import orjson
import pytest
from PIL import Image, ImageChops, ImageStat

from sidecar.db.connection import Database
from sidecar.errors import PermanentFailure
from sidecar.jobs.handlers.video_proxy import proxy_command, proxy_size, video_proxy
from sidecar.jobs.scheduler import JobScheduler
from sidecar.jobs.store import JobStore, NewJob, Queue, insert_jobs
from sidecar.timestamps import now_iso
from sidecar.tools.discovery import Tool, Toolset
from sidecar.tools.ffprobe import VideoFacts, video_facts
from sidecar.tools.process import ToolFailed, ToolMissing, run_tool
from tests.support.archive import LocationFixture, add_media_row
from tests.support.jobs import ContextMaker, RecordedEvents
from tests.support.media import ffmpeg, make_video
from tests.support.processes import children, lowered, niceness

BOUND_S = 10.0
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _payload(digest: str, path: Path) -> dict[str, Any]:
    return {"hash": digest, "mediaType": "video", "archivePath": str(path), "sessionId": "s"}


def _probe(path: Path) -> dict[str, Any]:
    ffprobe = shutil.which("ffprobe")
    assert ffprobe is not None
    args = [ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)]
    data: dict[str, Any] = orjson.loads(subprocess.run(args, check=True, capture_output=True).stdout)
    return data


def _streams(data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in data["streams"] if s["codec_type"] == kind]


def _frame(path: Path, width: int, height: int, *, autorotate: bool = True) -> Image.Image:
    """The first frame as ffmpeg decodes it, scaled to width×height."""
    args = [ffmpeg(), "-nostdin", "-v", "error", *([] if autorotate else ["-noautorotate"]), "-i", str(path)]
    args += ["-frames:v", "1", "-vf", f"scale={width}:{height}", "-f", "image2pipe", "-c:v", "png", "-"]
    return Image.open(BytesIO(subprocess.run(args, check=True, capture_output=True).stdout)).convert("RGB")


def _difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def _leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".aus-tmp"))


def _proxy_rows(db_path: Path) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(db_path)) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM video_proxies")]


def _add(db_path: Path, location: LocationFixture, video: Path) -> str:
    return add_media_row(db_path, "video", video, location.locid)


async def test_a_landscape_video_gets_a_720p_proxy_with_progress_row_and_event(
    archive: Path,
    db_path: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    events: RecordedEvents,
) -> None:
    video = make_video(archive / "org-vid" / "wide.mp4", 1280, 720, seconds=0.5)
    digest = _add(db_path, location, video)

    result = await video_proxy(make_context(Queue.VIDEO_PROXY, _payload(digest, video)))

    final = video.parent / f".{digest}.proxy.mp4"
    size = final.stat().st_size
    assert result == {
        "hash": digest,
        "proxyPath": str(final),
        "width": 720,
        "height": 404,
        "fileSizeBytes": size,
        "reused": False,
    }
    probed = _probe(final)
    [v] = _streams(probed, "video")
    [a] = _streams(probed, "audio")
    assert (v["codec_name"], v["pix_fmt"], v["width"], v["height"]) == ("h264", "yuv420p", 720, 404)
    assert v.get("sample_aspect_ratio", "1:1") == "1:1"
    assert a["codec_name"] == "aac"
    assert float(probed["format"]["duration"]) == pytest.approx(0.5, abs=0.1)
    data = final.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: playable while it loads

    [row] = _proxy_rows(db_path)
    assert row == {
        "vidhash": digest,
        "proxy_path": str(final),
        "generated_at": row["generated_at"],
        "last_accessed": row["generated_at"],
        "file_size_bytes": size,
        "original_width": 1280,
        "original_height": 720,
        "proxy_width": 720,
        "proxy_height": 404,
        "proxy_version": 1,
    }
    assert ISO_MS.fullmatch(row["generated_at"])

    progress = events.of("jobs:progress")  # each one already checked against protocol/
    assert progress and {(p["queue"], p["jobId"]) for p in progress} == {("video-proxy", "test-video-proxy")}
    percents = [p["progress"] for p in progress]
    assert percents == sorted(percents) and percents[-1] == 100 and all(0 <= p <= 100 for p in percents)
    assert events.of("asset:proxy-ready") == [{"hash": digest, "proxyPath": str(final)}]
    assert _leftovers(video.parent) == []


async def test_a_small_video_is_not_upscaled(
    archive: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker
) -> None:
    video = make_video(archive / "org-vid" / "small.mp4", 320, 240, seconds=0.5)
    digest = _add(db_path, location, video)

    result = await video_proxy(make_context(Queue.VIDEO_PROXY, _payload(digest, video)))

    [v] = _streams(_probe(Path(result["proxyPath"])), "video")
    assert (v["width"], v["height"]) == (result["width"], result["height"]) == (320, 240)


async def test_portrait_phone_footage_stays_portrait(
    archive: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker
) -> None:
    """Frames stored 960×540 with a 90° display matrix: the proxy is 404×720 and upright."""
    video = make_video(archive / "org-vid" / "phone.mov", 960, 540, seconds=0.5, rotate=90)
    digest = _add(db_path, location, video)

    result = await video_proxy(make_context(Queue.VIDEO_PROXY, _payload(digest, video)))

    final = Path(result["proxyPath"])
    shown = video_facts(_probe(final), str(final))  # any display matrix of the proxy applied
    assert (shown.width, shown.height) == (404, 720)
    assert shown.rotation == 0  # rotated in the pixels: every player shows it upright
    [row] = _proxy_rows(db_path)
    assert (row["original_width"], row["original_height"]) == (540, 960)
    assert (row["proxy_width"], row["proxy_height"]) == (404, 720)
    # The pixels are ffmpeg's upright rendering of the original, not the stored frame squeezed.
    proxy = _frame(final, 404, 720)
    upright = _frame(video, 404, 720)
    squeezed = _frame(video, 404, 720, autorotate=False)
    assert _difference(proxy, upright) < 8 < _difference(proxy, squeezed)


async def test_an_hdr_video_is_tone_mapped_to_sdr(
    archive: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker
) -> None:
    video = archive / "org-vid" / "hdr.mp4"
    video.parent.mkdir(parents=True)
    source = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=0.5"]
    hlg = ["-color_primaries", "bt2020", "-color_trc", "arib-std-b67", "-colorspace", "bt2020nc"]
    encode = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le", *hlg]
    subprocess.run([ffmpeg(), "-nostdin", "-v", "error", *source, *encode, str(video)], check=True)
    digest = _add(db_path, location, video)

    result = await video_proxy(make_context(Queue.VIDEO_PROXY, _payload(digest, video)))

    [v] = _streams(_probe(Path(result["proxyPath"])), "video")
    assert (v["pix_fmt"], v["color_transfer"], v["color_primaries"]) == ("yuv420p", "bt709", "bt709")


async def test_a_rerun_reuses_an_intact_proxy(
    archive: Path,
    db_path: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    events: RecordedEvents,
) -> None:
    video = make_video(archive / "org-vid" / "clip.mp4", 320, 240, seconds=0.5)
    digest = _add(db_path, location, video)
    job = make_context(Queue.VIDEO_PROXY, _payload(digest, video))
    first = await video_proxy(job)
    before = os.stat(first["proxyPath"])

    again = await video_proxy(job)

    assert again == {**first, "reused": True}
    after = os.stat(first["proxyPath"])
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert len(_proxy_rows(db_path)) == 1
    assert len(events.of("asset:proxy-ready")) == 2  # the app hears of it again


async def test_a_truncated_or_unrecorded_proxy_is_made_again_and_stale_temps_go(
    archive: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker
) -> None:
    video = make_video(archive / "org-vid" / "clip.mp4", 320, 240, seconds=0.5)
    digest = _add(db_path, location, video)
    job = make_context(Queue.VIDEO_PROXY, _payload(digest, video))
    first = await video_proxy(job)
    final = Path(first["proxyPath"])

    # What a crash of the app's own proxy code left: the file cut short, its row still there.
    with final.open("r+b") as f:
        f.truncate(first["fileSizeBytes"] // 2)
    stale = video.parent / f"..{digest}.proxy.mp4.0badc0de.aus-tmp"
    stale.write_bytes(b"half an mp4")
    other = video.parent / "..fedcba9876543210.proxy.mp4.0badc0de.aus-tmp"  # another video's: not ours
    other.write_bytes(b"someone else's")

    remade = await video_proxy(job)
    assert remade["reused"] is False and final.stat().st_size == remade["fileSizeBytes"]
    assert _streams(_probe(final), "video")
    assert _leftovers(video.parent) == [other.name]

    # A proxy file with no row (e.g. written before a crash, or by the app) is not trusted either.
    with closing(sqlite3.connect(db_path, isolation_level=None)) as conn:
        conn.execute("DELETE FROM video_proxies")
    assert (await video_proxy(job))["reused"] is False
    assert [row["vidhash"] for row in _proxy_rows(db_path)] == [digest]


async def test_a_failed_transcode_raises_and_leaves_nothing(
    tmp_path: Path,
    archive: Path,
    db_path: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    events: RecordedEvents,
    toolset: Toolset,
) -> None:
    video = make_video(archive / "org-vid" / "clip.mp4", 320, 240, seconds=0.5)
    digest = _add(db_path, location, video)
    # An encoder that dies halfway: part of its output is on disk when it exits non-zero.
    crashing = tmp_path / "ffmpeg"
    crashing.write_text(
        '#!/bin/sh\nfor last; do :; done\nprintf half > "$last"\necho "encoder crashed" >&2\nexit 1\n'
    )
    crashing.chmod(0o755)
    tools = dataclasses.replace(toolset, ffmpeg=Tool(str(crashing), "test"))

    with pytest.raises(ToolFailed, match="ffmpeg exited with 1: encoder crashed"):
        await video_proxy(make_context(Queue.VIDEO_PROXY, _payload(digest, video), tools=tools))

    assert os.listdir(video.parent) == [video.name]
    assert _proxy_rows(db_path) == [] and events.of("asset:proxy-ready") == []


async def test_a_corrupt_video_raises_and_leaves_nothing(
    archive: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker
) -> None:
    bad = archive / "org-vid" / "bad.mp4"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 16)
    digest = _add(db_path, location, bad)

    with pytest.raises(ToolFailed, match="Invalid data found"):
        await video_proxy(make_context(Queue.VIDEO_PROXY, _payload(digest, bad)))
    assert os.listdir(bad.parent) == [bad.name] and _proxy_rows(db_path) == []


async def test_a_cancelled_transcode_leaves_no_temp_file_and_no_ffmpeg(
    archive: Path,
    db_path: Path,
    location: LocationFixture,
    make_context: ContextMaker,
    events: RecordedEvents,
) -> None:
    video = make_video(archive / "org-vid" / "long.mp4", 640, 360, seconds=20)
    digest = _add(db_path, location, video)
    transcoding = asyncio.Event()
    emit = events.emit

    def emit_and_tell(event: str, payload: dict[str, Any], latest_key: Hashable | None = None) -> None:
        emit(event, payload, latest_key)
        if event == "jobs:progress":
            transcoding.set()

    events.emit = emit_and_tell  # type: ignore[method-assign]
    task = asyncio.create_task(video_proxy(make_context(Queue.VIDEO_PROXY, _payload(digest, video))))
    async with asyncio.timeout(BOUND_S):
        await transcoding.wait()  # ffmpeg's first progress line: it is running, its temp file open
    encoders = [pid for pid, name in children().items() if name == "ffmpeg"]
    assert len(encoders) == 1 and _leftovers(video.parent)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(BOUND_S):
            await task

    assert events.of("jobs:progress")[-1]["progress"] < 100  # it really was stopped midway
    assert not Path(f"/proc/{encoders[0]}").exists()  # killed and reaped, not a zombie
    assert "ffmpeg" not in children().values()
    assert os.listdir(video.parent) == [video.name]
    assert _proxy_rows(db_path) == [] and events.of("asset:proxy-ready") == []


async def test_missing_ffmpeg_or_ffprobe_names_the_option(
    archive: Path, db_path: Path, location: LocationFixture, make_context: ContextMaker, toolset: Toolset
) -> None:
    video = make_video(archive / "org-vid" / "clip.mp4", 320, 240, seconds=0.5)
    digest = _add(db_path, location, video)
    for name in ("ffmpeg", "ffprobe"):
        tools = dataclasses.replace(toolset, **{name: None})
        with pytest.raises(ToolMissing, match=rf"^{name} not found; set --{name}$") as raised:
            await video_proxy(make_context(Queue.VIDEO_PROXY, _payload(digest, video), tools=tools))
        assert isinstance(raised.value, PermanentFailure)


async def test_through_the_scheduler_a_failing_transcode_retries_then_goes_dead(
    archive: Path, db: Database, db_path: Path, location: LocationFixture, toolset: Toolset
) -> None:
    """Never "completed with proxyPath null" as in the app: failed, retried, dead-lettered."""
    bad = archive / "org-vid" / "bad.mov"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x00\x00\x00\x14ftypqt  " + bytes(256))
    digest = _add(db_path, location, bad)
    job = NewJob(Queue.VIDEO_PROXY, _payload(digest, bad))
    async with db.transaction() as conn:
        await insert_jobs(conn, [job], now_iso())
    events = RecordedEvents()

    async def tools() -> Toolset:
        return toolset

    async def archive_root() -> str | None:
        return str(archive)

    scheduler = JobScheduler(
        JobStore(db, backoff_base_s=0.001),
        {Queue.VIDEO_PROXY: video_proxy},
        tools=tools,
        archive_root=archive_root,
        events=events,
    )
    running = asyncio.create_task(scheduler.run())
    try:
        async with asyncio.timeout(BOUND_S):
            entry = await events.dead.get()
    finally:
        await scheduler.stop(0)
        async with asyncio.timeout(BOUND_S):
            await running
    assert entry["originalJobId"] == job.job_id and entry["attempts"] == 3
    assert "Invalid data found" in entry["error"]
    row = await db.fetch_one("SELECT status, result FROM jobs WHERE job_id = ?", (job.job_id,))
    assert row is not None and (row["status"], row["result"]) == ("dead", None)


def _facts(width: int, height: int, **fields: Any) -> VideoFacts:
    defaults: dict[str, Any] = {
        "rotation": 0,
        "pixel_aspect": Fraction(1),
        "duration": 1.0,
        "codec": "h264",
        "fps": 25.0,
        "interlaced": False,
        "color_transfer": None,
        "color_primaries": None,
        "color_space": None,
        "audio_channels": 2,
    }
    return VideoFacts(width, height, **{**defaults, **fields})


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (_facts(1920, 1080), (720, 404)),
        (_facts(1080, 1920, rotation=90), (404, 720)),  # as displayed: portrait stays portrait
        (_facts(3840, 2160), (720, 404)),
        (_facts(1440, 1080, pixel_aspect=Fraction(4, 3)), (720, 404)),  # HDV: shown 1920×1080
        (_facts(720, 480, pixel_aspect=Fraction(8, 9)), (640, 480)),  # DV 4:3: shown 640×480
        (_facts(640, 480), (640, 480)),  # never upscaled
        (_facts(321, 241), (320, 240)),  # even, rounded down
        (_facts(1, 1), (2, 2)),
    ],
)
def test_proxy_size(facts: VideoFacts, expected: tuple[int, int]) -> None:
    assert proxy_size(facts) == expected


def test_the_command_deinterlaces_tone_maps_and_downmixes_when_needed() -> None:
    plain = proxy_command("/a/in.mov", "/a/.t.tmp.mp4", _facts(1280, 720), 720, 404)
    assert plain[plain.index("-vf") + 1] == "scale=720:404,setsar=1"
    assert "-ac" not in plain and "-color_trc" not in plain
    for option in ("-nostdin", "-nostats"):
        assert option in plain
    assert plain[-3:] == ["-f", "mp4", "/a/.t.tmp.mp4"]

    odd = _facts(1920, 1080, interlaced=True, color_transfer="smpte2084", audio_channels=6)
    special = proxy_command("/a/in.mts", "/a/.t.tmp.mp4", odd, 720, 404)
    chain = special[special.index("-vf") + 1].split(",")
    assert chain[0] == "yadif=deint=interlaced"
    assert chain[1] == "zscale=tin=smpte2084:pin=bt2020:min=bt2020nc:t=linear:npl=100"
    assert "tonemap=tonemap=hable:desat=0" in chain and chain[-2:] == ["scale=720:404", "setsar=1"]
    assert special[special.index("-ac") + 1] == "2"
    assert special[special.index("-color_trc") + 1] == "bt709"


async def test_every_tool_runs_at_background_priority(tmp_path: Path) -> None:
    """Transcodes and the quick jobs' tools take the cores only when an import leaves them idle."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    shell = Tool(path="/bin/sh", version="")
    seen: list[int] = []

    def running(line: bytes) -> None:
        # The tool told us its pid and now waits on the gate: look at it, then let it finish.
        seen.append(niceness(int(line)))
        os.close(os.open(gate, os.O_WRONLY))  # blocks until cat has opened it: a moment

    await run_tool(shell, ["-c", f"echo $$; cat {gate}"], on_stdout_line=running)
    assert seen == [lowered(niceness(os.getpid()))]
