"""`au-sidecar import` end to end: the real command on the demo's generated card, its output and the
database it leaves; a re-import; Ctrl-C cancelling cleanly."""

import asyncio
import re
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from tests.support.archive import assert_archive_invariant, org_files, write

REPO = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "sidecar", "import"]


def make_card(folder: Path) -> Path:
    subprocess.run([sys.executable, str(REPO / "scripts" / "sample_card.py"), str(folder)], check=True)
    return folder


def run_import(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *map(str, args)], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )


def query(db: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return list(conn.execute(sql))


def test_the_sample_card_is_imported_with_every_background_job(tmp_path: Path) -> None:
    card = make_card(tmp_path / "card")
    db, archive = tmp_path / "au-archive.db", tmp_path / "archive"

    first = run_import(card, "--archive", archive, "--db", db, "--location", "Sample card")

    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert "Created location “Sample card”" in out
    assert "Import completed" in out
    assert "9 imported, 1 duplicates, 2 skipped, 0 errors; 1 sidecar files archived with their media" in out
    assert f"  {card / '.DS_Store'}: system file (left by macOS or Windows, not media)\n" in out
    assert f"  {card / 'DCIM' / 'camera.cfg'}: unknown extension (.cfg)\n" in out
    for step in ("hashing", "copying", "validating", "finalizing", "completed"):
        assert re.search(rf"\] +[0-9.]+% +{step} ", out), f"no progress line for {step}"
    assert "Background jobs: all done" in out
    assert "Metadata: 9  Thumbnails: 8  Video proxies: 3" in out
    assert "failed" not in out
    assert query(db, "SELECT locnam FROM locs") == [("Sample card",)]
    assert query(db, "SELECT count(*), count(thumb_path_sm), count(meta_exiftool) FROM imgs") == [(5, 5, 5)]
    assert query(db, "SELECT count(*) FROM video_proxies") == [(3,)]
    assert query(db, "SELECT count(*) FROM vids WHERE hidden = 1 AND hidden_reason = 'live_photo_video'") == [
        (1,)
    ]
    assert query(db, "SELECT count(*) FROM jobs WHERE status != 'completed'") == [(0,)]
    assert_archive_invariant(db, archive)

    again = run_import(card, "--archive", archive, "--db", db, "--location", "Sample card")

    assert again.returncode == 0, again.stdout + again.stderr
    assert "Importing into location “Sample card”" in again.stdout
    assert "0 imported, 10 duplicates" in again.stdout
    assert query(db, "SELECT count(*) FROM locs") == [(1,)]


def test_the_summary_names_skips_and_failures_by_source_path_with_exact_counts(tmp_path: Path) -> None:
    card = tmp_path / "card"
    write(card / "DCIM" / "broken.jpg", 5000, seed=1)  # not an image: its thumbnail job fails
    write(card / "DCIM" / "._broken.jpg", 4096, seed=2)
    write(card / ".Trashes" / "501" / "old.jpg", 100, seed=3)
    for i in range(24):
        write(card / "MISC" / f"note_{i:02d}.xyz", 10, seed=10 + i)
    db, archive = tmp_path / "au-archive.db", tmp_path / "archive"

    result = run_import(card, "--archive", archive, "--db", db)

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "1 imported, 0 duplicates, 26 skipped, 0 errors" in out
    assert "Skipped (26):\n  24 × unknown extension (.xyz)\n" in out
    assert "  1 × AppleDouble file (macOS metadata of another file, not media)\n" in out
    assert f"  {card / '.Trashes'}: system folder (left by macOS or Windows, not media)\n" in out
    assert "  … and 6 more\n" in out  # 26 skipped, 20 named
    assert "old.jpg" not in out  # a system folder is named once, never walked
    failed = re.search(r"Failed background jobs \((\d+)\):\n((?:  .*\n)+)", out)
    assert failed is not None, out
    lines = failed.group(2).splitlines()
    assert int(failed.group(1)) == len(lines) >= 1
    assert all(f": {card / 'DCIM' / 'broken.jpg'}: " in line for line in lines), lines


def test_missing_paths_are_refused_before_anything_starts(tmp_path: Path) -> None:
    result = run_import(tmp_path / "nope", "--archive", tmp_path / "archive", "--db", tmp_path / "a.db")
    assert result.returncode == 2 and "not found" in result.stdout
    assert not (tmp_path / "a.db").exists()


async def test_ctrl_c_cancels_the_import_and_leaves_nothing_behind(tmp_path: Path) -> None:
    for i in range(8):
        write(tmp_path / "big" / f"clip_{i}.mp4", 48 << 20, seed=i)
    db, archive = tmp_path / "au-archive.db", tmp_path / "archive"
    process = await asyncio.create_subprocess_exec(
        *COMMAND, str(tmp_path / "big"), "--archive", str(archive), "--db", str(db),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    async with asyncio.timeout(60):
        while b"Created location" not in await process.stdout.readline():
            pass
        process.send_signal(signal.SIGINT)
        out, err = await process.communicate()
    assert process.returncode == 130, out.decode() + err.decode()
    assert "Cancelling…" in out.decode() and "Import cancelled" in out.decode()
    assert org_files(archive) == []
    assert_archive_invariant(db, archive)
    assert query(db, "SELECT status, can_resume FROM import_sessions") == [("cancelled", 0)]
