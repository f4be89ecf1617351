"""The one thing the import command does in the app's place: find the location to import into, or
create it, in the app's `locs` table (the sidecar has no method for that; the app's UI does it).

Runs after the sidecar has opened the file, so a new database already has the app's tables.
"""

import re
import sqlite3
import uuid
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Location:
    locid: str
    loc12: str
    name: str
    created: bool

    def start_params(self, paths: list[str]) -> dict[str, Any]:
        """`import:v2:start`'s argument; the sidecar derives the folder from the row itself."""
        return {
            "paths": paths,
            "locid": self.locid,
            "loc12": self.loc12,
            "address_state": None,
            "type": None,
            "slocnam": None,
        }


def find_or_create(db_path: Path, name: str) -> Location:
    with closing(sqlite3.connect(db_path, timeout=10, isolation_level=None)) as db:
        db.execute("PRAGMA foreign_keys = ON")
        found = db.execute(
            "SELECT locid, loc12, locnam FROM locs WHERE locnam = ? COLLATE NOCASE ORDER BY locadd LIMIT 1",
            (name,),
        ).fetchone()
        if found is not None:
            return Location(found[0], found[1], found[2], created=False)
        locid = str(uuid.uuid4())
        loc12 = locid.replace("-", "")[:12]
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        db.execute(
            "INSERT INTO locs (locid, loc12, locnam, slocnam, type, locadd) VALUES (?, ?, ?, ?, ?, ?)",
            (locid, loc12, name, short_name(name), "unknown", now),
        )
        return Location(locid, loc12, name, created=True)


def short_name(name: str) -> str:
    """A folder-friendly short name, as the app makes one for a new location."""
    slug = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", name.lower())).strip("-")
    return slug[:50].strip("-") or "location"
