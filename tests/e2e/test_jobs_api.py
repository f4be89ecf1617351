"""The jobs:* methods through the real process, on rows an import queued and rows the app wrote."""

import asyncio
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.archive import add_location, plant_dead_letter, rows, write
from tests.support.client import RpcError, SidecarPaths, SidecarProcess
from tests.support.jobs import APP_QUEUES

QUEUES = set(APP_QUEUES)


async def test_status_counts_the_jobs_an_import_queued(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths, tmp_path: Path
):
    location = add_location(sidecar_paths.db)
    write(tmp_path / "src" / "a.jpg", 1000)
    write(tmp_path / "src" / "b.mp4", 1000)
    await sidecar.request("import:v2:start", location.start_params(tmp_path / "src"))
    status = await sidecar.request("jobs:status")
    assert status.keys() == QUEUES
    # The jobs may already be running: every job the import queued is counted in exactly one status.
    totals = {queue: sum(counts.values()) for queue, counts in status.items()}
    assert totals == {
        "exiftool": 2,
        "thumbnail": 2,
        "ffprobe": 1,
        "video-proxy": 1,
        "live-photo": 1,
        "bagit": 1,
        "location-stats": 1,
        "gps-enrichment": 1,
    }


async def test_dead_letters_list_retry_and_acknowledge(sidecar: SidecarProcess, sidecar_paths: SidecarPaths):
    older = plant_dead_letter(
        sidecar_paths.db, "thumbnail", {"hash": "0123456789abcdef"}, "2025-12-01T10:00:00.000Z"
    )
    newer = plant_dead_letter(
        sidecar_paths.db, "exiftool", {"hash": "fedcba9876543210"}, "2025-12-02T10:00:00.000Z"
    )
    entries = await sidecar.request("jobs:deadLetter")
    assert [e["id"] for e in entries] == [newer, older]
    assert entries[0] | {"payload": None} == {
        "id": newer,
        "jobId": "job-2025-12-02T10:00:00.000Z",
        "originalJobId": "job-2025-12-02T10:00:00.000Z",
        "queue": "exiftool",
        "payload": None,
        "error": "boom",
        "attempts": 3,
        "failedAt": "2025-12-02T10:00:00.000Z",
        "acknowledged": False,
    }
    assert [e["id"] for e in await sidecar.request("jobs:deadLetter", ["thumbnail"])] == [older]

    retried = await sidecar.request("jobs:retry", [{"deadLetterId": older}])
    assert retried["success"] is True
    [(queue, status, payload)] = rows(
        sidecar_paths.db, "SELECT queue, status, payload FROM jobs WHERE job_id = ?", (retried["newJobId"],)
    )
    assert (queue, json.loads(payload)) == ("thumbnail", {"hash": "0123456789abcdef"})
    assert status in ("pending", "processing", "dead")  # requeued; the queue may have run it already
    assert await sidecar.request("jobs:retry", [{"deadLetterId": 999}]) == {
        "success": False,
        "newJobId": None,
    }

    assert await sidecar.request("jobs:acknowledge", [[older, newer]]) == {
        "acknowledged": 1
    }  # older: by retry
    assert await sidecar.request("jobs:acknowledge", [[newer]]) == {"acknowledged": 0}
    # The retried job has no media to work on: it dies again, with a dead letter of its own, not
    # acknowledged. (Listed before it died, the test passed; once on a loaded machine it died first.)
    died = await sidecar.notification(
        "jobs:deadLetter", lambda entry: entry["jobId"] == retried["newJobId"], timeout=30
    )
    entries = await sidecar.request("jobs:deadLetter", [None])
    assert {e["id"]: e["acknowledged"] for e in entries} == {older: True, newer: True, died["id"]: False}


async def test_clear_completed_and_its_bad_input(sidecar: SidecarProcess, sidecar_paths: SidecarPaths):
    with closing(sqlite3.connect(sidecar_paths.db, isolation_level=None)) as db:
        db.execute(
            "INSERT INTO jobs (job_id, queue, status, payload, created_at, completed_at) VALUES"
            " ('old', 'exiftool', 'completed', '{}', '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z')"
        )
    assert await sidecar.request("jobs:clearCompleted", [0]) == {"cleared": 1}
    assert await sidecar.request("jobs:clearCompleted") == {"cleared": 0}
    with pytest.raises(RpcError) as error:
        await sidecar.request("jobs:clearCompleted", [-5])
    assert error.value.code == -32602 and error.value.data["issues"][0]["path"] == "/0"


async def test_an_imports_location_stats_job_runs_and_records_its_result(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths, tmp_path: Path
):
    location = add_location(sidecar_paths.db)
    write(tmp_path / "src" / "a.jpg", 1000)
    write(tmp_path / "src" / "b.jpg", 3000)
    write(tmp_path / "src" / "c.pdf", 500)
    await sidecar.request("import:v2:start", location.start_params(tmp_path / "src"))

    # No event says "job done" (the app has none), so ask again at once after each answer; the
    # scheduler was woken by the import's commit, so there is no polling interval to wait out.
    async with asyncio.timeout(30):
        while (await sidecar.request("jobs:status"))["location-stats"]["completed"] == 0:
            pass
    [(status, result)] = rows(
        sidecar_paths.db, "SELECT status, result FROM jobs WHERE queue = 'location-stats'"
    )
    assert status == "completed"
    stats = json.loads(result)["stats"]
    assert stats["images"] == {"count": 2, "bytes": 4000}
    assert stats["documents"] == {"count": 1, "bytes": 500}
    assert stats["total"] == {"count": 3, "bytes": 4500}
