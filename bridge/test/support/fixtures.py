"""Test fixtures the bridge's Node tests need from the Python side: a location row and dead-letter
rows written into the sidecar's database as the app writes them, and real JPEG files.

Usage: python fixtures.py location DB | dead-letter DB QUEUE FAILED_AT | jpeg PATH SEED
Prints one JSON value on stdout. Only the standard library and Pillow (a sidecar dependency).
"""

import json
import sqlite3
import sys
import uuid
from contextlib import closing


def location(db_path: str) -> dict[str, object]:
    locid = str(uuid.uuid4())
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


def jpeg(path: str, seed: int) -> str:
    from PIL import Image

    image = Image.new("RGB", (64, 48), ((seed * 70) % 256, (seed * 130) % 256, 90))
    image.save(path, "JPEG", quality=90)
    return path


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "location":
        result: object = location(args[0])
    elif command == "dead-letter":
        result = dead_letter(args[0], args[1], args[2])
    elif command == "jpeg":
        result = jpeg(args[0], int(args[1]))
    else:
        raise SystemExit(f"unknown command {command!r}")
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
