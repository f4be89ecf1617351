"""Imports end to end: the real sidecar, real files, a real SQLite file, the app's tables read back."""

import json
import os
from pathlib import Path

import pytest

from tests.support.archive import (
    add_location,
    assert_archive_invariant,
    hash16,
    is_iso,
    org_files,
    rows,
    write,
)
from tests.support.client import RpcError, SidecarPaths, SidecarProcess, Spawn


def camera_card(root: Path) -> Path:
    card = root / "card"
    write(card / "DCIM" / "100CAM" / "IMG_0001.JPG", 40_000)
    write(card / "DCIM" / "100CAM" / "IMG_0002.jpg", 50_000)
    write(card / "DCIM" / "100CAM" / "IMG_0002.xmp", b"<x:xmpmeta/>")
    write(card / "DCIM" / "100CAM" / "CLIP_0001.MP4", 300_000)
    write(card / "docs" / "permit.pdf", 10_000)
    write(card / "docs" / "route.gpx", 2_000)
    write(card / "docs" / "notes.xyz", 100)  # unknown extension: skipped
    write(card / "DCIM" / ".hidden.jpg", 100)  # hidden: skipped
    write(card / "DCIM" / "Thumbs.db", 100)  # left by Windows: skipped
    return card


async def test_a_camera_card_is_archived_with_rows_jobs_and_progress(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths, tmp_path: Path
):
    location = add_location(sidecar_paths.db)
    card = camera_card(tmp_path)
    result = await sidecar.request("import:v2:start", location.start_params(card))

    assert result["status"] == "completed", result
    assert result["scanResult"] == {
        "totalFiles": 6,  # the sidecar counts
        "totalBytes": result["scanResult"]["totalBytes"],
        "skipped": 3,
    }
    assert sorted((s["path"], s["reason"]) for s in result["skipped"]) == [
        (str(card / "DCIM" / ".hidden.jpg"), "hidden file"),
        (str(card / "DCIM" / "Thumbs.db"), "system file (left by macOS or Windows, not media)"),
        (str(card / "docs" / "notes.xyz"), "unknown extension (.xyz)"),
    ]
    assert "skippedTruncated" not in result
    assert result["finalizationResult"]["totalFinalized"] == 5  # sidecars get no row of their own
    assert result["errors"] == []
    assert is_iso(result["startedAt"]) and is_iso(result["completedAt"])

    folder = sidecar_paths.archive / "locations" / "NY-factory" / f"old-factory-{location.loc12}"
    jpg = card / "DCIM" / "100CAM" / "IMG_0001.JPG"
    expected = folder / f"org-img-{location.loc12}" / f"{hash16(jpg)}.jpg"
    assert expected.read_bytes() == jpg.read_bytes()
    # The sidecar lands beside its parent, named by the parent's hash.
    parent = card / "DCIM" / "100CAM" / "IMG_0002.jpg"
    assert (folder / f"org-img-{location.loc12}" / f"{hash16(parent)}.xmp").read_bytes() == b"<x:xmpmeta/>"
    assert (folder / f"org-vid-{location.loc12}").is_dir() and (folder / f"org-doc-{location.loc12}").is_dir()
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)

    [img] = rows(
        sidecar_paths.db,
        "SELECT imghash, imgnam, imgnamo, imgloc, imgloco, locid, subid, auth_imp, imgadd, imported_by_id,"
        " imported_by, file_size_bytes FROM imgs WHERE imgnamo = 'IMG_0001.JPG'",
    )
    assert img == (
        hash16(jpg),
        f"{hash16(jpg)}.jpg",
        "IMG_0001.JPG",
        str(expected),
        str(jpg),
        location.locid,
        None,
        "alice",
        img[8],
        "user-1",
        "alice",
        40_000,
    )
    assert is_iso(img[8])
    counts = rows(
        sidecar_paths.db, "SELECT img_count, vid_count, doc_count, map_count, auth_imp FROM imports"
    )
    assert counts == [(2, 1, 1, 1, "alice")]

    jobs = rows(
        sidecar_paths.db, "SELECT job_id, queue, priority, status, payload, depends_on, created_at FROM jobs"
    )
    by_queue: dict[str, int] = {}
    for _, queue, *_ in jobs:
        by_queue[queue] = by_queue.get(queue, 0) + 1
    assert by_queue == {
        "exiftool": 5, "thumbnail": 3, "ffprobe": 1, "video-proxy": 1,
        "live-photo": 1, "bagit": 1, "location-stats": 1, "gps-enrichment": 1,
    }  # fmt: skip
    ids = {job_id: queue for job_id, queue, *_ in jobs}
    for _, queue, _, status, payload, depends_on, created_at in jobs:
        # The queue starts on them as soon as they are committed (their outcome: tests/e2e/test_jobs_run.py).
        assert status in ("pending", "processing", "completed", "dead")
        assert is_iso(created_at)
        json.loads(payload)
        if queue == "thumbnail":
            assert ids[depends_on] == "exiftool"
        elif queue == "video-proxy":
            assert ids[depends_on] == "ffprobe"
        else:
            assert depends_on is None
    assert result["finalizationResult"]["jobsQueued"] == len(jobs)

    progress = sidecar.of("import:v2:progress")
    percents = [p["percent"] for p in progress]
    assert percents == sorted(percents), "percent went backwards"
    assert percents[-1] == 100 and progress[-1]["status"] == "completed"
    assert {p["status"] for p in progress} >= {"scanning", "hashing", "copying", "validating", "finalizing"}
    complete = await sidecar.notification("import:v2:complete")
    assert complete["sessionId"] == result["sessionId"]
    assert (complete["status"], complete["totalImported"], complete["totalErrors"]) == ("completed", 5, 0)

    [session] = rows(
        sidecar_paths.db,
        "SELECT status, last_step, can_resume, total_files, processed_files, completed_at"
        " FROM import_sessions",
    )
    assert session[:5] == ("completed", 5, 0, 5, 5) and is_iso(session[5])
    assert await sidecar.request("import:v2:status") == {
        "sessionId": None, "status": "idle", "progress": None, "queued": []
    }  # fmt: skip


async def test_duplicates_in_one_import_and_a_reimport_copy_nothing_new(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths, tmp_path: Path
):
    location = add_location(sidecar_paths.db)
    same = os.urandom(30_000)
    write(tmp_path / "a" / "one.jpg", same)
    write(tmp_path / "a" / "two.jpg", same)  # the same content twice in one import
    write(tmp_path / "a" / "three.jpg", 20_000)
    first = await sidecar.request("import:v2:start", location.start_params(tmp_path / "a"))
    assert first["finalizationResult"]["totalFinalized"] == 2
    assert first["hashResult"]["totalDuplicates"] == 1
    before = {p: p.stat().st_mtime_ns for p in org_files(sidecar_paths.archive)}

    again = await sidecar.request("import:v2:start", location.start_params(tmp_path / "a"))
    assert again["status"] == "completed"
    assert again["hashResult"]["totalDuplicates"] == 3
    assert again["finalizationResult"] == {
        "totalFinalized": 0,
        "totalErrors": 0,
        "jobsQueued": 0,
        "totalSidecars": 0,
    }
    assert {p: p.stat().st_mtime_ns for p in org_files(sidecar_paths.archive)} == before
    assert rows(sidecar_paths.db, "SELECT count(*) FROM imgs") == [(2,)]
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)


async def test_upper_case_extensions_pair_and_sidecars_of_both_styles_follow(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths, tmp_path: Path
):
    location = add_location(sidecar_paths.db)
    src = tmp_path / "src"
    raw = write(src / "IMG_0001.CR2", 60_000)
    jpg = write(src / "IMG_0001.JPG", 20_000)
    write(src / "IMG_0001.CR2.XMP", b"<raw sidecar/>")
    write(src / "lonely.xmp", b"<orphan/>")
    result = await sidecar.request("import:v2:start", location.start_params(src))
    assert result["status"] == "completed" and result["finalizationResult"]["totalFinalized"] == 2

    images = Path(
        rows(sidecar_paths.db, "SELECT imgloc FROM imgs WHERE imgnamo = 'IMG_0001.CR2'")[0][0]
    ).parent
    assert (images / f"{hash16(raw)}.xmp").read_bytes() == b"<raw sidecar/>"
    misc = images.parent / f"org-misc-{location.loc12}"
    assert [p.read_bytes() for p in misc.iterdir()] == [b"<orphan/>"]
    payloads = [
        json.loads(p) for (p,) in rows(sidecar_paths.db, "SELECT payload FROM jobs WHERE queue = 'thumbnail'")
    ]
    raw_payload = next(p for p in payloads if p["hash"] == hash16(raw))
    assert raw_payload["pairedHash"] == hash16(jpg)
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)


async def test_a_thousand_images_in_one_import(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths, tmp_path: Path
):
    """The app overflowed SQLite's variable limit here (§12.25)."""
    location = add_location(sidecar_paths.db)
    for i in range(1000):
        write(tmp_path / "many" / f"{i // 100:02d}" / f"IMG_{i:04d}.jpg", 64, seed=i)
    result = await sidecar.request("import:v2:start", location.start_params(tmp_path / "many"), timeout=120)
    assert result["finalizationResult"]["totalFinalized"] == 1000
    assert rows(sidecar_paths.db, "SELECT count(*) FROM imgs") == [(1000,)]
    assert rows(sidecar_paths.db, "SELECT count(*) FROM jobs") == [(2004,)]
    assert rows(sidecar_paths.db, "SELECT img_count FROM imports") == [(1000,)]


async def test_unknown_location_is_refused_before_any_file_is_touched(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths, tmp_path: Path
):
    source = write(tmp_path / "x.jpg", 100)
    params = [
        {"paths": [str(source)], "locid": "00000000-0000-4000-8000-000000000000", "loc12": "000000000000"}
    ]
    with pytest.raises(RpcError) as error:
        await sidecar.request("import:v2:start", params)
    assert (error.value.code, error.value.data["kind"]) == (1002, "location_not_found")
    assert rows(sidecar_paths.db, "SELECT count(*) FROM import_sessions") == [(0,)]
    assert not any(sidecar_paths.archive.iterdir())


async def test_archive_not_configured(spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path):
    client = await spawn_sidecar(["serve", "--db", str(sidecar_paths.db)])
    location = add_location(sidecar_paths.db)
    with pytest.raises(RpcError) as error:
        await client.request("import:v2:start", location.start_params(write(tmp_path / "x.jpg", 10)))
    assert error.value.code == 1001
    assert error.value.message == "Archive folder not configured. Please set it in Settings."


async def test_bad_params_name_every_problem(sidecar: SidecarProcess):
    with pytest.raises(RpcError) as error:
        await sidecar.request("import:v2:start", [{"paths": ["", "ok"], "loc12": "../x", "bogus": 1}])
    assert error.value.code == -32602
    paths = {issue["path"] for issue in error.value.data["issues"]}
    assert {"/0", "/0/paths/0", "/0/loc12"} <= paths


async def test_missing_sources_are_per_file_errors(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths, tmp_path: Path
):
    location = add_location(sidecar_paths.db)
    good = write(tmp_path / "good.jpg", 500)
    result = await sidecar.request("import:v2:start", location.start_params(tmp_path / "missing", good))
    assert result["status"] == "completed"
    assert result["finalizationResult"]["totalFinalized"] == 1
    assert [(e["path"], e["step"]) for e in result["errors"]] == [(str(tmp_path / "missing"), "scan")]
    assert (await sidecar.notification("import:v2:complete"))["totalErrors"] == 1


@pytest.mark.parametrize(
    ("slocnam", "type_", "state"),
    [
        ("../../../../etc", "../../x", "../"),
        ("/abs/olute", "a/b\\c", "N\x00"),
        ("．．／．．", "ü" * 250, "ny"),
    ],
)
async def test_hostile_location_values_stay_inside_the_archive(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths, tmp_path: Path, slocnam: str, type_: str, state: str
):
    location = add_location(sidecar_paths.db, slocnam=slocnam, type_=type_, state=None)
    params = location.start_params(write(tmp_path / "a.jpg", 1000))
    params[0]["address_state"] = state  # the row's NULL state falls back to the import's value
    result = await sidecar.request("import:v2:start", params)
    assert result["status"] == "completed"
    [(path,)] = rows(sidecar_paths.db, "SELECT imgloc FROM imgs")
    assert Path(path).resolve().is_relative_to(sidecar_paths.archive.resolve())
    assert Path(path).relative_to(sidecar_paths.archive).parts[0] == "locations"
    assert len(Path(path).relative_to(sidecar_paths.archive).parts) == 5


async def test_a_missing_archive_fails_clearly_and_stays_resumable(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths, tmp_path: Path
):
    location = add_location(sidecar_paths.db)
    source = write(tmp_path / "a.jpg", 1000)
    os.rmdir(sidecar_paths.archive)  # the archive folder is gone (an unplugged drive)
    result = await sidecar.request("import:v2:start", location.start_params(source))
    assert result["status"] == "failed"
    assert "Archive folder does not exist" in result["error"]
    [resumable] = await sidecar.request("import:v2:resumable")
    assert resumable["sessionId"] == result["sessionId"] and resumable["status"] == "failed"
    sidecar_paths.archive.mkdir()
    resumed = await sidecar.request("import:v2:resume", [result["sessionId"]])
    assert resumed["status"] == "completed" and resumed["finalizationResult"]["totalFinalized"] == 1
    assert await sidecar.request("import:v2:resumable") == []
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)


async def test_cancel_and_resume_of_unknown_sessions(sidecar: SidecarProcess):
    assert await sidecar.request("import:v2:cancel", ["nope"]) == {
        "cancelled": False,
        "reason": "No active import found",
    }
    with pytest.raises(RpcError) as error:
        await sidecar.request("import:v2:resume", ["nope"])
    assert error.value.data["kind"] == "session_not_found"


async def test_read_once_sources_are_staged_linked_in_and_leave_nothing_behind(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    """The network-share path (hash while copying, one read per file), forced on local files."""
    client = await spawn_sidecar([*sidecar_paths.args(), "--read-once", "always"])
    location = add_location(sidecar_paths.db)
    card = camera_card(tmp_path)
    write(
        card / "DCIM" / "100CAM" / "COPY_0001.JPG", (card / "DCIM" / "100CAM" / "IMG_0001.JPG").read_bytes()
    )
    result = await client.request("import:v2:start", location.start_params(card))
    assert result["status"] == "completed", result
    assert result["finalizationResult"]["totalFinalized"] == 5
    assert result["hashResult"]["totalDuplicates"] == 1
    assert result["copyResult"]["strategy"] == "copy"
    for source, archived in rows(sidecar_paths.db, "SELECT imgloco, imgloc FROM imgs"):
        assert Path(archived).read_bytes() == Path(source).read_bytes()
        assert Path(archived).stat().st_nlink == 1, "the staged file must not stay linked to the archive copy"
    assert not (sidecar_paths.archive / ".aus-staging" / result["sessionId"]).exists()
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)
