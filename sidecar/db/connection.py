"""Connections to the SQLite file the app also has open.

Rules from the app's side (reference/app-database.md §6): WAL, foreign keys on, a busy timeout of
at least 5 s, and every write a short `BEGIN IMMEDIATE` transaction, because the app's single
synchronous connection blocks its UI while it waits for our lock. Writes go through one connection
behind an asyncio lock; reads use a second connection so they never wait behind a write.
This module knows table shapes only through `schema`.
"""

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from sidecar.db import schema
from sidecar.db.transaction import committed, immediate, is_busy
from sidecar.errors import LaterAppDatabase, SchemaTooOld
from sidecar.log import get_logger

BUSY_TIMEOUT_S = 10.0
# The writer waits for another process's lock in slices of this, letting our other writers (a
# request, a job's end) take their turn in between: one waiter never holds our writer for the
# whole busy timeout (seven queues' claims, each waiting it out in turn, kept a request from even
# trying for 70 s while the app held its lock).
BUSY_SLICE_S = 0.1
# Bound variables per statement for `IN (...)` lists; far below any SQLite build's limit.
MAX_VARIABLES = 500

log = get_logger(__name__)
T = TypeVar("T")


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    await conn.execute("PRAGMA foreign_keys = ON")
    await conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    return conn


async def _sync_as_the_app(conn: aiosqlite.Connection) -> None:
    async with conn.execute("PRAGMA journal_mode") as cursor:
        row = await cursor.fetchone()
    if row is not None and str(row[0]).lower() == "wal":
        # As the app's own connection (better-sqlite3's WAL default, reference/app-database.md §6):
        # a commit waits for no fsync; the WAL is synced at checkpoints. A power loss may roll back
        # the last commits, never corrupt the file, and every one of ours can be redone: the files a
        # commit records were flushed to disk before it, and each step of a resume takes what its
        # journal row says is left (an existing right copy is kept, a finalize inserts nothing twice).
        # A process crash loses nothing either way. The fsync per commit cost the import's one
        # writer a fifth of its time on many small files (bench/import_bench.py, SMALL).
        await conn.execute("PRAGMA synchronous = NORMAL")


class Database:
    """The app's database as this process uses it: one writer (serialised), one reader."""

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection):
        self.path = path
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()
        self._last_begin = 0.0  # when one of our write transactions last got SQLite's lock

    @classmethod
    async def open(cls, path: Path) -> "Database":
        """Open (or create) the database; raises SchemaTooOld when an app table lacks a column we use."""
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = await _connect(path)
        try:
            await _prepare(writer)  # a new file is in WAL mode from here
            await _sync_as_the_app(writer)
            await writer.execute(f"PRAGMA busy_timeout = {int(BUSY_SLICE_S * 1000)}")
            reader = await _connect(path)
        except BaseException:
            await writer.close()
            raise
        return cls(path, writer, reader)

    async def close(self) -> None:
        async with self._write_lock:
            await self._reader.close()
            await self._writer.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A `BEGIN IMMEDIATE` write transaction: committed on success, rolled back on any error.

        Keep the body short (well under a second): the app waits on our lock with its UI blocked.
        Waits up to BUSY_TIMEOUT_S for another process's lock, then raises SQLite's busy error.
        """
        first_refused: float | None = None
        while True:
            async with self._write_lock:
                tried = time.monotonic()
                try:
                    await self._writer.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    now = time.monotonic()
                    first_refused = first_refused or now
                    # Locked out for the whole timeout: since our first try, none of ours got in.
                    if not is_busy(exc) or now - max(first_refused, self._last_begin) >= BUSY_TIMEOUT_S:
                        raise
                    # SQLite may refuse without waiting (a WAL recovery, for one): never spin.
                    pause = BUSY_SLICE_S - (now - tried)
                else:
                    self._last_begin = time.monotonic()
                    async with committed(self._writer) as conn:
                        yield conn
                    return
            if pause > 0:
                await asyncio.sleep(pause)  # our other writers waiting on the lock go first

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        return await asyncio.shield(self._read(sql, params, many=True))

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
        rows = await asyncio.shield(self._read(sql, params, many=False))
        return rows[0] if rows else None

    async def _read(self, sql: str, params: Sequence[Any], *, many: bool) -> list[aiosqlite.Row]:
        """One read, alone on the reader and run to its end, its cursor closed.

        SQLite gives a connection one read transaction while any of its statements is open. Reads
        interleaved on the one reader connection would share it, so a read could see the database
        as it was when an earlier, still-open read began, missing other processes' newer commits
        (a location the app had just added: "Location not found"). Hence the lock, and the shield
        in the callers: aiosqlite runs a cancelled call anyway, and its cursor must still close.
        """
        async with self._read_lock, self._reader.execute(sql, params) as cursor:
            if many:
                return list(await cursor.fetchall())
            row = await cursor.fetchone()
            return [] if row is None else [row]


async def insert_many(
    conn: aiosqlite.Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Insert rows with named columns; one statement per row keeps every statement's variables small."""
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    await conn.executemany(sql, rows)


async def _table_columns(conn: aiosqlite.Connection) -> dict[str, set[str]]:
    async with conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ) as cursor:
        tables = [row[0] for row in await cursor.fetchall()]
    columns: dict[str, set[str]] = {}
    for table in tables:
        async with conn.execute("SELECT name FROM pragma_table_info(?)", (table,)) as cursor:
            columns[table] = {row[0] for row in await cursor.fetchall()}
    return columns


async def _prepare(conn: aiosqlite.Connection) -> None:
    existing = await _table_columns(conn)
    app_tables = {t: c for t, c in existing.items() if not t.startswith(schema.OWN_PREFIX)}
    if not app_tables:
        # A new file: the app's tables in their complete final shape, or the app cannot open it later.
        await conn.execute("PRAGMA journal_mode = WAL")
        async with immediate(conn):
            for statement in (*schema.APP_SCHEMA, *schema.APP_SEED):
                await conn.execute(statement)
        log.info("created app schema", extra={"action": "db.create_schema"})
    else:
        later = schema.later_app_differences(app_tables)
        if later:
            raise LaterAppDatabase(later)
        missing = schema.missing_columns(app_tables)
        if missing:
            raise SchemaTooOld("Database schema too old: missing " + ", ".join(missing), missing=missing)
    await schema.ensure_own_schema(conn)
