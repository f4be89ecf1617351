"""The one classification of SQLite's refusals, on errors real SQLite raises: a lock held past the
busy timeout and a full database are named; every other error stays unnamed (an internal error)."""

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from sidecar.api.refusals import database_refusals
from sidecar.db.errors import database_refusal
from sidecar.errors import DatabaseBusy, DatabaseFull


def raised(action: Callable[[], object]) -> sqlite3.Error:
    with pytest.raises(sqlite3.Error) as caught:
        action()
    return caught.value


def busy_error(path: Path) -> sqlite3.Error:
    """What a writer gets when another connection holds the write lock past its busy timeout."""
    with (
        closing(sqlite3.connect(path, isolation_level=None)) as app,
        closing(sqlite3.connect(path, isolation_level=None, timeout=0.05)) as ours,
    ):
        app.execute("BEGIN IMMEDIATE")
        return raised(lambda: ours.execute("BEGIN IMMEDIATE"))


def full_error(path: Path) -> sqlite3.Error:
    """What a writer gets when the database cannot grow (here capped at its current page count)."""
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("CREATE TABLE t (x BLOB)")
        db.execute("PRAGMA max_page_count = 2")
        return raised(lambda: db.execute("INSERT INTO t VALUES (zeroblob(100000))"))


def test_a_lock_held_past_the_busy_timeout_is_database_busy(tmp_path: Path) -> None:
    refusal = database_refusal(busy_error(tmp_path / "a.db"), tmp_path / "a.db")
    assert isinstance(refusal, DatabaseBusy)
    assert refusal.message == f"Database locked by another process for more than 10 s ({tmp_path / 'a.db'})"
    assert refusal.data == {"kind": "database_busy", "dbPath": str(tmp_path / "a.db")}
    assert refusal.code == 1008


def test_a_database_that_cannot_grow_is_database_full(tmp_path: Path) -> None:
    refusal = database_refusal(full_error(tmp_path / "a.db"), tmp_path / "a.db")
    assert isinstance(refusal, DatabaseFull)
    assert refusal.message == f"Disk full: the database cannot grow ({tmp_path / 'a.db'})"
    assert refusal.data == {"kind": "database_full", "dbPath": str(tmp_path / "a.db")}
    assert refusal.code == 1009


def test_other_errors_are_not_refusals(tmp_path: Path) -> None:
    with closing(sqlite3.connect(tmp_path / "a.db", isolation_level=None)) as db:
        no_table = raised(lambda: db.execute("SELECT * FROM missing"))
        db.execute("BEGIN")
        nested = raised(lambda: db.execute("BEGIN"))
    assert isinstance(no_table, sqlite3.OperationalError) and isinstance(nested, sqlite3.OperationalError)
    # Raised by the sqlite3 module itself, not the library: no error name at all.
    bare = sqlite3.OperationalError("database is locked")
    for error in (no_table, nested, bare, ValueError("SQLITE_BUSY")):
        assert database_refusal(error, tmp_path / "a.db") is None, error


def test_the_api_helper_raises_the_refusal_and_lets_anything_else_through(tmp_path: Path) -> None:
    busy = busy_error(tmp_path / "a.db")
    with pytest.raises(DatabaseBusy) as refused, database_refusals(tmp_path / "a.db"):
        raise busy
    assert refused.value.__cause__ is busy
    other = sqlite3.OperationalError("no such table: missing")
    with pytest.raises(sqlite3.OperationalError) as passed, database_refusals(tmp_path / "a.db"):
        raise other
    assert passed.value is other
