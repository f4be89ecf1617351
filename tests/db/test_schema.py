"""The app tables a new file gets must be exactly reference/app-database.md §1 (its copy in
tests/support); an existing app file is only checked, never altered; our own `aus_` tables carry
their own version record."""

import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import aiosqlite
import pytest

from sidecar.db import schema
from sidecar.db.connection import Database
from sidecar.errors import LaterAppDatabase, OwnSchemaTooNew, SchemaTooOld, SidecarError

REPO = Path(__file__).resolve().parents[2]
# The copy the tests read (its first line says where it comes from), and the original beside the
# repository, as CI checks it out.
REFERENCE = REPO / "tests" / "support" / "app-database.md"
ORIGINAL = REPO.parent / "shared" / "reference" / "app-database.md"

# Stated independently of `schema`: the core group, the job group as a whole, and video_proxies
# (reference §7.2, SPEC §5). Any other app table would be a partial group the app cannot migrate.
APP_TABLES = (
    "users",
    "locs",
    "slocs",
    "settings",
    "imgs",
    "vids",
    "docs",
    "maps",
    "location_authors",
    "imports",
    "jobs",
    "import_sessions",
    "job_dead_letter",
    "video_proxies",
)

# Column counts the reference states in prose (§7.2) or the brief gives; they prove the parser
# below read every row of each table.
STATED_COLUMN_COUNTS = {
    "users": 7,
    "locs": 87,
    "slocs": 21,
    "settings": 2,
    "imgs": 37,
    "vids": 36,
    "docs": 21,
    "maps": 23,
    "location_authors": 4,
    "imports": 9,
    "import_sessions": 20,
    "jobs": 17,
    "job_dead_letter": 8,
    "video_proxies": 10,
}


# --- The reference, parsed -----------------------------------------------------------------------


@dataclass(frozen=True)
class RefColumn:
    name: str
    type: str
    not_null: bool
    default: str | None
    pk: bool
    fk: tuple[str, str, str] | None  # (table, column, ON DELETE action)


@dataclass(frozen=True)
class RefIndex:
    name: str
    columns: tuple[tuple[str, bool], ...]  # (column, descending)
    where: str | None


@dataclass(frozen=True)
class RefTable:
    name: str
    columns: tuple[RefColumn, ...]
    uniques: frozenset[tuple[str, ...]]
    indexes: dict[str, RefIndex]
    checks: tuple[str, ...]
    autoincrement: bool


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _parse_column(line: str) -> RefColumn:
    name, type_, null, default, key, _added = _cells(line)
    fk = re.search(r"FK→(\w+)\.(\w+)(?: ON DELETE (CASCADE|SET NULL|SET DEFAULT|RESTRICT))?", key)
    return RefColumn(
        name=name,
        type=type_,
        not_null=null == "NOT NULL",
        default=default or None,
        pk="PK" in key.split(),
        fk=None if fk is None else (fk[1], fk[2], fk[3] or "NO ACTION"),
    )


def _parse_indexes(line: str, table: str) -> dict[str, RefIndex]:
    indexes: dict[str, RefIndex] = {}
    for part in line.removeprefix("Indexes:").split(";"):
        match = re.fullmatch(r"`(\w+)` (\w+)\(([^)]*)\)(?: WHERE (.+))?", part.strip())
        assert match, f"unreadable index entry in the reference: {part!r}"
        assert match[2] == table, f"index {match[1]} is listed under {table} but is on {match[2]}"
        columns = tuple((column.split()[0], column.split()[-1] == "DESC") for column in match[3].split(","))
        indexes[match[1]] = RefIndex(match[1], columns, match[4])
    return indexes


def _parse_table(name: str, lines: list[str]) -> RefTable:
    columns: list[RefColumn] = []
    uniques: set[tuple[str, ...]] = set()
    indexes: dict[str, RefIndex] = {}
    checks: list[str] = []
    for line in lines:
        if line.startswith("|") and not re.match(r"\|\s*(column|---)", line):
            columns.append(_parse_column(line))
        elif line.startswith("Unique:"):
            uniques |= {
                tuple(c.strip() for c in group.split(",")) for group in re.findall(r"UNIQUE\(([^)]*)\)", line)
            }
        elif line.startswith("Indexes:"):
            indexes = _parse_indexes(line, name)
        elif line.startswith("Check:"):
            # Only the first quoted expression is this table's; the rest describes older files.
            checks.append(re.findall(r"`([^`]*)`", line)[0])
    prose = "\n".join(line for line in lines if not line.startswith("|"))
    return RefTable(
        name, tuple(columns), frozenset(uniques), indexes, tuple(checks), "AUTOINCREMENT" in prose
    )


def _parse_reference(text: str) -> dict[str, RefTable]:
    section = text.split("\n## 1.", 1)[1].split("\n## 2.", 1)[0]
    tables: dict[str, RefTable] = {}
    name: str | None = None
    lines: list[str] = []
    for line in [*section.splitlines(), "---"]:
        heading = re.match(r"#### `(\w+)`", line)
        if heading or line.startswith(("---", "## ")):
            if name is not None:
                tables[name] = _parse_table(name, lines)
            name, lines = (heading[1] if heading else None), []
        elif name is not None:
            lines.append(line.strip())
    return tables


def _reference_text() -> str:
    """The copy without its provenance line."""
    first, rest = REFERENCE.read_text(encoding="utf-8").split("\n", 1)
    assert first.startswith("<!-- A verbatim copy of ../shared/reference/app-database.md"), first
    return rest


@pytest.fixture(scope="module")
def reference() -> dict[str, RefTable]:
    return _parse_reference(_reference_text())


def test_the_reference_copy_still_equals_the_original():
    assert ORIGINAL.is_file(), f"the original schema reference is missing: expected it at {ORIGINAL}"
    assert _reference_text() == ORIGINAL.read_text(encoding="utf-8"), (
        f"{REFERENCE.relative_to(REPO)} differs from {ORIGINAL}: copy the original again below the first line"
    )


# --- Helpers -------------------------------------------------------------------------------------


@contextmanager
def _sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.row_factory = sqlite3.Row
        yield conn


def _all(conn: sqlite3.Connection, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    return [tuple(row) for row in conn.execute(sql, params)]


def _norm(sql: str) -> str:
    """Whitespace-insensitive SQL text, so layout differences do not count as shape differences."""
    return re.sub(r" ?([(),]) ?", r"\1", re.sub(r"\s+", " ", sql).strip())


def _literal(value: str | None) -> str | None:
    if value is not None and len(value) >= 2 and value[0] == value[-1] == '"':
        return f"'{value[1:-1]}'"
    return value


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {row[0] for row in rows}


def _columns_by_table(conn: sqlite3.Connection) -> dict[str, set[str]]:
    return {
        table: {row["name"] for row in conn.execute("SELECT name FROM pragma_table_info(?)", (table,))}
        for table in _tables(conn)
    }


def _app_master(conn: sqlite3.Connection) -> list[tuple[str, str | None]]:
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE tbl_name NOT LIKE 'aus\\_%' ESCAPE '\\' ORDER BY name"
    ).fetchall()
    return [(row[0], row[1]) for row in rows]


def _make_app_db(path: Path) -> None:
    """An existing app file as far as we can tell: every app table in its final shape."""
    with _sqlite(path) as conn:
        for statement in schema.APP_SCHEMA:
            conn.execute(statement)


def _own_version(path: Path) -> str:
    with _sqlite(path) as conn:
        row = conn.execute("SELECT value FROM aus_meta WHERE key = 'schema_version'").fetchone()
    assert row is not None, "aus_meta has no schema_version"
    return str(row[0])


E = TypeVar("E", bound=BaseException)


async def _refused(path: Path, error: type[E]) -> E:
    """The error `Database.open` raises; an open that succeeds is closed so it cannot hang the run."""
    try:
        db = await Database.open(path)
    except error as raised:
        return raised
    await db.close()
    pytest.fail(f"Database.open accepted {path.name}; expected {error.__name__}")


@pytest.fixture
async def new_db(tmp_path: Path) -> Path:
    path = tmp_path / "new.db"
    db = await Database.open(path)
    await db.close()
    return path


# --- A new file ----------------------------------------------------------------------------------


def test_reference_is_parsed_completely(reference: dict[str, RefTable]) -> None:
    counts = {table: len(reference[table].columns) for table in APP_TABLES if table in reference}
    assert counts == STATED_COLUMN_COUNTS


async def test_new_file_has_exactly_the_intended_app_tables(new_db: Path) -> None:
    with _sqlite(new_db) as conn:
        tables = _tables(conn)
        others = _all(conn, "SELECT type, name FROM sqlite_master WHERE type NOT IN ('table', 'index')")
    own = {t for t in tables if t.startswith(schema.OWN_PREFIX)}
    assert tables - own - {"sqlite_sequence"} == set(APP_TABLES)
    assert "aus_meta" in own
    # A fresh app file has no triggers or views either.
    assert others == []


@pytest.mark.parametrize("table", APP_TABLES)
async def test_new_table_columns_match_reference(
    new_db: Path, reference: dict[str, RefTable], table: str
) -> None:
    with _sqlite(new_db) as conn:
        rows = conn.execute("SELECT * FROM pragma_table_info(?) ORDER BY cid", (table,)).fetchall()
    actual = [(r["name"], r["type"].upper(), bool(r["notnull"]), _literal(r["dflt_value"])) for r in rows]
    expected = [(c.name, c.type, c.not_null, _literal(c.default)) for c in reference[table].columns]
    assert actual == expected
    actual_pk = [r["name"] for r in sorted(rows, key=lambda r: r["pk"]) if r["pk"]]
    assert actual_pk == [c.name for c in reference[table].columns if c.pk]


@pytest.mark.parametrize("table", APP_TABLES)
async def test_new_table_constraints_match_reference(
    new_db: Path, reference: dict[str, RefTable], table: str
) -> None:
    ref = reference[table]
    with _sqlite(new_db) as conn:
        fks = conn.execute(
            'SELECT "from", "table", "to", on_delete FROM pragma_foreign_key_list(?)', (table,)
        ).fetchall()
        unique_indexes = conn.execute(
            "SELECT name FROM pragma_index_list(?) WHERE origin = 'u'", (table,)
        ).fetchall()
        uniques = {
            tuple(r[0] for r in conn.execute("SELECT name FROM pragma_index_info(?)", (i[0],)))
            for i in unique_indexes
        }
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    assert {(r[0], r[1], r[2], r[3]) for r in fks} == {
        (c.name, *c.fk) for c in ref.columns if c.fk is not None
    }
    assert uniques == ref.uniques
    for check in ref.checks:
        assert f"CHECK({_norm(check)})" in _norm(sql)
    assert _norm(sql).count("CHECK(") == len(ref.checks)
    assert ("AUTOINCREMENT" in sql) == ref.autoincrement


@pytest.mark.parametrize("table", APP_TABLES)
async def test_new_table_indexes_match_reference(
    new_db: Path, reference: dict[str, RefTable], table: str
) -> None:
    expected = reference[table].indexes
    with _sqlite(new_db) as conn:
        listed = conn.execute(
            "SELECT name, \"unique\", partial FROM pragma_index_list(?) WHERE origin = 'c'",
            (table,),
        ).fetchall()
        assert {r["name"] for r in listed} == set(expected)
        for row in listed:
            ref = expected[row["name"]]
            columns = conn.execute(
                'SELECT name, "desc" FROM pragma_index_xinfo(?) WHERE key = 1 ORDER BY seqno',
                (row["name"],),
            ).fetchall()
            assert tuple((c[0], bool(c[1])) for c in columns) == ref.columns, ref.name
            assert not row["unique"], ref.name
            (sql,) = conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (ref.name,)
            ).fetchone()
            where = re.search(r"\bWHERE\b(.*)$", sql, re.DOTALL)
            assert bool(row["partial"]) == (ref.where is not None), ref.name
            assert (where and _norm(where[1])) == (ref.where and _norm(ref.where)), ref.name


async def test_new_file_state(new_db: Path) -> None:
    with _sqlite(new_db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert _all(conn, "PRAGMA integrity_check") == [("ok",)]
        assert _all(conn, "PRAGMA foreign_key_check") == []
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
        assert _all(conn, "SELECT key, value FROM settings") == [("app_mode", "single")]
        assert _all(conn, "SELECT key, value FROM aus_meta") == [
            ("schema_version", str(schema.OWN_SCHEMA_VERSION))
        ]


async def test_our_writer_syncs_as_the_apps_own_connection_in_wal_mode_only(tmp_path: Path) -> None:
    """WAL (the app's mode, and a new file's): synchronous NORMAL, as the app's better-sqlite3 runs
    it (reference/app-database.md §6). Any other journal mode keeps SQLite's FULL, under which
    NORMAL could corrupt the file at a power loss."""
    rollback_journal = tmp_path / "app.db"
    _make_app_db(rollback_journal)
    with _sqlite(rollback_journal) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    for path, expected in ((tmp_path / "new.db", 1), (rollback_journal, 2)):
        db = await Database.open(path)
        try:
            async with db.transaction() as writer, writer.execute("PRAGMA synchronous") as cursor:
                assert tuple(await cursor.fetchone() or ()) == (expected,), path.name
        finally:
            await db.close()


async def test_new_file_enforces_the_apps_checks_and_delete_actions(new_db: Path) -> None:
    with _sqlite(new_db) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        insert_loc = "INSERT INTO locs (locid, loc12, locnam, address_state) VALUES (?, ?, 'L', ?)"
        conn.execute(insert_loc, ("loc-1", "loc1", None))
        conn.execute(insert_loc, ("loc-2", "loc2", "NY"))
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute(insert_loc, ("loc-3", "loc3", "NYC"))
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute("INSERT INTO jobs (job_id, queue, payload, status) VALUES ('j', 'q', '{}', 'x')")
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute(
                "INSERT INTO import_sessions (session_id, locid, source_paths, status)"
                " VALUES ('s', 'loc-1', '[]', 'x')"
            )
        conn.execute("INSERT INTO slocs (subid, sub12, locid, subnam) VALUES ('sub', 's', 'loc-1', 'S')")
        conn.execute(
            "INSERT INTO imgs (imghash, imgnam, imgnamo, imgloc, imgloco, locid, subid)"
            " VALUES ('h', 'n', 'o', '/a', '/b', 'loc-1', 'sub')"
        )
        conn.execute("DELETE FROM slocs WHERE subid = 'sub'")
        assert _all(conn, "SELECT subid FROM imgs") == [(None,)]
        conn.execute(
            "INSERT INTO import_sessions (session_id, locid, source_paths) VALUES ('s', 'loc-1', '[]')"
        )
        # import_sessions.locid has no ON DELETE action, unlike the media tables.
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            conn.execute("DELETE FROM locs WHERE locid = 'loc-1'")
        conn.execute("DELETE FROM import_sessions")
        conn.execute("DELETE FROM locs WHERE locid = 'loc-1'")
        assert conn.execute("SELECT COUNT(*) FROM imgs").fetchone()[0] == 0


async def test_every_required_column_exists_in_a_new_file(new_db: Path) -> None:
    with _sqlite(new_db) as conn:
        existing = _columns_by_table(conn)
    absent = [
        f"{table}.{column}"
        for table, columns in schema.REQUIRED_COLUMNS.items()
        for column in columns
        if column not in existing.get(table, set())
    ]
    assert absent == []
    assert schema.missing_columns(existing) == []


@pytest.mark.parametrize("table", ["imports", "import_sessions", "jobs", "job_dead_letter", "video_proxies"])
def test_required_columns_cover_every_column_of_tables_we_write_whole_rows_of(
    reference: dict[str, RefTable], table: str
) -> None:
    assert schema.REQUIRED_COLUMNS[table] == tuple(c.name for c in reference[table].columns)


def test_app_schema_only_creates_if_absent_and_is_repeatable(tmp_path: Path) -> None:
    assert all(
        s.startswith(("CREATE TABLE IF NOT EXISTS ", "CREATE INDEX IF NOT EXISTS "))
        for s in schema.APP_SCHEMA
    )
    path = tmp_path / "twice.db"
    _make_app_db(path)
    with _sqlite(path) as conn:
        before = _app_master(conn)
        for statement in (*schema.APP_SCHEMA, *schema.APP_SEED, *schema.APP_SEED):
            conn.execute(statement)
        assert _app_master(conn) == before
        assert conn.execute("SELECT COUNT(*) FROM settings").fetchone()[0] == 1


# --- missing_columns -----------------------------------------------------------------------------


def _complete() -> dict[str, set[str]]:
    return {table: set(columns) for table, columns in schema.REQUIRED_COLUMNS.items()}


def test_missing_columns_accepts_a_complete_file_with_extras() -> None:
    existing = _complete()
    existing["imgs"].add("custom_column")
    existing["metrics"] = {"id"}
    assert schema.missing_columns(existing) == []


def test_missing_columns_names_missing_tables_and_columns_sorted() -> None:
    existing = _complete()
    del existing["jobs"]
    existing["imgs"].discard("file_size_bytes")
    existing["locs"] -= {"bag_status", "address_state"}
    assert schema.missing_columns(existing) == [
        "imgs.file_size_bytes",
        "jobs",
        "locs.address_state",
        "locs.bag_status",
    ]


def test_missing_columns_reports_a_missing_table_once() -> None:
    existing = _complete()
    del existing["video_proxies"]
    assert schema.missing_columns(existing) == ["video_proxies"]


def test_missing_columns_of_an_empty_file_lists_every_required_table() -> None:
    assert schema.missing_columns({}) == sorted(schema.REQUIRED_COLUMNS)


def test_own_prefix_cannot_collide_with_the_apps_sidecar_imports() -> None:
    assert schema.OWN_PREFIX == "aus_"
    assert not "sidecar_imports".startswith(schema.OWN_PREFIX)


# --- An existing app file ------------------------------------------------------------------------


async def test_existing_file_missing_a_column_and_a_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _make_app_db(path)
    with _sqlite(path) as conn:
        conn.execute("ALTER TABLE imgs DROP COLUMN file_size_bytes")
        conn.execute("DROP TABLE jobs")
        before = _app_master(conn)

    refused = await _refused(path, SchemaTooOld)

    assert refused.data["missing"] == ["imgs.file_size_bytes", "jobs"]
    assert "imgs.file_size_bytes" in refused.message
    assert "jobs" in refused.message
    with _sqlite(path) as conn:
        # Refused means untouched: not even our own tables were added.
        assert _app_master(conn) == before
        assert not any(t.startswith(schema.OWN_PREFIX) for t in _tables(conn))


async def test_the_later_app_s_database_is_refused_naming_what_differs(tmp_path: Path) -> None:
    """The later generation (abandoned-archive, electron/main/database.ts: migration 67 renamed
    locs.type to category; ADR-046 dropped loc12) is newer, not older: it is named as such."""
    path = tmp_path / "later.db"
    _make_app_db(path)
    with _sqlite(path) as conn:
        # Its locs table: the same columns, but category for type and no loc12.
        columns = [r[1] for r in conn.execute("PRAGMA table_info(locs)") if r[1] not in ("loc12", "type")]
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("DROP TABLE locs")
        conn.execute(f"CREATE TABLE locs ({', '.join(columns)}, category TEXT)")
        before = _app_master(conn)

    refused = await _refused(path, LaterAppDatabase)

    assert refused.data["differences"] == ["locs.category instead of locs.type", "no locs.loc12"]
    assert "later generation of AU Archive" in refused.message
    assert "locs.category instead of locs.type" in refused.message and "too old" not in refused.message
    with _sqlite(path) as conn:
        assert _app_master(conn) == before


async def test_existing_complete_file_gets_no_app_ddl_only_own_tables(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    _make_app_db(path)
    with _sqlite(path) as conn:
        before_master = _app_master(conn)
        before_tables = _tables(conn)
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]

    db = await Database.open(path)
    await db.close()

    with _sqlite(path) as conn:
        assert _app_master(conn) == before_master
        added = _tables(conn) - before_tables
        # The app's journal mode is the app's: an existing file keeps whatever it had.
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == journal
        assert conn.execute("SELECT COUNT(*) FROM settings").fetchone()[0] == 0
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert "aus_meta" in added
    assert all(t.startswith(schema.OWN_PREFIX) for t in added)
    assert _own_version(path) == str(schema.OWN_SCHEMA_VERSION)


# --- Own tables ----------------------------------------------------------------------------------


async def test_opening_twice_is_idempotent(new_db: Path) -> None:
    with _sqlite(new_db) as conn:
        before = _all(conn, "SELECT name, sql FROM sqlite_master ORDER BY name")

    db = await Database.open(new_db)
    await db.close()

    with _sqlite(new_db) as conn:
        assert _all(conn, "SELECT name, sql FROM sqlite_master ORDER BY name") == before
        assert conn.execute("SELECT COUNT(*) FROM aus_meta").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM settings").fetchone()[0] == 1
    assert _own_version(new_db) == str(schema.OWN_SCHEMA_VERSION)


async def test_own_steps_apply_once_each(new_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A plain CREATE TABLE fails if run twice, so a second open proves the step was skipped.
    steps = (*schema._OWN_MIGRATIONS, ("CREATE TABLE aus_probe (x INTEGER)",))
    monkeypatch.setattr(schema, "_OWN_MIGRATIONS", steps)
    monkeypatch.setattr(schema, "OWN_SCHEMA_VERSION", len(steps))

    for _ in range(2):
        db = await Database.open(new_db)
        await db.close()

    assert _own_version(new_db) == str(len(steps))
    with _sqlite(new_db) as conn:
        assert "aus_probe" in _tables(conn)


async def test_a_step_recorded_after_we_looked_is_not_rerun(
    new_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process may apply a step between our first read and our write lock.
    steps = (*schema._OWN_MIGRATIONS, ("CREATE TABLE aus_probe (x INTEGER)",))
    monkeypatch.setattr(schema, "_OWN_MIGRATIONS", steps)
    monkeypatch.setattr(schema, "OWN_SCHEMA_VERSION", len(steps))
    db = await Database.open(new_db)
    await db.close()

    real_version = schema._own_version
    reads: list[int] = []

    async def stale_first_read(conn: aiosqlite.Connection) -> int:
        reads.append(await real_version(conn))
        return len(steps) - 1 if len(reads) == 1 else reads[-1]

    monkeypatch.setattr(schema, "_own_version", stale_first_read)
    async with aiosqlite.connect(new_db, isolation_level=None) as conn:
        await schema.ensure_own_schema(conn)

    assert len(reads) == 2
    assert _own_version(new_db) == str(len(steps))


async def test_failed_own_step_is_rolled_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "new.db"
    failing = ("CREATE TABLE aus_probe (x INTEGER)", "INSERT INTO aus_no_such_table VALUES (1)")
    steps = (*schema._OWN_MIGRATIONS, failing)
    monkeypatch.setattr(schema, "_OWN_MIGRATIONS", steps)
    monkeypatch.setattr(schema, "OWN_SCHEMA_VERSION", len(steps))

    refused = await _refused(path, sqlite3.OperationalError)

    assert "aus_no_such_table" in str(refused)
    with _sqlite(path) as conn:
        assert "aus_probe" not in _tables(conn)
    assert _own_version(path) == str(len(steps) - 1)

    monkeypatch.undo()
    db = await Database.open(path)
    await db.close()
    assert _own_version(path) == str(schema.OWN_SCHEMA_VERSION)


async def test_file_from_a_newer_sidecar_is_refused(new_db: Path) -> None:
    newer = schema.OWN_SCHEMA_VERSION + 1
    with _sqlite(new_db) as conn:
        conn.execute("UPDATE aus_meta SET value = ? WHERE key = 'schema_version'", (str(newer),))

    error = await _refused(new_db, OwnSchemaTooNew)

    assert isinstance(error, SidecarError)
    assert (error.code, error.data["kind"]) == (1007, "own_schema_too_new")
    assert error.message == (
        "The sidecar's tables were written by a newer sidecar"
        f" (own schema v{newer} > v{schema.OWN_SCHEMA_VERSION})"
    )
    assert _own_version(new_db) == str(newer)
