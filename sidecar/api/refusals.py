"""SQLite's refusals a client can act on (locked past the busy timeout, disk full) become domain
errors here, at the api layer: the domain below keeps raising sqlite3's own errors, and rpc/ knows
no SQLite."""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sidecar.db.errors import database_refusal
from sidecar.log import get_logger

log = get_logger(__name__)


@contextmanager
def database_refusals(db_path: Path) -> Iterator[None]:
    """Raises DatabaseBusy or DatabaseFull for those refusals; any other error passes unchanged."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        refusal = database_refusal(exc, db_path)
        if refusal is None:
            raise
        log.warning(
            "request refused by the database",
            extra={"action": "db.request_refused", "kind": refusal.kind, "error": str(exc)},
        )
        raise refusal from exc
