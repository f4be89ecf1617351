"""SQLite's refusals a user can act on, named: the app holding the write lock past our busy timeout,
a disk too full for the database to grow. The domain keeps raising sqlite3's own errors; the api
layer and an import's failure message use this one classification to say what happened."""

import sqlite3
from pathlib import Path

from sidecar.db import connection
from sidecar.db.transaction import is_busy
from sidecar.errors import DatabaseBusy, DatabaseFull


def database_refusal(exc: BaseException, db_path: Path) -> DatabaseBusy | DatabaseFull | None:
    """The domain error for SQLite refusing because of a lock held too long or a full disk; None for
    any other error (those are bugs, not conditions a client can act on)."""
    if is_busy(exc):
        return DatabaseBusy(str(db_path), connection.BUSY_TIMEOUT_S)
    name: str = getattr(exc, "sqlite_errorname", "")
    full = isinstance(exc, sqlite3.OperationalError) and name.startswith("SQLITE_FULL")
    return DatabaseFull(str(db_path)) if full else None
