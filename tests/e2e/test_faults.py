"""Faults the world causes, each through the real sidecar process: a full disk under the database,
an archive drive that goes away, unreadable sources, sources that change or vanish while they are
imported, the app holding the database, external tools that hang or crash.

Each must end in a clear per-file error or a clear failed, resumable session: never a crash, a
partial file or a wrong row (SPEC §6 "Invariant", §10 "Reliability").
"""

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SidecarPaths, Spawn
from tests.e2e.archive_checks import add_location, assert_archive_invariant, hash16, org_files, rows, write

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
        free = os.statvfs(disk)
        os.posix_fallocate(file.fileno(), 0, free.f_bavail * free.f_frsize)
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
    journal still holds as validated (the resume finalizes it), and no copy the journal counts on
    was removed (a resume would write rows for files that are gone)."""
    journal = dict(rows(paths.db, "SELECT target, state FROM aus_import_files WHERE target IS NOT NULL"))
    with_rows = {location for location, _ in rows(paths.db, MEDIA_ROWS)}
    for file in org_files(paths.archive):
        assert str(file) in with_rows or journal.get(str(file)) == "validated", file
    for target, state in journal.items():
        assert state not in ("copied", "validated") or Path(target).is_file(), target


# -- 1. the database's disk fills up during finalize ----------------------------------------------


async def test_a_full_database_disk_during_finalize_fails_cleanly_and_resumes_once_space_is_freed(
    mounts: Mounts, spawn_sidecar: Spawn, tmp_path: Path
):
    """The database on a 16 MiB tmpfs that the test fills as the import validates: the finalize
    cannot write its rows, the import fails saying so, nothing it wrote is half there, and once
    space is freed the resume completes."""
    db_disk = mounts.tmpfs(tmp_path / "db-disk", "16m")
    paths = SidecarPaths(db=db_disk / "au-archive.db", archive=tmp_path / "archive")
    paths.archive.mkdir()
    client = await spawn_sidecar([*paths.args(), "--hash-workers", "1"])
    location = add_location(paths.db)
    source = small_images(tmp_path / "src")
    start = asyncio.create_task(client.request("import:v2:start", location.start_params(source), timeout=120))
    await client.notification("import:v2:progress", lambda p: p["status"] == "validating", timeout=120)
    ballast = fill(db_disk)

    result = await start

    assert result["status"] == "failed", result
    assert result["error"] == f"Disk full: the database cannot grow ({paths.db})"
    assert rows(paths.db, "SELECT last_step, can_resume FROM import_sessions") == [(5, 1)]
    assert any(p["status"] == "finalizing" for p in client.of("import:v2:progress"))
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
