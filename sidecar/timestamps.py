"""Timestamps in the app's own format: JS `toISOString()`, UTC with milliseconds and `Z`.

The app's job queue compares these as strings, so every timestamp written must have this exact shape.
"""

from datetime import UTC, datetime, timedelta


def iso(moment: datetime) -> str:
    """`2025-12-05T23:04:57.123Z` for an aware datetime."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso(offset: timedelta = timedelta(0)) -> str:
    return iso(datetime.now(UTC) + offset)
