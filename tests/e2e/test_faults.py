"""Faults the world causes, each through the real sidecar process: a full disk under the database,
an archive drive that goes away, unreadable sources, sources that change or vanish while they are
imported, the app holding the database, external tools that hang or crash.

Each must end in a clear per-file error or a clear failed, resumable session: never a crash, a
partial file or a wrong row (SPEC §6 "Invariant", §10 "Reliability").
"""

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from sidecar.db import connection
from sidecar.db.connection import Database
from sidecar.jobs.handlers import JobContext, JobHandler
from sidecar.jobs.handlers.exiftool import exiftool_handler
from sidecar.jobs.handlers.ffprobe import ffprobe
from sidecar.jobs.handlers.video_proxy import video_proxy
from sidecar.jobs.scheduler import JobScheduler
from sidecar.jobs.store import JobStore, NewJob, Queue, insert_jobs
from sidecar.timestamps import now_iso
from sidecar.tools.discovery import Tool, Toolset
from sidecar.tools.exiftool import ExifToolPool
from tests.support.archive import (
    add_location,
    add_media_row,
    assert_archive_invariant,
    hash16,
    org_files,
    plant_dead_letter,
    rows,
    stat_key,
    write,
)
from tests.support.client import RpcError, SidecarPaths, Spawn
from tests.support.inotify import IN_ISDIR, IN_OPEN, Inotify
from tests.support.jobs import RecordedEvents
from tests.support.media import make_jpeg, make_video

MEDIA_ROWS = "SELECT imgloc, imghash FROM imgs UNION ALL SELECT vidloc, vidhash FROM vids"


class Mounts:
    """tmpfs mounts made by a test, lazily unmounted at its end (root may mount here; a machine
    that refuses skips the test, naming why)."""

    def __init__(self) -> None:
        self.points: list[Path] = []

    def tmpfs(self, point: Path, size: str) -> Path:
        point.mkdir(parents=True, exist_ok=True)
        self._mount(["-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], point)
        return point

    def bind(self, source: Path, point: Path) -> Path:
        self._mount(["--bind", str(source), str(point)], point)
        return point

    def _mount(self, args: list[str], point: Path) -> None:
        done = subprocess.run(["mount", *args], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"this machine refuses `mount {' '.join(args)}`: {done.stderr.strip()}")
        self.points.append(point)

    def unmount(self, point: Path) -> None:
        subprocess.run(["umount", "-l", str(point)], check=True)
        self.points.remove(point)


@pytest.fixture
def mounts() -> Iterator[Mounts]:
    made = Mounts()
    yield made
    for point in reversed(made.points):
        subprocess.run(["umount", "-l", str(point)], check=False)


def small_images(folder: Path, count: int = 3000, per_folder: int = 300) -> Path:
    """Distinct 2 KiB images in folders of `per_folder`: with one hash worker, every step lasts
    long enough to be interrupted in."""
    for i in range(count):
        write(folder / f"{i // per_folder:03d}" / f"IMG_{i:04d}.jpg", 2048, seed=i)
    return folder


def fill(disk: Path) -> Path:
    """Take every free byte of a filesystem; returns the file holding them."""
    ballast = disk / "ballast"
    with open(ballast, "wb") as file:
        # The import writes beside us: what was free a moment ago may be taken by the time we ask
        # for it, so ask again for what is left until nothing is.
        for _ in range(100):
            stats = os.statvfs(disk)
            if stats.f_bavail == 0:
                break
            with contextlib.suppress(OSError):  # ENOSPC: another writer took some of it first
                os.posix_fallocate(
                    file.fileno(), os.fstat(file.fileno()).st_size, stats.f_bavail * stats.f_frsize
                )
    assert os.statvfs(disk).f_bavail == 0
    return ballast


def assert_rows_are_whole(db: Path) -> None:
    """No half-written rows: every media row's file exists with its hash, the import's counts and
    the metadata jobs match the rows, and SQLite finds nothing wrong."""
    media = rows(db, MEDIA_ROWS)
    for location, digest in media:
        assert Path(location).is_file() and hash16(Path(location)) == digest, location
    assert rows(db, "SELECT coalesce(sum(img_count + vid_count), 0) FROM imports") == [(len(media),)]
    assert rows(db, "SELECT count(*) FROM jobs WHERE queue = 'exiftool'") == [(len(media),)]
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]


def assert_journal_matches_the_disk(paths: SidecarPaths) -> None:
    """After a failure the database could not record: an archived file without a row is one the
    journal still holds as copied or validated (the resume validates and finalizes it in place),
    and no copy the journal counts on was removed (a resume would write rows for files that are
    gone)."""
    journal = dict(rows(paths.db, "SELECT target, state FROM aus_import_files WHERE target IS NOT NULL"))
    with_rows = {location for location, _ in rows(paths.db, MEDIA_ROWS)}
    for file in org_files(paths.archive):
        assert str(file) in with_rows or journal.get(str(file)) in ("copied", "validated"), file
    for target, state in journal.items():
        assert state not in ("copied", "validated") or Path(target).is_file(), target


# -- 1. the database's disk fills up during finalize ----------------------------------------------


async def test_a_full_database_disk_during_finalize_fails_cleanly_and_resumes_once_space_is_freed(
    mounts: Mounts, spawn_sidecar: Spawn, tmp_path: Path
):
    """The database on a 16 MiB tmpfs that the test fills once the first windows are committed and
    while later ones are read: the import cannot write its journal or its rows, fails saying so,
    nothing it wrote is half there, and once space is freed the resume completes."""
    db_disk = mounts.tmpfs(tmp_path / "db-disk", "16m")
    paths = SidecarPaths(db=db_disk / "au-archive.db", archive=tmp_path / "archive")
    paths.archive.mkdir()
    client = await spawn_sidecar([*paths.args(), "--hash-workers", "1"])
    location = add_location(paths.db)
    source = small_images(tmp_path / "src")
    start = asyncio.create_task(client.request("import:v2:start", location.start_params(source), timeout=120))

    def committing(p: dict[str, Any]) -> bool:
        return p["status"] in ("hashing", "copying") and rows(paths.db, "SELECT count(*) FROM imgs")[0][0] > 0

    await client.notification("import:v2:progress", committing, timeout=120)
    ballast = fill(db_disk)

    result = await start

    assert result["status"] == "failed", result
    assert result["error"] == f"Disk full: the database cannot grow ({paths.db})"
    # Whichever step's commit found the disk full first, the session is resumable.
    [(last_step, can_resume)] = rows(paths.db, "SELECT last_step, can_resume FROM import_sessions")
    assert last_step >= 2 and can_resume == 1
    finalized = result["finalizationResult"]["totalFinalized"]
    assert finalized < 3000
    assert rows(paths.db, "SELECT count(*) FROM imgs") == [(finalized,)]
    assert_rows_are_whole(paths.db)
    assert (await client.notification("import:v2:complete"))["status"] == "failed"
    assert_journal_matches_the_disk(paths)
    [resumable] = await client.request("import:v2:resumable")
    assert resumable["sessionId"] == result["sessionId"]

    ballast.unlink()
    resumed = await client.request("import:v2:resume", [result["sessionId"]], timeout=120)

    assert resumed["status"] == "completed", resumed
    assert rows(paths.db, "SELECT count(*), count(DISTINCT imghash) FROM imgs") == [(3000, 3000)]
    assert_rows_are_whole(paths.db)
    assert_archive_invariant(paths.db, paths.archive)
    assert len(org_files(paths.archive)) == 3000


# -- 2. the archive's drive goes away mid-import ---------------------------------------------------


def big_files(folder: Path, count: int, size: int) -> Path:
    for i in range(count):
        write(folder / f"clip_{i:03d}.mp4", size, seed=i)
    return folder


async def test_an_archive_drive_that_goes_away_mid_copy_fails_the_import_and_the_resume_finishes_it(
    mounts: Mounts, spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    """The archive is a drive (a tmpfs, also mounted at `drive/` so its contents outlive the
    unplugging) that is lazily unmounted while files are copied onto it. What is left at the
    archive path is the bare mount point on another disk: the import must not go on filling it.
    It fails saying so, leaves nothing there, and once the drive is back the resume finishes,
    keeping the copies the drive already has."""
    drive = mounts.tmpfs(tmp_path / "drive", "1g")
    archive = mounts.bind(drive, sidecar_paths.archive)
    # Read twice, so the archive's writes are the copy step's (read once, the hash step stages them).
    client = await spawn_sidecar([*sidecar_paths.args(), "--hash-workers", "1", "--read-once", "never"])
    location = add_location(sidecar_paths.db)
    source = big_files(tmp_path / "src", 24, 16 << 20)
    start = asyncio.create_task(client.request("import:v2:start", location.start_params(source), timeout=120))
    # A third of the clips read: the first windows copied, later ones being read.
    await client.notification(
        "import:v2:progress", lambda p: p["status"] == "hashing" and p["filesProcessed"] >= 8, timeout=120
    )
    mounts.unmount(archive)  # unplugged

    result = await start

    assert result["status"] == "failed", result
    assert result["error"] == f"Archive folder vanished during the import: {archive}"
    assert result["errors"] == []  # the archive failed, not the files
    assert [p for p in archive.rglob("*") if not p.is_dir()] == [], "copies went on to the wrong disk"
    # The windows committed before the drive went away stay archived (on the drive); the rest is
    # hashed again, or was never read, for the resume.
    [(finalized,)] = rows(sidecar_paths.db, "SELECT count(*) FROM aus_import_files WHERE state = 'finalized'")
    assert rows(sidecar_paths.db, "SELECT count(*) FROM vids") == [(finalized,)] and finalized < 24
    states = {s for (s,) in rows(sidecar_paths.db, "SELECT DISTINCT state FROM aus_import_files")}
    assert states <= {"scanned", "hashed", "finalized"}, states
    [resumable] = await client.request("import:v2:resumable")
    assert resumable["sessionId"] == result["sessionId"]

    mounts.bind(drive, archive)  # plugged in again
    on_the_drive = {p: stat_key(p) for p in org_files(archive)}
    for copy in on_the_drive:  # whole under their final names (a cut-off copy is a hidden temp)
        assert copy.name == f"{hash16(copy)}.mp4", copy
    resumed = await client.request("import:v2:resume", [result["sessionId"]], timeout=120)

    assert resumed["status"] == "completed", resumed
    assert rows(sidecar_paths.db, "SELECT count(*), count(DISTINCT vidhash) FROM vids") == [(24, 24)]
    assert {p: stat_key(p) for p in on_the_drive} == on_the_drive, "a copy on the drive was made again"
    assert_archive_invariant(sidecar_paths.db, archive)  # no temp file either
    assert len(org_files(archive)) == 24


# -- 3. unreadable sources --------------------------------------------------------------------------


def unprivileged() -> list[str]:
    """A prefix that runs the sidecar without root's power to read anything: root keeps its uid
    but loses CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so permission bits bind it as they bind
    any user. (Another user could not run this checkout: its Python lives under /root, mode 700.)"""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to take root's read-anything capabilities away")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--"]


async def test_unreadable_files_and_folders_are_per_file_errors_naming_the_permission(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    source = tmp_path / "card"
    readable = [write(source / f"IMG_{i}.jpg", 1000, seed=i) for i in range(3)]
    readable.append(write(source / "sub" / "IMG_9.jpg", 1000, seed=9))
    locked_file = write(source / "LOCKED.jpg", 1000, seed=10)
    locked_folder = source / "private"
    write(locked_folder / "a.jpg", 1000, seed=11)
    unsearchable = source / "listable-only"  # names can be listed, nothing in it can be reached
    write(unsearchable / "b.jpg", 1000, seed=12)
    modes = {locked_file: 0o000, locked_folder: 0o000, unsearchable: 0o444}
    for path, mode in modes.items():
        path.chmod(mode)
    prefix = unprivileged()
    if prefix:
        assert subprocess.run([*prefix, "cat", str(locked_file)], capture_output=True).returncode != 0
    try:
        client = await spawn_sidecar(sidecar_paths.args(), prefix=prefix)
        location = add_location(sidecar_paths.db)
        result = await client.request("import:v2:start", location.start_params(source))
    finally:
        for path in modes:
            path.chmod(0o755)

    assert result["status"] == "completed", result
    assert {e["path"]: (e["step"], e["message"]) for e in result["errors"]} == {
        str(locked_folder): ("scan", "Permission denied: cannot read folder"),
        str(unsearchable / "b.jpg"): ("scan", "Permission denied: cannot read file"),
        str(locked_file): ("hash", "Permission denied"),
    }
    assert result["finalizationResult"]["totalFinalized"] == len(readable)
    assert sorted(hash16(p) for p in readable) == sorted(
        d for (d,) in rows(sidecar_paths.db, "SELECT imghash FROM imgs")
    )
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)
    assert (await client.notification("import:v2:complete"))["totalErrors"] == 3


# -- 4. sources that change between their hash and their copy ---------------------------------------


async def test_sources_truncated_grown_or_rewritten_after_hashing_fail_alone_and_leave_no_copy(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    """A live import (no restart, unlike the lifecycle test): three files of its first page, hashed
    but not yet copied, are cut short, appended to and rewritten while the sidecar waits at that
    page's commit (a failpoint, let go with SIGUSR1: waiting for the status `copying` instead let
    the copy win the race now and then). Each is a per-file error; no copy of theirs stays in the
    archive; the other 2997 are imported."""
    client = await spawn_sidecar(
        [*sidecar_paths.args(), "--hash-workers", "1"], env={"AUS_FAILPOINTS": "hash.commit.inside=1"}
    )
    location = add_location(sidecar_paths.db)
    source = small_images(tmp_path / "src")
    truncated, grown, rewritten = (source / "000" / f"IMG_{i:04d}.jpg" for i in (0, 1, 2))
    start = asyncio.create_task(client.request("import:v2:start", location.start_params(source), timeout=120))
    await client.logged("failpoint.reached", timeout=120)
    os.truncate(truncated, 1000)
    with grown.open("ab") as file:
        file.write(b"more")
    write(rewritten, 2048, seed=-1)
    client.let_failpoint_go()

    result = await start

    assert result["status"] == "completed", result
    errors = {e["path"]: e for e in result["errors"]}
    assert errors.keys() == {str(truncated), str(grown), str(rewritten)}
    for error in errors.values():
        # Caught copying (the size changed under the copier) or by validation (the copy's hash).
        assert (error["step"], error["message"].split(":")[0]) in {
            ("copy", "The source changed while it was copied"),
            ("validate", "Hash mismatch"),
        }, error
    assert result["finalizationResult"]["totalFinalized"] == 2997
    assert rows(sidecar_paths.db, "SELECT count(*) FROM imgs") == [(2997,)]
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)
    assert len(org_files(sidecar_paths.archive)) == 2997


# -- 5. a source folder removed while the scan walks ----------------------------------------------


async def test_a_source_folder_removed_mid_scan_is_reported_and_the_counts_add_up(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    """1000 folders of 3 files, the scan writing each folder as it completes (a commit each); the
    last folder is removed the moment the scan opens the 500th (inotify), 499 commits before it
    reaches it. Its files are errors (or simply absent), never a crash; every other file is
    imported, and the result's counts agree with each other and with the rows."""
    client = await spawn_sidecar([*sidecar_paths.args(), "--hash-workers", "1"])
    location = add_location(sidecar_paths.db)
    source = small_images(tmp_path / "src", per_folder=3)
    removed = source / "999"
    gone = asyncio.Event()

    def on_open(_: Path, name: str, mask: int) -> None:
        if not name and mask & IN_ISDIR and not gone.is_set():  # the folder itself was listed
            shutil.rmtree(removed)
            gone.set()

    inotify = Inotify(on_open)
    try:
        inotify.watch(source / "500", IN_OPEN)
        start = asyncio.create_task(
            client.request("import:v2:start", location.start_params(source), timeout=120)
        )
        async with asyncio.timeout(120):
            await gone.wait()
        result = await start
    finally:
        inotify.close()

    assert result["status"] == "completed", result
    assert result["errors"], "the removal came after the scan: the race this test sets up was lost"
    for error in result["errors"]:
        assert error["path"] == str(removed) or Path(error["path"]).parent == removed, error
        assert error["step"] == "scan" and "vanished during scan" in error["message"], error
    finalized = result["finalizationResult"]["totalFinalized"]
    assert finalized == 2997
    assert result["scanResult"]["totalFiles"] == finalized + result["hashResult"]["totalErrors"]
    assert rows(sidecar_paths.db, "SELECT count(*) FROM imgs") == [(finalized,)]
    assert rows(sidecar_paths.db, "SELECT img_count FROM imports") == [(finalized,)]
    complete = await client.notification("import:v2:complete")
    assert complete["totalImported"] == finalized and complete["totalErrors"] == len(result["errors"])
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)


# -- 6. the app holds the database longer than our busy timeout -----------------------------------

# A second process holding the write lock, as the running app can: it says "locked", holds for the
# given seconds, then commits.
HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


async def hold_database(db: Path, seconds: float) -> asyncio.subprocess.Process:
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD_LOCK, str(db), str(seconds), stdout=asyncio.subprocess.PIPE
    )
    assert holder.stdout is not None
    async with asyncio.timeout(10):
        assert await holder.stdout.readline() == b"locked\n"
    return holder


async def test_the_database_held_by_another_process_past_the_busy_timeout_fails_the_import_resumably(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    """The lock is taken as the scan is about to record its first folder (held there by a
    failpoint, let go once the lock is taken) and held 12 s (the busy timeout is 10 s): that
    journal write gives up, the import fails saying why, the failure is recorded once the lock
    goes, and the resume imports everything once."""
    assert connection.BUSY_TIMEOUT_S == 10.0, "the hold below must outlast the busy timeout"
    client = await spawn_sidecar(
        [*sidecar_paths.args(), "--hash-workers", "1"], env={"AUS_FAILPOINTS": "scan.commit.before=1"}
    )
    location = add_location(sidecar_paths.db)
    source = small_images(tmp_path / "src", per_folder=30)  # a journal write per folder
    start = asyncio.create_task(client.request("import:v2:start", location.start_params(source), timeout=60))
    await client.logged("failpoint.reached")
    holder = await hold_database(sidecar_paths.db, 12.0)
    client.let_failpoint_go()
    # Reads never wait behind a writer (WAL): the app's status calls keep answering.
    assert (await client.request("import:v2:status", timeout=5))["status"] != "idle"
    await client.request("jobs:status", timeout=5)

    result = await start

    assert await holder.wait() == 0
    assert result["status"] == "failed", result
    assert result["error"] == (f"Database locked by another process for more than 10 s ({sidecar_paths.db})")
    assert rows(sidecar_paths.db, "SELECT status, can_resume, error FROM import_sessions") == [
        ("failed", 1, result["error"])
    ]
    assert rows(sidecar_paths.db, "SELECT count(*) FROM imgs") == [(0,)]
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)
    [resumable] = await client.request("import:v2:resumable")
    assert resumable["sessionId"] == result["sessionId"]

    resumed = await client.request("import:v2:resume", [result["sessionId"]], timeout=120)

    assert resumed["status"] == "completed", resumed
    assert resumed["finalizationResult"]["totalFinalized"] == 3000
    assert rows(sidecar_paths.db, "SELECT count(*), count(DISTINCT imghash) FROM imgs") == [(3000, 3000)]
    assert_rows_are_whole(sidecar_paths.db)
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)


@contextmanager
def holding_database(db: Path) -> Iterator[None]:
    """The write lock held by this (test) process, as the running app can, until the block ends."""
    with closing(sqlite3.connect(db, isolation_level=None)) as app:
        app.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            app.execute("ROLLBACK")


def assert_no_import_written(db: Path) -> None:
    for table in ("import_sessions", "aus_import_sessions", "aus_import_files", "imports", "imgs"):
        assert rows(db, f"SELECT count(*) FROM {table}") == [(0,)], table


async def test_an_import_started_while_the_app_holds_the_database_is_refused_as_busy_and_leaves_nothing(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    """The session row is a start's first write: past the busy timeout the request is refused as
    database_busy (not an internal error), having written and queued nothing, while the sidecar
    keeps answering; once the lock goes the same request imports."""
    assert connection.BUSY_TIMEOUT_S == 10.0, "the request below waits out the busy timeout"
    client = await spawn_sidecar(sidecar_paths.args())
    location = add_location(sidecar_paths.db)
    source = small_images(tmp_path / "src", count=3)
    refused_by = connection.BUSY_TIMEOUT_S + 8  # the other writers' waits must not add up
    with holding_database(sidecar_paths.db):
        # Other writes queue on the sidecar's one writer too; they take turns at the app's lock,
        # so each is refused once the lock has been held for the busy timeout, not after the
        # writes before it each waited it out.
        others = [
            asyncio.create_task(client.request("jobs:acknowledge", [[999_999]], timeout=refused_by))
            for _ in range(4)
        ]
        start = asyncio.create_task(
            client.request("import:v2:start", location.start_params(source), timeout=refused_by)
        )
        assert (await client.request("sidecar:info", timeout=5))["dbPath"] == str(sidecar_paths.db)
        assert (await client.request("import:v2:status", timeout=5))["queued"] == []
        with pytest.raises(RpcError) as refused:
            await start
        for other in others:
            with pytest.raises(RpcError, match="Database locked"):
                await other

    assert (refused.value.code, refused.value.data) == (
        1008,
        {"kind": "database_busy", "dbPath": str(sidecar_paths.db)},
    )
    assert (
        refused.value.message == f"Database locked by another process for more than 10 s ({sidecar_paths.db})"
    )
    assert_no_import_written(sidecar_paths.db)
    assert await client.request("import:v2:resumable") == []
    assert client.of("import:v2:complete") == []

    result = await client.request("import:v2:start", location.start_params(source), timeout=60)

    assert result["status"] == "completed", result
    assert result["finalizationResult"]["totalFinalized"] == 3
    assert rows(sidecar_paths.db, "SELECT status FROM import_sessions") == [("completed",)]
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)


async def test_acknowledging_dead_letters_while_the_app_holds_the_database_is_refused_as_busy(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths
):
    """jobs:acknowledge must write before it answers: refused as database_busy past the busy
    timeout, the entry untouched; once the lock goes the same request acknowledges it."""
    client = await spawn_sidecar(sidecar_paths.args())
    entry = plant_dead_letter(sidecar_paths.db, "thumbnail", {"hash": "0123456789abcdef"}, now_iso())
    with holding_database(sidecar_paths.db):
        acknowledge = asyncio.create_task(client.request("jobs:acknowledge", [[entry]]))
        assert (await client.request("sidecar:info", timeout=5))["dbPath"] == str(sidecar_paths.db)
        with pytest.raises(RpcError) as refused:
            await acknowledge

    assert (refused.value.code, refused.value.data["kind"]) == (1008, "database_busy")
    assert refused.value.message.startswith("Database locked by another process for more than 10 s")
    assert rows(sidecar_paths.db, "SELECT acknowledged FROM job_dead_letter") == [(0,)]

    assert await client.request("jobs:acknowledge", [[entry]]) == {"acknowledged": 1}


async def test_an_import_started_on_a_full_database_disk_is_refused_as_full_and_runs_once_space_is_freed(
    mounts: Mounts, spawn_sidecar: Spawn, tmp_path: Path
):
    """The database on a full 16 MiB tmpfs: the session row cannot be written, so the request is
    refused as database_full having written and queued nothing; freed, the same request imports."""
    db_disk = mounts.tmpfs(tmp_path / "db-disk", "16m")
    paths = SidecarPaths(db=db_disk / "au-archive.db", archive=tmp_path / "archive")
    paths.archive.mkdir()
    client = await spawn_sidecar(paths.args())
    location = add_location(paths.db)
    source = small_images(tmp_path / "src", count=3)
    ballast = fill(db_disk)

    with pytest.raises(RpcError) as refused:
        await client.request("import:v2:start", location.start_params(source))

    assert (refused.value.code, refused.value.data) == (
        1009,
        {"kind": "database_full", "dbPath": str(paths.db)},
    )
    assert refused.value.message == f"Disk full: the database cannot grow ({paths.db})"
    assert_no_import_written(paths.db)
    assert (await client.request("import:v2:status", timeout=5))["queued"] == []

    ballast.unlink()
    result = await client.request("import:v2:start", location.start_params(source), timeout=60)

    assert result["status"] == "completed", result
    assert rows(paths.db, "SELECT status FROM import_sessions") == [("completed",)]
    assert_archive_invariant(paths.db, paths.archive)


@asynccontextmanager
async def scheduler_running(
    store: JobStore,
    handlers: Mapping[Queue, JobHandler],
    *,
    tools: Toolset | None = None,
    archive: Path | None = None,
    timeouts_s: Mapping[Queue, float] | None = None,
) -> AsyncIterator[RecordedEvents]:
    """The real scheduler over `store` with these handlers, stopped at the end."""
    events = RecordedEvents()

    async def toolset() -> Toolset:
        return tools or Toolset(None, None, None)

    async def archive_root() -> str | None:
        return None if archive is None else str(archive)

    scheduler = JobScheduler(
        store,
        handlers,
        tools=toolset,
        archive_root=archive_root,
        events=events,
        timeouts_s=timeouts_s,
    )
    task = asyncio.create_task(scheduler.run(), name="jobs-under-test")
    scheduler.wake()
    try:
        yield events
    finally:
        await scheduler.stop(0)
        async with asyncio.timeout(10):
            await task


async def add_jobs(db: Database, *jobs: NewJob, max_attempts: int | None = None) -> None:
    async with db.transaction() as conn:
        await insert_jobs(conn, jobs, now_iso())
        if max_attempts is not None:
            await conn.execute("UPDATE jobs SET max_attempts = ?", (max_attempts,))


async def test_a_job_that_ends_while_the_app_holds_the_database_is_recorded_once_it_lets_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A job's end could not be written past the busy timeout; it stayed `processing` until the
    sidecar restarted (nothing else claims it). Now the end is written once the lock goes. The
    busy timeout is shortened here so the test holds the lock for a moment, not 10 s."""
    monkeypatch.setattr(connection, "BUSY_TIMEOUT_S", 0.2)
    db_path = tmp_path / "au-archive.db"
    db = await Database.open(db_path)
    refused, recorded = asyncio.Event(), asyncio.Event()

    class Store(JobStore):
        async def complete(
            self, job_id: str, result: dict[str, Any] | None, *, worker_id: str
        ) -> list[Queue] | None:
            try:
                unblocked = await super().complete(job_id, result, worker_id=worker_id)
            except sqlite3.OperationalError:
                refused.set()
                raise
            recorded.set()
            return unblocked

    handler_running, finish = asyncio.Event(), asyncio.Event()

    async def handler(job: JobContext) -> dict[str, Any]:
        handler_running.set()
        await finish.wait()
        return {"done": True}

    job = NewJob(Queue.LOCATION_STATS, {"locid": "x"})
    try:
        await add_jobs(db, job)
        async with scheduler_running(Store(db), {Queue.LOCATION_STATS: handler}):
            async with asyncio.timeout(10):
                await handler_running.wait()
            with closing(sqlite3.connect(db_path, isolation_level=None)) as app:
                app.execute("BEGIN IMMEDIATE")
                finish.set()
                async with asyncio.timeout(10):
                    await refused.wait()  # the job's end waited out the busy timeout
                app.execute("COMMIT")
            async with asyncio.timeout(10):
                await recorded.wait()
        assert rows(db_path, "SELECT status, attempts, result FROM jobs") == [
            ("completed", 1, '{"done":true}')
        ]
    finally:
        await db.close()


async def test_a_retry_already_due_when_its_failure_is_written_still_runs(tmp_path: Path):
    """A failure written late (the app held the database longer than the job's backoff) lands
    with a retry time already past, and the queue scheduled wake-ups only for retries still to
    come: the job sat pending until something else woke its queue. A zero backoff is that case
    without the wait. (A queue of two slots: a full claim looks again anyway.)"""
    db = await Database.open(tmp_path / "au-archive.db")
    tries: list[int] = []
    retried = asyncio.Event()

    async def handler(job: JobContext) -> dict[str, Any]:
        tries.append(job.attempt)
        if job.attempt == 1:
            raise RuntimeError("first try fails")
        retried.set()
        return {"attempt": job.attempt}

    try:
        await add_jobs(db, NewJob(Queue.THUMBNAIL, {"hash": "0" * 16}))
        async with scheduler_running(JobStore(db, backoff_base_s=0.0), {Queue.THUMBNAIL: handler}):
            async with asyncio.timeout(10):
                await retried.wait()
        assert tries == [1, 2]
        assert rows(tmp_path / "au-archive.db", "SELECT status, attempts FROM jobs") == [("completed", 2)]
    finally:
        await db.close()


# -- 7. external tools that hang or crash ---------------------------------------------------------


def fake_tool(path: Path, name: str, body: str) -> Tool:
    """A stand-in for a tool that hangs or crashes (sh): it answers the version probe like the
    real one, then runs `body`."""
    version = "13.00" if name == "exiftool" else f"{name} version 9.9-fake"
    path.write_text(f'#!/bin/sh\ncase "$1" in -ver|-version) echo "{version}"; exit 0;; esac\n{body}\n')
    path.chmod(0o755)
    return Tool(path=str(path), version=version)


def hangs(pid_file: Path) -> str:
    """Say who it is, then hang: `exec` keeps the pid the sidecar started (and must kill)."""
    return f'echo $$ >> "{pid_file}"\nexec sleep 600'


def started_pids(pid_file: Path) -> list[int]:
    return [int(line) for line in pid_file.read_text().split()]


def alive(pid: int) -> bool:
    """Running, or dead but never reaped (a zombie answers signal 0 too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def real_tool(name: str) -> Tool:
    path = shutil.which(name)
    assert path is not None, f"scripts/setup installs {name}"
    return Tool(path=path, version="real")


async def test_a_hanging_exiftool_times_out_is_killed_and_the_next_try_gets_a_fresh_one(tmp_path: Path):
    db = await Database.open(tmp_path / "au-archive.db")
    pid_file = tmp_path / "exiftool.pids"
    exiftool = fake_tool(tmp_path / "exiftool", "exiftool", hangs(pid_file))
    photo = make_jpeg(tmp_path / "a.jpg", 64, 48)
    pool = ExifToolPool(1)
    payload = {"hash": hash16(photo), "mediaType": "image", "archivePath": str(photo)}
    try:
        await add_jobs(db, NewJob(Queue.EXIFTOOL, payload), max_attempts=2)
        async with scheduler_running(
            JobStore(db, backoff_base_s=0.001),
            {Queue.EXIFTOOL: exiftool_handler(pool)},
            tools=Toolset(exiftool, None, None),
            timeouts_s={Queue.EXIFTOOL: 1.0},
        ) as events:
            async with asyncio.timeout(20):
                dead = await events.dead.get()
        assert (dead["error"], dead["attempts"]) == ("timed out after 1 s", 2)
        tries = started_pids(pid_file)
        assert len(tries) == 2, "the hung process was reused for the second try"
        assert [pid for pid in tries if alive(pid)] == [], "a timed-out exiftool outlived its job"
    finally:
        await pool.close()
        await db.close()


async def test_a_hanging_ffmpeg_times_out_is_killed_and_leaves_no_partial_proxy(tmp_path: Path):
    db_path = tmp_path / "au-archive.db"
    db = await Database.open(db_path)
    location = add_location(db_path)
    clip = make_video(tmp_path / "archive" / "org-vid" / "clip.mp4")
    digest = add_media_row(db_path, "video", clip, location.locid)
    pid_file, written = tmp_path / "ffmpeg.pids", tmp_path / "ffmpeg.wrote"
    # It starts its output (the last argument) and then hangs, as a stuck transcode does.
    ffmpeg = fake_tool(
        tmp_path / "ffmpeg",
        "ffmpeg",
        f'for out; do :; done\nprintf partial > "$out"\necho "$out" > "{written}"\n{hangs(pid_file)}',
    )
    payload = {"hash": digest, "mediaType": "video", "archivePath": str(clip)}
    try:
        await add_jobs(db, NewJob(Queue.VIDEO_PROXY, payload), max_attempts=1)
        async with scheduler_running(
            JobStore(db),
            {Queue.VIDEO_PROXY: video_proxy},
            tools=Toolset(None, real_tool("ffprobe"), ffmpeg),
            timeouts_s={Queue.VIDEO_PROXY: 1.0},
        ) as events:
            async with asyncio.timeout(20):
                dead = await events.dead.get()
        assert (dead["error"], dead["attempts"]) == ("timed out after 1 s", 1)
        [pid] = started_pids(pid_file)
        assert not alive(pid), "a timed-out ffmpeg outlived its job"
        partial = Path(written.read_text().strip())
        assert partial.parent == clip.parent and not partial.exists()
        assert sorted(p.name for p in clip.parent.iterdir()) == ["clip.mp4"], "a partial proxy was left"
        assert rows(db_path, "SELECT count(*) FROM video_proxies") == [(0,)]
    finally:
        await db.close()


async def test_an_ffprobe_killed_by_a_signal_fails_its_job_naming_the_signal(tmp_path: Path):
    db_path = tmp_path / "au-archive.db"
    db = await Database.open(db_path)
    location = add_location(db_path)
    clip = make_video(tmp_path / "archive" / "org-vid" / "clip.mp4")
    digest = add_media_row(db_path, "video", clip, location.locid)
    crashing = fake_tool(tmp_path / "ffprobe", "ffprobe", "kill -SEGV $$")
    payload = {"hash": digest, "mediaType": "video", "archivePath": str(clip)}
    try:
        await add_jobs(db, NewJob(Queue.FFPROBE, payload), max_attempts=1)
        async with scheduler_running(
            JobStore(db), {Queue.FFPROBE: ffprobe}, tools=Toolset(None, crashing, None)
        ) as events:
            async with asyncio.timeout(20):
                dead = await events.dead.get()
        assert dead["error"] == "ffprobe was killed by SIGSEGV: no message"
        assert rows(db_path, "SELECT meta_ffmpeg FROM vids") == [(None,)]
    finally:
        await db.close()


async def test_an_exiftool_that_crashes_mid_command_fails_that_try_and_a_fresh_one_finishes_the_job(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    """The first exiftool the sidecar starts dies of SIGSEGV while reading its first command;
    later ones are the real exiftool. The try fails saying so, the pool starts a new process, and
    the retry (after the queue's backoff) stores the metadata."""
    crashed = tmp_path / "crashed"
    exiftool = fake_tool(
        tmp_path / "exiftool",
        "exiftool",
        f'if [ ! -e "{crashed}" ]; then touch "{crashed}"; read -r line; kill -SEGV $$; fi\n'
        f'exec "{real_tool("exiftool").path}" "$@"',
    )
    client = await spawn_sidecar([*sidecar_paths.args(), "--exiftool", exiftool.path])
    location = add_location(sidecar_paths.db)
    photo = make_jpeg(tmp_path / "src" / "IMG_0001.JPG", 320, 240, make="Canon", model="EOS R5")
    result = await client.request("import:v2:start", location.start_params(tmp_path / "src"))
    assert result["status"] == "completed"

    metadata = await client.notification("asset:metadata-complete", timeout=60)
    await client.notification("asset:thumbnail-ready", timeout=60)  # it waits for the metadata job's end

    assert crashed.exists()
    assert metadata["hash"] == hash16(photo) and metadata["metadata"]["cameraMake"] == "Canon"
    [failed_try] = [r for r in client.stderr_json() if r.get("action") == "jobs.failed"]
    assert (failed_try["queue"], failed_try["attempt"]) == ("exiftool", 1)
    assert failed_try["error"] == "exiftool exited unexpectedly (killed by SIGSEGV)"
    assert rows(sidecar_paths.db, "SELECT status, attempts FROM jobs WHERE queue = 'exiftool'") == [
        ("completed", 2)
    ]
    assert rows(sidecar_paths.db, "SELECT meta_camera_model FROM imgs") == [("EOS R5",)]
