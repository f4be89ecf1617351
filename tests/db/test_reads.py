"""Reads through Database see other processes' latest commits, even while another read is open:
two reads interleaved on one SQLite connection would share one read transaction."""

import asyncio
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

from sidecar.db.connection import Database


async def test_a_read_never_sees_an_older_snapshot_of_a_read_still_open(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "a.db")
    try:
        with closing(sqlite3.connect(tmp_path / "a.db", isolation_level=None)) as app:
            app.execute("INSERT INTO settings (key, value) VALUES ('a', '1'), ('b', '2')")
            reached, release = threading.Event(), threading.Event()

            def pause(value: str) -> str:
                # The slow read is inside its first step: its snapshot is taken.
                reached.set()
                release.wait(10)
                return value

            await db._reader.create_function("pause", 1, pause)
            slow = asyncio.create_task(db.fetch_all("SELECT pause(value) FROM settings"))
            assert await asyncio.to_thread(reached.wait, 10)
            # The app commits while that read is open; then someone looks for what it wrote.
            app.execute("INSERT INTO settings (key, value) VALUES ('new', 'row')")
            lookup = asyncio.create_task(db.fetch_one("SELECT value FROM settings WHERE key = 'new'"))
            await asyncio.sleep(0)  # queued behind the slow read
            release.set()
            assert len(await slow) >= 2
            found = await lookup
        assert found is not None and found[0] == "row"
    finally:
        await db.close()
