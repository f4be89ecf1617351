"""The background jobs end to end: real media imported through the real sidecar process, then the
real exiftool, ffprobe, ffmpeg and Pillow behind the queue, until every job is completed or dead."""

import json
import subprocess
from pathlib import Path

from PIL import Image

from tests.support.archive import LocationFixture, add_location, hash16, rows
from tests.support.camera_files import make_iphone_still
from tests.support.client import SidecarPaths, Spawn, jobs_settled
from tests.support.media import make_corrupt_jpeg, make_jpeg, make_video


def card(folder: Path) -> dict[str, Path]:
    """What a camera card of a trip holds."""
    return {
        "portrait": make_jpeg(
            folder / "IMG_0001.JPG",
            1600,
            1200,
            orientation=6,
            gps=(40.6892, -74.0445),
            taken="2024:05:06 07:08:09",
            make="Apple",
            model="iPhone 15",
            seed=1,
        ),
        "small": make_jpeg(folder / "IMG_0002.JPG", 300, 200, seed=2),
        "landscape_video": make_video(folder / "MVI_0003.MP4", 640, 360, seconds=1.0, seed=3),
        "portrait_video": make_video(
            folder / "IMG_0004.MOV",
            640,
            360,
            seconds=1.0,
            rotate=90,
            creation_time="2024-05-06T07:10:00Z",
            seed=4,
        ),
        "corrupt": make_corrupt_jpeg(folder / "BROKEN.JPG"),
    }


def archived(archive: Path, location: LocationFixture, file: Path, kind: str) -> Path:
    [found] = archive.glob(f"locations/*/*/org-{kind}-{location.loc12}/{hash16(file)}{file.suffix.lower()}")
    return found


def short_edge(path: Path) -> int:
    with Image.open(path) as image:
        return min(image.size)


def probe_size(path: Path) -> tuple[int, int]:
    """The size a player shows (rotation applied)."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_streams",
            "-print_format",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
    ).stdout
    stream = json.loads(out)["streams"][0]
    rotation = next((s.get("rotation", 0) for s in stream.get("side_data_list", [])), 0)
    size = (stream["width"], stream["height"])
    return size[::-1] if abs(int(rotation)) % 180 == 90 else size


async def test_an_imported_card_gets_metadata_thumbnails_probes_proxies_and_a_bag(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    client = await spawn_sidecar(sidecar_paths.args())
    location = add_location(sidecar_paths.db)
    files = card(tmp_path / "DCIM")
    result = await client.request("import:v2:start", location.start_params(tmp_path / "DCIM"))
    assert result["status"] == "completed" and result["finalizationResult"]["totalFinalized"] == 5

    status = await jobs_settled(client)

    digest = {name: hash16(path) for name, path in files.items()}
    # Every job finished; only the corrupt image's thumbnail is dead (its metadata job completed:
    # exiftool reports what it can of a broken file).
    assert {q: c["dead"] for q, c in status.items() if c["dead"]} == {"thumbnail": 1}
    assert status["exiftool"]["completed"] == 5 and status["thumbnail"]["completed"] == 4
    assert status["ffprobe"]["completed"] == 2 and status["video-proxy"]["completed"] == 2
    for queue in ("live-photo", "bagit", "location-stats"):
        assert status[queue]["completed"] == 1, queue

    # Metadata: typed columns and the flat tags.
    [image] = rows(
        sidecar_paths.db,
        "SELECT meta_width, meta_height, meta_date_taken, meta_camera_make, meta_camera_model,"
        " meta_gps_lat, meta_gps_lng, meta_exiftool, thumb_path_sm, thumb_path_lg, preview_path, thumb_path"
        " FROM imgs WHERE imghash = ?",
        (digest["portrait"],),
    )
    # Coded 1600×1200 with orientation 6: shown, and stored, upright.
    assert image[:5] == (1200, 1600, "2024-05-06T07:08:09.000Z", "Apple", "iPhone 15")
    assert round(image[5], 4) == 40.6892 and round(image[6], 4) == -74.0445
    assert json.loads(image[7])["Orientation"] == 6
    metadata = await client.notification("asset:metadata-complete", lambda p: p["hash"] == digest["portrait"])
    assert metadata["metadata"]["gps"]["lng"] < 0

    # Thumbnails: 400/800/1920 on the short edge, never upscaled, orientation applied.
    sm, lg, preview, thumb = (Path(p) for p in image[8:12])
    assert thumb == sm and sm.parent == sidecar_paths.archive / ".thumbnails" / digest["portrait"][:2]
    assert (short_edge(sm), short_edge(lg), short_edge(preview)) == (400, 800, 1200)
    with Image.open(lg) as rendered:
        assert rendered.height > rendered.width  # orientation 6: the landscape pixels stand upright
    [small] = rows(sidecar_paths.db, "SELECT thumb_path_sm FROM imgs WHERE imghash = ?", (digest["small"],))
    assert short_edge(Path(small[0])) == 200
    ready = await client.notification("asset:thumbnail-ready", lambda p: p["hash"] == digest["portrait"])
    assert ready["paths"] == {"sm": str(sm), "lg": str(lg), "preview": str(preview)}

    # Videos: probe, poster, portrait proxy.
    [video] = rows(
        sidecar_paths.db,
        "SELECT meta_width, meta_height, meta_codec, meta_fps, meta_duration, poster_extracted, thumb_path_sm"
        " FROM vids WHERE vidhash = ?",
        (digest["portrait_video"],),
    )
    assert video[2:4] == ("h264", 25.0) and abs(video[4] - 1.0) < 0.2 and video[5] == 1
    assert Path(video[6]).is_file()
    [(proxy_path, proxy_w, proxy_h)] = rows(
        sidecar_paths.db,
        "SELECT proxy_path, proxy_width, proxy_height FROM video_proxies WHERE vidhash = ?",
        (digest["portrait_video"],),
    )
    original = archived(sidecar_paths.archive, location, files["portrait_video"], "vid")
    assert Path(proxy_path) == original.parent / f".{digest['portrait_video']}.proxy.mp4"
    shown = probe_size(Path(proxy_path))
    assert shown[1] > shown[0] and max(shown) <= 720 and (proxy_w, proxy_h) == shown
    proxy_ready = await client.notification(
        "asset:proxy-ready", lambda p: p["hash"] == digest["portrait_video"]
    )
    assert proxy_ready["proxyPath"] == proxy_path
    assert client.of("jobs:progress"), "the transcode reports its progress"

    # The corrupt image: dead at once (no decoder takes it; another try cannot help), saying why,
    # listed, and requeued by jobs:retry.
    [(attempts, error)] = rows(
        sidecar_paths.db,
        "SELECT attempts, error FROM jobs WHERE queue = 'thumbnail' AND status = 'dead'",
    )
    assert attempts == 1 and error.startswith("cannot decode ") and "cannot identify image file" in error
    dead = await client.notification("jobs:deadLetter", lambda p: p["queue"] == "thumbnail")
    assert dead["payload"]["hash"] == digest["corrupt"]
    [entry] = await client.request("jobs:deadLetter", ["thumbnail"])
    assert entry["id"] == dead["id"] and entry["originalJobId"] == dead["jobId"]
    retried = await client.request("jobs:retry", [{"deadLetterId": entry["id"]}])
    assert retried["success"] is True
    [(queue, payload)] = rows(
        sidecar_paths.db, "SELECT queue, payload FROM jobs WHERE job_id = ?", (retried["newJobId"],)
    )
    assert queue == "thumbnail" and json.loads(payload)["hash"] == digest["corrupt"]

    # The bag verifies.
    bag = next(sidecar_paths.archive.glob(f"locations/*/*/org-doc-{location.loc12}/_archive"))
    check = subprocess.run(
        ["sha256sum", "--quiet", "-c", "manifest-sha256.txt"], cwd=bag, capture_output=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert rows(sidecar_paths.db, "SELECT bag_status FROM locs WHERE locid = ?", (location.locid,)) == [
        ("valid",)
    ]


async def test_a_live_photo_pair_is_linked_and_its_video_hidden(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    client = await spawn_sidecar(sidecar_paths.args())
    location = add_location(sidecar_paths.db)
    # Apple's identifier in both halves (the still's maker note, the video's QuickTime keys); a
    # camera's same-named photo and voice memo beside them stay apart.
    uuid = "8B2B5A8E-1C2D-4E5F-9A0B-112233445566"
    still = make_iphone_still(tmp_path / "live" / "IMG_0100.JPG", uuid, seed=7)
    motion = make_video(tmp_path / "live" / "IMG_0100.MOV", content_identifier=uuid, seed=7)
    photo = make_jpeg(tmp_path / "live" / "P1000244.JPG", 400, 300, taken="1999:08:07 06:05:04", seed=8)
    memo = make_video(tmp_path / "live" / "P1000244.MOV", creation_time="1999-08-07T06:05:04Z", seed=8)
    await client.request("import:v2:start", location.start_params(tmp_path / "live"))

    await jobs_settled(client)

    assert rows(
        sidecar_paths.db, "SELECT is_live_photo, hidden FROM imgs WHERE imghash = ?", (hash16(still),)
    ) == [(1, 0)]
    assert rows(
        sidecar_paths.db,
        "SELECT is_live_photo, hidden, hidden_reason FROM vids WHERE vidhash = ?",
        (hash16(motion),),
    ) == [(1, 1, "live_photo_video")]
    assert rows(
        sidecar_paths.db, "SELECT is_live_photo, hidden FROM imgs WHERE imghash = ?", (hash16(photo),)
    ) == [(0, 0)]
    assert rows(
        sidecar_paths.db, "SELECT is_live_photo, hidden FROM vids WHERE vidhash = ?", (hash16(memo),)
    ) == [(0, 0)]


async def test_a_missing_exiftool_fails_its_jobs_clearly_and_the_sidecar_keeps_serving(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    client = await spawn_sidecar([*sidecar_paths.args(), "--exiftool", str(tmp_path / "no-exiftool")])
    location = add_location(sidecar_paths.db)
    make_jpeg(tmp_path / "src" / "a.jpg", 200, 100)
    await client.request("import:v2:start", location.start_params(tmp_path / "src"))

    dead = await client.notification("jobs:deadLetter", lambda p: p["queue"] == "exiftool")

    assert dead["error"] == "exiftool not found; set --exiftool"
    assert dead["attempts"] == 1  # no retry can find it
    # Its thumbnail depended on it and goes with it, saying why.
    child = await client.notification("jobs:deadLetter", lambda p: p["queue"] == "thumbnail")
    assert "exiftool" in child["error"]
    info = await client.request("sidecar:info")
    assert info["tools"]["exiftool"] is None and info["tools"]["ffmpeg"] is not None


async def test_a_sidecar_killed_mid_transcode_finishes_the_proxy_exactly_once(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    client = await spawn_sidecar(sidecar_paths.args())
    location = add_location(sidecar_paths.db)
    clip = make_video(tmp_path / "src" / "long.mp4", 1280, 720, seconds=20.0)
    await client.request("import:v2:start", location.start_params(tmp_path / "src"))
    await client.notification("jobs:progress", lambda p: p["queue"] == "video-proxy", timeout=60)
    await client.kill()

    folder = archived(sidecar_paths.archive, location, clip, "vid").parent
    final = folder / f".{hash16(clip)}.proxy.mp4"
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".") and p != final]
    assert leftovers, "the kill landed mid-transcode: its temp output is there"
    assert not final.exists(), "no proxy under its final name before the transcode ended"

    client = await spawn_sidecar(sidecar_paths.args())
    status = await jobs_settled(client)

    assert status["video-proxy"] == {"pending": 0, "processing": 0, "completed": 1, "failed": 0, "dead": 0}
    [(attempts, result)] = rows(
        sidecar_paths.db, "SELECT attempts, result FROM jobs WHERE queue = 'video-proxy'"
    )
    assert attempts == 2 and json.loads(result)  # the interrupted try counts; one result
    assert rows(sidecar_paths.db, "SELECT count(*) FROM video_proxies") == [(1,)]
    assert abs(float(probe_duration(final)) - 20.0) < 0.5  # whole, not truncated
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == [final.name]


def probe_duration(path: Path) -> str:
    return subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
