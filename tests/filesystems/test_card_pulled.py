"""A card pulled from its reader in the middle of an import (issue 13, item 5), through the real
sidecar and the card emulator: what was read is safe, with its rows; what was not is a per-file
error; the import ends resumable saying what happened; and once the card is back, the resume ends
exactly as an import that was never interrupted."""

from pathlib import Path
from typing import Any

import pytest

from tests.filesystems.conftest import StartCard
from tests.support.archive import add_location, assert_archive_invariant, org_files, rows, stat_key
from tests.support.cards import import_snapshot, photo_card
from tests.support.client import SidecarPaths, Spawn

LOCID = "5e1f0c3a-7d2b-4c89-9a61-2b7e4d0f8c13"
MEDIA_ROWS = "SELECT imghash FROM imgs UNION ALL SELECT vidhash FROM vids"
# Small pages: each step commits every two files, so a pull finds several pages committed.
PAGED = ["--page-files", "2"]


def sidecar_paths_in(folder: Path) -> SidecarPaths:
    folder.mkdir()
    (folder / "archive").mkdir()
    return SidecarPaths(db=folder / "au-archive.db", archive=folder / "archive")


async def uninterrupted(
    spawn: Spawn, folder: Path, card: Path, options: list[str]
) -> tuple[dict[str, Any], dict[str, object]]:
    """An import of the same card that nothing interrupts: its result and what it left."""
    paths = sidecar_paths_in(folder)
    sidecar = await spawn([*paths.args(), *options])
    location = add_location(paths.db, locid=LOCID)
    result: dict[str, Any] = await sidecar.request(
        "import:v2:start", location.start_params(card), timeout=120
    )
    assert result["status"] == "completed", result
    return result, import_snapshot(paths.db, paths.archive, card)


# auto: the card is another filesystem than the archive, so each file is read once, hashed while
# staged (what was staged before the pull is still copied in); never: hashed, then read again.
@pytest.mark.parametrize("read_once", ["auto", "never"])
async def test_a_card_pulled_mid_import_keeps_what_was_read_and_the_resume_finishes_the_import(
    card: StartCard, spawn_sidecar: Spawn, tmp_path: Path, read_once: str
):
    """The card is pulled the moment it has served 60 % of what an uninterrupted import reads from
    it (the emulator's own trigger: mid-read, no race with the test), so whatever the pipeline's
    passes, the import is cut off with part of the card archived."""
    folder = photo_card(
        tmp_path / "card-folder", photos=16, photo_bytes=1_500_000, videos=2, video_bytes=6 << 20
    )
    emulator = card(folder)
    options = [*PAGED, "--read-once", read_once]
    expected_result, expected = await uninterrupted(
        spawn_sidecar, tmp_path / "reference", emulator.path, options
    )
    reads_per_file = emulator.stats()["files"]  # what an uninterrupted import reads of each file
    emulator.reset_counts()
    emulator.pull_after(int(sum(reads_per_file.values()) * 0.6))

    paths = sidecar_paths_in(tmp_path / "pulled")
    sidecar = await spawn_sidecar([*paths.args(), *options])
    location = add_location(paths.db, locid=LOCID)
    result = await sidecar.request("import:v2:start", location.start_params(emulator.path), timeout=120)

    assert emulator.stats()["pulled"], "the import ended before the card was pulled"
    assert result["status"] == "failed", result
    assert str(emulator.path) in result["error"] and "resume" in result["error"].lower(), result["error"]
    [resumable] = await sidecar.request("import:v2:resumable")
    assert resumable["sessionId"] == result["sessionId"]
    # What was read is safe: the files that got every read an uninterrupted import gives them, and
    # that their readers had closed, are archived whole, with their rows. One still open as the card
    # went may not be: the card may have served all its bytes to the kernel's read-ahead, but
    # whatever its reader did next (a read from the cache, the read that finds the end) failed, so
    # for the import the file was cut off like any other.
    stats = emulator.stats()
    read_whole = {Path(name).name for name, count in stats["files"].items() if count >= reads_per_file[name]}
    cut_at_the_end = {Path(name).name for name in stats["open_at_pull"]}
    archived = {n for (n,) in rows(paths.db, "SELECT imgnamo FROM imgs UNION ALL SELECT vidnamo FROM vids")}
    assert read_whole - cut_at_the_end <= archived <= read_whole
    kept = {p: stat_key(p) for p in org_files(paths.archive)}
    assert len(kept) == len(archived) >= 2
    assert_archive_invariant(paths.db, paths.archive)
    # What was not read is a per-file error, named.
    total = expected_result["scanResult"]["totalFiles"]
    assert len(result["errors"]) == total - len(kept), result["errors"]
    assert all(str(emulator.path) in e["path"] for e in result["errors"]), result["errors"]

    # Resumed while the card is still out: it fails the same way, still resumable, nothing lost.
    again = await sidecar.request("import:v2:resume", [result["sessionId"]], timeout=120)
    assert again["status"] == "failed" and again["error"] == result["error"], again
    assert len(again["errors"]) == len(result["errors"])
    assert {p: stat_key(p) for p in org_files(paths.archive)} == kept

    emulator.insert()
    resumed = await sidecar.request("import:v2:resume", [result["sessionId"]], timeout=120)

    assert resumed["status"] == "completed" and resumed["errors"] == [], resumed
    assert import_snapshot(paths.db, paths.archive, emulator.path) == expected
    assert {p: stat_key(p) for p in kept} == kept, "a copy made before the card was pulled was made again"
    media = [h for (h,) in rows(paths.db, MEDIA_ROWS)]
    assert len(media) == len(set(media)) == expected_result["finalizationResult"]["totalFinalized"]
    assert_archive_invariant(paths.db, paths.archive)


async def test_one_unreadable_file_on_a_card_still_in_its_reader_is_a_per_file_error_and_the_rest_imports(
    card: StartCard, spawn_sidecar: Spawn, tmp_path: Path
):
    folder = photo_card(tmp_path / "card-folder", photos=6, photo_bytes=200_000)
    emulator = card(folder)
    bad = "DCIM/100CAMRA/IMG_0004.JPG"
    emulator.fail(bad)
    paths = sidecar_paths_in(tmp_path / "run")
    sidecar = await spawn_sidecar(paths.args())
    location = add_location(paths.db, locid=LOCID)

    result = await sidecar.request("import:v2:start", location.start_params(emulator.path), timeout=120)

    assert result["status"] == "completed", result
    [error] = result["errors"]
    assert error["path"] == str(emulator.path / bad) and error["step"] == "hash", error
    assert "Input/output error" in error["message"]
    assert rows(paths.db, "SELECT count(*) FROM imgs") == [(5,)]
    assert_archive_invariant(paths.db, paths.archive)
