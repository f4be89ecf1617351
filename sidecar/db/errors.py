"""SQLite's refusals a user can act on, named: the app holding the write lock past our busy timeout,
a disk too full for the database to grow. The domain keeps raising sqlite3's own errors; the api
layer and an import's failure message use this one classification to say what happened."""

import sqlite3
from pathlib import Path

from sidecar.db import connection
from sidecar.errors import DatabaseBusy, DatabaseFull


def database_refusal(exc: BaseException, db_path: Path) -> DatabaseBusy | DatabaseFull | None:
    """The domain error for SQLite refusing because of a lock held too long or a full disk; None for
    any other error (those are bugs, not conditions a client can act on)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return None
    # Errors sqlite3 raises on its own (not from the SQLite library) carry no error name.
    name: str = getattr(exc, "sqlite_errorname", "")
    if name.startswith("SQLITE_FULL"):
        return DatabaseFull(str(db_path))
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return DatabaseBusy(str(db_path), connection.BUSY_TIMEOUT_S)
    return None
