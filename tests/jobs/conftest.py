"""A real SQLite file with the app's tables, for the job queue's and the handlers' tests."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sidecar.db.connection import Database


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "au-archive.db"


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(db_path)
    yield database
    await database.close()
