"""Test fixtures the bridge's Node tests need from the Python side: location, sub-location and
dead-letter rows written into the sidecar's database as the app writes them, real JPEG files
(GPS-tagged by exiftool when asked), and rows read back.

Usage: python fixtures.py location DB [LOCID] | sublocation DB LOCID SUBID SUBNAM
     | dead-letter DB QUEUE FAILED_AT | jpeg PATH SEED [LAT LNG] | query DB SQL [ARG...]
Prints one JSON value on stdout. Only the standard library, Pillow (a sidecar dependency) and
exiftool (which the sidecar needs too).
"""

import json
import shutil
import sqlite3
import subprocess
import sys
import uuid
from contextlib import closing


def location(db_path: str, locid: str | None = None) -> dict[str, object]:
    """A `locs` row: a UUID id as the first generation issues them, or the given one (the later
    generation's 16-hex BLAKE3 ids, whose loc12 is their first 12 characters)."""
    locid = locid or str(uuid.uuid4())
    loc12 = locid.replace("-", "")[:12]
    with closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        db.execute(
            "INSERT INTO locs (locid, loc12, locnam, slocnam, type, address_state, locadd)"
            " VALUES (?, ?, 'Old Factory', 'old-factory', 'Factory', 'NY', '2025-01-01T00:00:00.000Z')",
            (locid, loc12),
        )
        db.execute(
            "INSERT OR REPLACE INTO settings (key, value)"
            " VALUES ('current_user_id', 'user-1'), ('current_user', 'alice')"
        )
    return {
        "locid": locid,
        "loc12": loc12,
        "address_state": "NY",
        "type": "Factory",
        "slocnam": "old-factory",
    }


def sublocation(db_path: str, locid: str, subid: str, subnam: str) -> dict[str, object]:
    """A `slocs` row of location `locid`, its sub12 the first 12 characters of its id."""
    sub12 = subid.replace("-", "")[:12]
    with closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        db.execute(
            "INSERT INTO slocs (subid, sub12, locid, subnam, ssubname, created_date)"
            " VALUES (?, ?, ?, ?, ?, '2025-01-01T00:00:00.000Z')",
            (subid, sub12, locid, subnam, subnam.lower().replace(" ", "-")),
        )
    return {"subid": subid, "sub12": sub12, "locid": locid, "subnam": subnam}


def dead_letter(db_path: str, queue: str, failed_at: str) -> int:
    job_id = f"job-{uuid.uuid4()}"
    payload = json.dumps({"hash": "0123456789abcdef"})
    with closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        db.execute(
            "INSERT INTO jobs (job_id, queue, priority, status, payload, attempts, max_attempts, error,"
            " created_at, completed_at) VALUES (?, ?, 10, 'dead', ?, 3, 3, 'boom', ?, ?)",
            (job_id, queue, payload, failed_at, failed_at),
        )
        cursor = db.execute(
            "INSERT INTO job_dead_letter (job_id, queue, payload, error, attempts, failed_at, acknowledged)"
            " VALUES (?, ?, ?, 'boom', 3, ?, 0)",
            (job_id, queue, payload, failed_at),
        )
        return int(cursor.lastrowid or 0)


def jpeg(path: str, seed: int, gps: tuple[float, float] | None = None) -> str:
    from PIL import Image

    image = Image.new("RGB", (64, 48), ((seed * 70) % 256, (seed * 130) % 256, 90))
    image.save(path, "JPEG", quality=90)
    if gps is not None:
        lat, lng = gps
        exiftool = shutil.which("exiftool") or "exiftool"
        tags = [
            f"-GPSLatitude={abs(lat)}",
            f"-GPSLatitudeRef={'N' if lat >= 0 else 'S'}",
            f"-GPSLongitude={abs(lng)}",
            f"-GPSLongitudeRef={'E' if lng >= 0 else 'W'}",
        ]
        subprocess.run([exiftool, "-q", "-overwrite_original", *tags, path], check=True)
    return path


def query(db_path: str, sql: str, args: list[str]) -> list[dict[str, object]]:
    """The rows of one SELECT, as objects keyed by column name (read-only connection)."""
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute(sql, args)]


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "location":
        result: object = location(args[0], args[1] if len(args) > 1 else None)
    elif command == "sublocation":
        result = sublocation(args[0], args[1], args[2], args[3])
    elif command == "dead-letter":
        result = dead_letter(args[0], args[1], args[2])
    elif command == "jpeg":
        result = jpeg(args[0], int(args[1]), (float(args[2]), float(args[3])) if len(args) > 3 else None)
    elif command == "query":
        result = query(args[0], args[1], args[2:])
    else:
        raise SystemExit(f"unknown command {command!r}")
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
