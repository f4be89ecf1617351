"""The one way this project writes: a `BEGIN IMMEDIATE` transaction on an autocommit connection.

IMMEDIATE takes the write lock up front, so a writer never fails half-way on a stale read snapshot
(reference/app-database.md §6); the busy timeout then makes it wait for the app instead.
"""

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiosqlite


@asynccontextmanager
async def immediate(conn: aiosqlite.Connection) -> AsyncIterator[aiosqlite.Connection]:
    """Committed on success, rolled back on any error or cancellation."""
    await conn.execute("BEGIN IMMEDIATE")
    async with committed(conn):
        yield conn


@asynccontextmanager
async def committed(conn: aiosqlite.Connection) -> AsyncIterator[aiosqlite.Connection]:
    """The transaction `conn` has open: committed on success, rolled back on any error or cancellation."""
    try:
        yield conn
    except BaseException:
        # SQLite may have rolled back already (it does on SQLITE_FULL, for one): a ROLLBACK then
        # fails and would hide the error that matters. Shielded so a cancelled task still releases
        # SQLite's write lock.
        if conn.in_transaction:
            await asyncio.shield(conn.execute("ROLLBACK"))
        raise
    await asyncio.shield(conn.execute("COMMIT"))


def is_busy(exc: BaseException) -> bool:
    """SQLite could not take a lock another connection holds (within the busy timeout). Errors
    sqlite3 raises on its own (not from the SQLite library) carry no error name."""
    name: str = getattr(exc, "sqlite_errorname", "")
    return isinstance(exc, sqlite3.OperationalError) and name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
