"""Where an archived file came from: the import command names failures by the path the user gave
(the card's file), not by the archive's copy. The app keeps it in `<x>loco` (reference/
app-database.md); the command reads it after the sidecar wrote it."""

import sqlite3
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

from sidecar.archive.tables import MEDIA_TABLES

_QUERY_BATCH = 500  # well under SQLite's bound-parameter limit


def source_paths(db_path: Path, hashes: Iterable[str]) -> dict[str, str]:
    """Each hash's source path, for the hashes that have a row."""
    wanted = sorted(set(hashes))
    found: dict[str, str] = {}
    if not wanted:
        return found
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)) as db:
        for table in MEDIA_TABLES.values():
            for start in range(0, len(wanted), _QUERY_BATCH):
                batch = wanted[start : start + _QUERY_BATCH]
                marks = ",".join("?" * len(batch))
                found.update(
                    db.execute(
                        f"SELECT {table.hash_column}, {table.column('loco')} FROM {table.table}"
                        f" WHERE {table.hash_column} IN ({marks})",
                        batch,
                    )
                )
    return found
