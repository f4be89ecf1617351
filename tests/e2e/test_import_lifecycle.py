"""Imports interrupted on purpose: cancel, a queue, kill -9 at every step then resume, disk full."""

import asyncio
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from sidecar.pipeline.context import PAGE_FILES
from tests.support.archive import add_location, assert_archive_invariant, org_files, rows, stat_key, write
from tests.support.client import RpcError, SidecarPaths, SidecarProcess, Spawn


def big_files(folder: Path, count: int, size: int) -> Path:
    for i in range(count):
        write(folder / f"clip_{i:03d}.mp4", size, seed=i)
    return folder


async def test_cancel_stops_removes_uncommitted_copies_and_is_final(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    client = await spawn_sidecar([*sidecar_paths.args(), "--hash-workers", "1"])
    location = add_location(sidecar_paths.db)
    source = big_files(tmp_path / "big", 12, 32 << 20)
    start = asyncio.create_task(client.request("import:v2:start", location.start_params(source)))
    # A third of the clips read: earlier windows are committed, later ones in flight or not started.
    reading = await client.notification(
        "import:v2:progress", lambda p: p["status"] == "hashing" and p["filesProcessed"] >= 4
    )
    assert await client.request("import:v2:cancel", [reading["sessionId"]]) == {"cancelled": True}
    result = await start
    assert result["status"] == "cancelled" and result["error"] == "Import cancelled"
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)
    # What was committed before the cancel stays archived, with its rows; nothing else does.
    finalized = rows(sidecar_paths.db, "SELECT count(*) FROM vids")[0][0]
    assert len(org_files(sidecar_paths.archive)) == finalized < 12
    assert await client.request("import:v2:resumable") == []
    with pytest.raises(RpcError) as error:
        await client.request("import:v2:resume", [result["sessionId"]])
    assert error.value.data["kind"] == "session_not_resumable"
    complete = await client.notification("import:v2:complete")
    assert complete["status"] == "cancelled"


@pytest.mark.parametrize("read", [0.3, 0.55, 0.8])
async def test_cancel_between_pages_leaves_no_copy_of_any_page_behind(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path, read: float
):
    """Steps walk the journal in pages, the next page's byte work overlapping the commit of the one
    before, and the steps overlap over windows of files, so while the card is read every step has
    pages in flight. A cancel when a share `read` of the card is read must remove every copy not
    committed (the pages in flight too), keep the windows already committed with their rows, and
    nothing of the cancelled import may land afterwards."""
    client = await spawn_sidecar([*sidecar_paths.args(), "--hash-workers", "1"])
    location = add_location(sidecar_paths.db)
    total = 4 * PAGE_FILES
    for i in range(total):
        write(tmp_path / "many" / f"{i // 500:02d}" / f"IMG_{i:05d}.jpg", 1024, seed=i)
    # The start call's own bound as long as the wait for its moment: 8192 files through one hash
    # worker take more than the default 30 s on a loaded machine (CI beside a benchmark did).
    start = asyncio.create_task(
        client.request("import:v2:start", location.start_params(tmp_path / "many"), timeout=180)
    )
    past_first_page = await client.notification(
        "import:v2:progress",
        lambda p: p["status"] == "hashing" and p["filesProcessed"] > total * read,
        timeout=120,
    )
    assert await client.request("import:v2:cancel", [past_first_page["sessionId"]]) == {"cancelled": True}
    result = await start
    assert result["status"] == "cancelled", result
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)
    finalized = rows(sidecar_paths.db, "SELECT count(*) FROM imgs")[0][0]
    # Committed windows stay, rows and files agreeing; the cancel stopped the rest.
    assert len(org_files(sidecar_paths.archive)) == finalized < total
    assert not (sidecar_paths.archive / ".aus-staging" / result["sessionId"]).exists()

    # The next import's byte work queues behind anything the cancelled one left in the pool.
    after = await client.request("import:v2:start", location.start_params(write(tmp_path / "next.jpg", 100)))
    assert after["status"] == "completed"
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)
    assert len(org_files(sidecar_paths.archive)) == finalized + 1


async def test_imports_run_one_at_a_time_in_order_and_a_queued_one_can_be_cancelled(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    client = await spawn_sidecar([*sidecar_paths.args(), "--hash-workers", "1"])
    location = add_location(sidecar_paths.db)
    first = asyncio.create_task(
        client.request("import:v2:start", location.start_params(big_files(tmp_path / "a", 6, 16 << 20)))
    )
    running = await client.notification("import:v2:progress")
    second = asyncio.create_task(
        client.request("import:v2:start", location.start_params(write(tmp_path / "b" / "x.jpg", 100)))
    )
    third = asyncio.create_task(
        client.request("import:v2:start", location.start_params(write(tmp_path / "c" / "y.jpg", 100)))
    )
    async with asyncio.timeout(30):
        while len((status := await client.request("import:v2:status"))["queued"]) < 2:
            await client.another_frame()  # the next progress event
    # Running, at whatever step it has reached: 96 MB may be read by the time the calls arrive.
    assert status["sessionId"] == running["sessionId"]
    assert status["status"] in ("scanning", "hashing", "copying", "validating", "finalizing"), status
    second_id, third_id = status["queued"]
    [(queued_status,)] = rows(
        sidecar_paths.db, "SELECT status FROM import_sessions WHERE session_id = ?", (second_id,)
    )
    assert queued_status == "pending"
    assert await client.request("import:v2:cancel", [second_id]) == {"cancelled": True}
    assert (await second)["status"] == "cancelled"
    assert (await first)["status"] == "completed"
    assert (await third)["sessionId"] == third_id
    order = [n["sessionId"] for n in client.of("import:v2:complete")]
    assert order == [second_id, running["sessionId"], third_id]


def many_small_files(folder: Path) -> Path:
    """3 000 distinct 2 KiB images in 10 folders: enough work that each step lasts long enough
    to be interrupted in (with one hash worker)."""
    for i in range(3000):
        write(folder / f"{i // 300:02d}" / f"IMG_{i:04d}.jpg", 2048, seed=i)
    return folder


@pytest.mark.parametrize(
    ("read", "read_once"),
    [
        (0.25, "never"),
        (0.5, "never"),
        (0.75, "never"),
        # Network sources: staged files survive the kill and are linked in on resume.
        (0.25, "always"),
        (0.75, "always"),
    ],
)
async def test_kill_at_any_step_then_resume_loses_and_duplicates_nothing(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path, read: float, read_once: str
):
    """Killed when a share `read` of the card is read: the steps overlap, so every step has work in
    flight (files in every state of the journal), and the resume ends as an uninterrupted import."""
    args = [*sidecar_paths.args(), "--hash-workers", "1", "--read-once", read_once]
    client = await spawn_sidecar(args)
    location = add_location(sidecar_paths.db)
    source = many_small_files(tmp_path / "many")
    start = asyncio.create_task(client.request("import:v2:start", location.start_params(source)))
    seen = await client.notification(
        "import:v2:progress",
        lambda p: p["status"] == "hashing" and p["filesProcessed"] > 3000 * read,
        timeout=120,
    )
    await client.kill()
    start.cancel()
    [(status,)] = rows(sidecar_paths.db, "SELECT status FROM import_sessions")
    assert status == "hashing", "the kill did not land while the card was read"
    states = {state for (state,) in rows(sidecar_paths.db, "SELECT DISTINCT state FROM aus_import_files")}
    # A step runs at most two windows ahead of the next: past the third window, copies are made.
    assert "scanned" in states and states & {"copied", "validated", "finalized"}, f"no overlap: {states}"
    journal = dict(
        rows(sidecar_paths.db, "SELECT target, state FROM aus_import_files WHERE target IS NOT NULL")
    )
    kept = {p: stat_key(p) for p in org_files(sidecar_paths.archive) if journal.get(str(p)) == "validated"}

    client = await spawn_sidecar(args)
    [resumable] = await client.request("import:v2:resumable")
    assert resumable["sessionId"] == seen["sessionId"] and resumable["status"] == "hashing"
    result = await client.request("import:v2:resume", [seen["sessionId"]], timeout=120)
    assert result["status"] == "completed", result
    assert rows(sidecar_paths.db, "SELECT count(*), count(DISTINCT imghash) FROM imgs") == [(3000, 3000)]
    assert rows(sidecar_paths.db, "SELECT img_count FROM imports") == [(3000,)]
    assert rows(sidecar_paths.db, "SELECT count(*) FROM jobs WHERE queue = 'exiftool'") == [(3000,)]
    assert {p: stat_key(p) for p in kept} == kept, "a validated file was copied again"
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)
    assert rows(sidecar_paths.db, "PRAGMA integrity_check") == [("ok",)]
    assert (await client.notification("import:v2:complete"))["status"] == "completed"
    assert not (sidecar_paths.archive / ".aus-staging" / seen["sessionId"]).exists()


@pytest.fixture
def small_archive(sidecar_paths: SidecarPaths) -> Iterator[Path]:
    """The archive on a 3 MiB tmpfs (root may mount here; refusing is a failure, not a skip)."""
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(sidecar_paths.archive)], capture_output=True
    )
    assert mounted.returncode == 0, f"cannot mount a tmpfs for the disk-full test: {mounted.stderr!r}"
    try:
        yield sidecar_paths.archive
    finally:
        subprocess.run(["umount", "-l", str(sidecar_paths.archive)], check=False)


@pytest.mark.parametrize("read_once", ["auto", "never"])
async def test_disk_full_fails_cleanly_and_resumes_once_space_is_freed(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path, small_archive: Path, read_once: str
):
    sidecar = await spawn_sidecar([*sidecar_paths.args(), "--read-once", read_once])
    location = add_location(sidecar_paths.db)
    source = big_files(tmp_path / "src", 5, 1 << 20)
    result = await sidecar.request("import:v2:start", location.start_params(source))
    assert result["status"] == "failed", result
    assert "Disk full" in result["error"]
    finalized = result["finalizationResult"]["totalFinalized"]
    if read_once == "never":
        assert 0 < finalized < 5  # the copy step filled the disk: the pages before it are kept
    else:
        assert finalized == 0  # staging its single reads filled the disk, at the hash step
    assert_archive_invariant(sidecar_paths.db, small_archive)
    [resumable] = await sidecar.request("import:v2:resumable")
    assert resumable["sessionId"] == result["sessionId"]

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_archive)], check=True)
    resumed = await sidecar.request("import:v2:resume", [result["sessionId"]])
    assert resumed["status"] == "completed"
    assert rows(sidecar_paths.db, "SELECT count(*) FROM vids") == [(5,)]
    assert_archive_invariant(sidecar_paths.db, small_archive)


async def test_shutdown_during_an_import_leaves_it_resumable(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    args = [*sidecar_paths.args(), "--hash-workers", "1"]
    client = await spawn_sidecar(args)
    location = add_location(sidecar_paths.db)
    start = asyncio.create_task(
        client.request("import:v2:start", location.start_params(big_files(tmp_path / "big", 10, 24 << 20)))
    )
    # A third of the clips read: the steps overlap, so every step has work in flight.
    copying = await client.notification(
        "import:v2:progress", lambda p: p["status"] == "hashing" and p["filesProcessed"] >= 3
    )
    assert await client.request("sidecar:shutdown") == {"ok": True}
    with pytest.raises(RpcError) as error:
        await start
    assert error.value.data["kind"] == "shutting_down"
    assert await client.wait_exit(10) == 0

    client = await spawn_sidecar(args)
    [resumable] = await client.request("import:v2:resumable")
    assert resumable["sessionId"] == copying["sessionId"]
    result = await client.request("import:v2:resume", [copying["sessionId"]], timeout=120)
    assert result["status"] == "completed"
    assert rows(sidecar_paths.db, "SELECT count(*) FROM vids") == [(10,)]
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)
    with closing(sqlite3.connect(sidecar_paths.db)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_sources_that_change_or_vanish_after_hashing_are_per_file_errors(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    """Kill the sidecar once its first page is hashed (held there by a failpoint: the first
    window's copy cannot have begun), change and delete two of that page's sources, resume:
    validation catches the changed file, the vanished one is a copy error, the rest imports."""
    args = [*sidecar_paths.args(), "--hash-workers", "1"]
    client = await spawn_sidecar(args, env={"AUS_FAILPOINTS": "hash.commit.after=1"})
    location = add_location(sidecar_paths.db)
    source = many_small_files(tmp_path / "many")
    start = asyncio.create_task(client.request("import:v2:start", location.start_params(source)))
    await client.logged("failpoint.reached", timeout=120)
    [(session,)] = rows(sidecar_paths.db, "SELECT session_id FROM import_sessions")
    await client.kill()
    start.cancel()
    changed, vanished = source / "00" / "IMG_0000.jpg", source / "00" / "IMG_0001.jpg"
    assert rows(
        sidecar_paths.db,
        "SELECT count(*) FROM aus_import_files WHERE state = 'hashed' AND source IN (?, ?)",
        (bytes(changed), bytes(vanished)),
    ) == [(2,)], "both files must still be waiting to be copied"
    write(changed, 2048, seed=-1)
    vanished.unlink()

    client = await spawn_sidecar(args)
    result = await client.request("import:v2:resume", [session], timeout=120)
    assert result["status"] == "completed"
    errors = {e["path"]: e for e in result["errors"]}
    assert errors.keys() == {str(changed), str(vanished)}
    assert errors[str(changed)]["step"] == "validate" and "Hash mismatch" in errors[str(changed)]["message"]
    assert errors[str(vanished)]["step"] == "copy"
    assert rows(sidecar_paths.db, "SELECT count(*) FROM imgs") == [(2998,)]
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)


async def test_progress_is_live_coalesced_and_estimates_time_left(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    client = await spawn_sidecar([*sidecar_paths.args(), "--hash-workers", "1"])
    location = add_location(sidecar_paths.db)
    source = many_small_files(tmp_path / "many")
    write(source / "00" / "twin.jpg", (source / "00" / "IMG_0000.jpg").read_bytes())
    loop = asyncio.get_running_loop()
    began = loop.time()
    result = await client.request("import:v2:start", location.start_params(source), timeout=120)
    elapsed_ms = (loop.time() - began) * 1000
    assert result["status"] == "completed"
    progress = client.of("import:v2:progress")
    # At most one per 100 ms, plus one per step change and the end (generous slack for timer edges).
    assert len(progress) <= elapsed_ms / 100 + 12, (len(progress), elapsed_ms)
    assert [p["percent"] for p in progress] == sorted(p["percent"] for p in progress)
    byte_steps = [p for p in progress if p["status"] in ("hashing", "copying", "validating")]
    assert all(p["filesTotal"] == 3001 for p in byte_steps)
    # Live within a step, not only at its ends.
    mid_step = [p for p in byte_steps if 0 < p["filesProcessed"] < 3001]
    assert any(0 < p["bytesProcessed"] < p["bytesTotal"] for p in mid_step)
    assert any(p["duplicatesFound"] == 1 for p in progress if p["status"] in ("hashing", "copying"))
    assert any(p["estimatedRemainingMs"] > 0 for p in progress if p["status"] in ("copying", "validating"))
    assert progress[-1]["estimatedRemainingMs"] == 0


@pytest.fixture
def read_only_archive(sidecar_paths: SidecarPaths) -> Iterator[Path]:
    for options in ("size=8m", "remount,ro"):
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(sidecar_paths.archive)], capture_output=True
        )
        assert done.returncode == 0, f"cannot mount a read-only tmpfs: {done.stderr!r}"
    try:
        yield sidecar_paths.archive
    finally:
        subprocess.run(["umount", "-l", str(sidecar_paths.archive)], check=False)


async def test_a_read_only_archive_fails_clearly(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths, tmp_path: Path, read_only_archive: Path
):
    location = add_location(sidecar_paths.db)
    result = await sidecar.request("import:v2:start", location.start_params(write(tmp_path / "a.jpg", 100)))
    assert result["status"] == "failed"
    assert result["error"] == f"Archive folder is not writable: {read_only_archive}"
    assert (await sidecar.notification("import:v2:complete"))["status"] == "failed"
