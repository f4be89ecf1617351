"""`location-stats`: per-type file counts and bytes of a location, returned as the job's result."""

from typing import Any

from sidecar.archive.tables import MEDIA_TABLES
from sidecar.jobs.handlers import JobContext


async def location_stats(job: JobContext) -> dict[str, Any]:
    locid = job.payload["locid"]
    stats: dict[str, Any] = {}
    for table in MEDIA_TABLES.values():
        row = await job.db.fetch_one(
            f"SELECT count(*), coalesce(sum(file_size_bytes), 0) FROM {table.table} WHERE locid = ?", (locid,)
        )
        assert row is not None
        stats[table.plural] = {"count": row[0], "bytes": row[1]}
    stats["total"] = {
        "count": sum(s["count"] for s in stats.values()),
        "bytes": sum(s["bytes"] for s in stats.values()),
    }
    return {"locid": locid, "stats": stats}
