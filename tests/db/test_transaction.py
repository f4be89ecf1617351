"""The write-transaction helper: committed on success, rolled back on error, and the error that
ended the transaction is the one the caller sees."""

from pathlib import Path

import aiosqlite
import pytest

from sidecar.db.transaction import immediate


async def test_an_error_after_sqlite_rolled_back_by_itself_is_not_hidden(tmp_path: Path) -> None:
    """SQLite ends the transaction itself on some errors (SQLITE_FULL: a database on a full disk);
    our ROLLBACK then failed with "cannot rollback - no transaction is active" and replaced the
    disk-full error, so an import ended as an internal error instead of saying why."""

    class DiskFull(Exception):
        pass

    async with aiosqlite.connect(tmp_path / "t.db", isolation_level=None) as conn:
        await conn.execute("CREATE TABLE t (x)")
        with pytest.raises(DiskFull):
            async with immediate(conn):
                await conn.execute("INSERT INTO t VALUES (1)")
                await conn.execute("ROLLBACK")  # what SQLite does on its own before raising SQLITE_FULL
                raise DiskFull()
        assert not conn.in_transaction
        async with immediate(conn):
            await conn.execute("INSERT INTO t VALUES (2)")
        async with conn.execute("SELECT x FROM t") as cursor:
            assert [tuple(row) for row in await cursor.fetchall()] == [(2,)]
