"""Media rows for handler tests, shaped as the import's finalizer writes them, over a real SQLite
file: a handler test can put a real file in the archive, add its row, and run the handler."""

import sqlite3
from contextlib import closing
from pathlib import Path

import blake3

from tests.e2e.archive_checks import MEDIA

PREFIX = {"image": "img", "video": "vid", "document": "doc", "map": "map"}


def add_media_row(db_path: Path, media_type: str, archived: Path, locid: str) -> str:
    """Insert the row of an archived file (its 16-hex BLAKE3 computed here); return the hash."""
    prefix = PREFIX[media_type]
    table, _, _ = MEDIA[prefix]
    digest = blake3.blake3(archived.read_bytes()).hexdigest()[:16]
    with closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        db.execute(
            f"INSERT INTO {table} ({prefix}hash, {prefix}nam, {prefix}namo, {prefix}loc, {prefix}loco,"
            f" locid, {prefix}add, file_size_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                digest,
                archived.name,
                archived.name,
                str(archived),
                str(archived),
                locid,
                "2025-01-01T00:00:00.000Z",
                archived.stat().st_size,
            ),
        )
    return digest
