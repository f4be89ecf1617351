"""The archive seen from the outside: a location row and media rows as the app and the finalizer
write them, sample sources, and the archive invariant of SPEC §6 (the files on disk and the app's
tables)."""

import json
import os
import sqlite3
import uuid
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3

MEDIA = {
    "img": ("imgs", "imghash", "imgloc"),
    "vid": ("vids", "vidhash", "vidloc"),
    "doc": ("docs", "dochash", "docloc"),
    "map": ("maps", "maphash", "maploc"),
}


@dataclass(frozen=True)
class LocationFixture:
    locid: str
    loc12: str
    params: dict[str, Any]

    def start_params(self, *paths: Path | str) -> list[dict[str, Any]]:
        return [{**self.params, "paths": [str(p) for p in paths]}]


def add_location(
    db_path: Path,
    *,
    locnam: str = "Old Factory",
    slocnam: str | None = "old-factory",
    type_: str | None = "Factory",
    state: str | None = "NY",
    user: tuple[str, str] | None = ("user-1", "alice"),
    locid: str | None = None,
) -> LocationFixture:
    locid = locid or str(uuid.uuid4())
    loc12 = locid.replace("-", "")[:12]
    with closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        db.execute("PRAGMA foreign_keys = ON")
        db.execute(
            "INSERT INTO locs (locid, loc12, locnam, slocnam, type, address_state, locadd)"
            " VALUES (?, ?, ?, ?, ?, ?, '2025-01-01T00:00:00.000Z')",
            (locid, loc12, locnam, slocnam, type_, state),
        )
        if user is not None:
            db.execute(
                "INSERT OR REPLACE INTO settings (key, value)"
                " VALUES ('current_user_id', ?), ('current_user', ?)",
                user,
            )
    params = {"locid": locid, "loc12": loc12, "address_state": state, "type": type_, "slocnam": slocnam}
    return LocationFixture(locid, loc12, params)


def add_sublocation(db_path: Path, locid: str, subid: str, subnam: str = "Boiler House") -> str:
    """A `slocs` row of location `locid`, as the app writes one; returns its id."""
    with closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        db.execute("PRAGMA foreign_keys = ON")
        db.execute(
            "INSERT INTO slocs (subid, sub12, locid, subnam) VALUES (?, ?, ?, ?)",
            (subid, subid.replace("-", "")[:12], locid, subnam),
        )
    return subid


# A media type as the job payloads name it → the app table's column prefix (a key of MEDIA).
PREFIX = {"image": "img", "video": "vid", "document": "doc", "map": "map"}


def add_media_row(db_path: Path, media_type: str, archived: Path, locid: str) -> str:
    """Insert the row of an archived file, as the import's finalizer writes it (its 16-hex BLAKE3
    computed here), so a handler test can run on a real file; return the hash."""
    prefix = PREFIX[media_type]
    table, _, _ = MEDIA[prefix]
    digest = blake3.blake3(archived.read_bytes()).hexdigest()[:16]
    with closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        db.execute(
            f"INSERT INTO {table} ({prefix}hash, {prefix}nam, {prefix}namo, {prefix}loc, {prefix}loco,"
            f" locid, {prefix}add, file_size_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                digest,
                archived.name,
                archived.name,
                str(archived),
                str(archived),
                locid,
                "2025-01-01T00:00:00.000Z",
                archived.stat().st_size,
            ),
        )
    return digest


def plant_dead_letter(db_path: Path, queue: str, payload: dict[str, Any], failed_at: str) -> int:
    """A job that died, as the app's own queue records it."""
    with closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        db.execute(
            "INSERT INTO jobs (job_id, queue, priority, status, payload, attempts, max_attempts, error,"
            " created_at, completed_at) VALUES (?, ?, 10, 'dead', ?, 3, 3, 'boom', ?, ?)",
            (f"job-{failed_at}", queue, json.dumps(payload), failed_at, failed_at),
        )
        cursor = db.execute(
            "INSERT INTO job_dead_letter (job_id, queue, payload, error, attempts, failed_at, acknowledged)"
            " VALUES (?, ?, ?, 'boom', 3, ?, 0)",
            (f"job-{failed_at}", queue, json.dumps(payload), failed_at),
        )
        return int(cursor.lastrowid or 0)


def write(path: Path, data: bytes | int, seed: int = 0) -> Path:
    """Write a file: given bytes, or that many pseudo-random bytes (distinct per path and seed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, int):
        data = _random_bytes(data, f"{path}:{seed}")
    path.write_bytes(data)
    return path


def _random_bytes(size: int, key: str) -> bytes:
    return blake3.blake3(key.encode()).digest(length=size)


def hash16(path: Path) -> str:
    return blake3.blake3(path.read_bytes()).hexdigest(length=8)


def rows(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db_path)) as db:
        return list(db.execute(sql, params))


# Where background jobs write, maybe while a test looks. Their temp files are their own: each job
# sweeps a killed run's temps when it runs again (tests/jobs/handlers check that).
JOB_FOLDERS = frozenset({"_archive", ".thumbnails", ".previews", ".posters"})
JOB_TEMP_INFIX = ".proxy."  # a video proxy's temp, beside its video


def import_temps(archive: Path) -> list[Path]:
    """The import's temp files under the archive (not the background jobs')."""
    return [
        p
        for p in archive.rglob("*")
        if p.name.endswith(".aus-tmp") and not JOB_FOLDERS & set(p.parts) and not is_proxy_temp(p)
    ]


def is_proxy_temp(path: Path) -> bool:
    return path.name.endswith(".aus-tmp") and JOB_TEMP_INFIX in path.name


def assert_archive_invariant(db_path: Path, archive: Path) -> None:
    """Every media file under org-* has its row; every row's file exists with its hash; sidecars
    sit beside a row's file or in org-misc; no temp file of the import anywhere.

    What the background jobs write while the test looks (the bag in `org-doc-*/_archive/`, hidden
    video proxies `.<hash>.proxy.mp4`, thumbnails) is theirs: their own tests check it."""
    temps = import_temps(archive)
    assert not temps, f"temp files left: {temps}"
    by_kind: dict[str, dict[str, str]] = {}
    for kind, (table, hash_col, loc_col) in MEDIA.items():
        by_kind[kind] = dict(rows(db_path, f"SELECT {loc_col}, {hash_col} FROM {table}"))
        for location, digest in by_kind[kind].items():
            file = Path(location)
            assert file.is_absolute() and file.is_file(), f"row without its file: {location}"
            assert hash16(file) == digest, f"{location} does not have its hash {digest}"
    all_rows = {loc for locs in by_kind.values() for loc in locs}
    row_stems = {Path(loc).parent / Path(loc).stem for loc in all_rows}
    for file in archive.glob("locations/*/*/org-*/*"):
        if file.name == "_archive" or file.name.endswith(".proxy.mp4") or is_proxy_temp(file):
            continue  # the jobs' (a proxy's temp left by a kill is swept when its job runs again)
        kind = file.parent.name.split("-")[1]
        if kind == "misc":
            continue  # orphan sidecars: no app table holds them
        if str(file) in by_kind.get(kind, {}):
            continue
        # A sidecar beside its parent: <parent hash><sidecar ext>.
        assert file.parent / file.stem in row_stems and file.suffix in {
            ".xmp",
            ".srt",
            ".thm",
            ".lrf",
            ".json",
            ".xml",
        }, f"file without a row: {file}"


def org_files(archive: Path) -> list[Path]:
    """The archived files (hidden ones are temp files, checked by the invariant, and video proxies)."""
    return sorted(
        p for p in archive.glob("locations/*/*/org-*/*") if p.is_file() and not p.name.startswith(".")
    )


def is_iso(text: str) -> bool:
    import re

    return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", text))


def stat_key(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns
