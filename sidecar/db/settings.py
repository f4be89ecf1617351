"""Reads the app's `settings` table: the archive root and the importing user.

Read on every use, never cached for long: the user can change them in the app while we run.
"""

from dataclasses import dataclass
from pathlib import Path

from sidecar.db.connection import Database


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    username: str


async def _get(db: Database, key: str) -> str | None:
    row = await db.fetch_one("SELECT value FROM settings WHERE key = ?", (key,))
    return None if row is None else str(row[0])


async def archive_folder(db: Database) -> str | None:
    value = await _get(db, "archive_folder")
    return value or None


async def current_user(db: Database) -> User | None:
    """Both keys must be set, as in the app; otherwise imports are unattributed (NULL)."""
    user_id, username = await _get(db, "current_user_id"), await _get(db, "current_user")
    return User(user_id, username) if user_id and username else None


class ArchiveRoot:
    """Where the archive is: `--archive`, else the app's `settings.archive_folder`, read at each use
    (the user may change it in the app while the sidecar runs). None when neither is set."""

    def __init__(self, db: Database | None, override: Path | None) -> None:
        self._db = db
        self._override = override

    async def __call__(self) -> str | None:
        if self._override is not None:
            return str(self._override)
        return None if self._db is None else await archive_folder(self._db)
