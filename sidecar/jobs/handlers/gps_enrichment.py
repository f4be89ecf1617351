"""`gps-enrichment`: a location (or the sub-location the import was for) that has no coordinates
takes them from its imported media, as the later app's job worker did (abandoned-archive,
electron/services/job-worker-service.ts, handleGpsEnrichmentJob): the earliest-dated image with GPS,
else the earliest video, stored with `gps_source = 'media_gps'`, then `location:gps-enriched`.

Unlike that worker, coordinates already there are never replaced, whatever their source: the user
may have typed them. It runs once no metadata job is waiting (`WAITS_FOR_IDLE`), so the GPS of every
file of the import is known.
"""

from typing import Any

from sidecar.archive.media import MediaType
from sidecar.archive.tables import media_table
from sidecar.jobs.handlers import JobContext

SOURCE = "media_gps"
# Oldest capture first; GPS 0,0 is what cameras write without a fix, not a place.
_FIRST_WITH_GPS = (
    "SELECT meta_gps_lat, meta_gps_lng FROM {table} WHERE locid = ? AND {sub}"
    " meta_gps_lat IS NOT NULL AND meta_gps_lng IS NOT NULL AND NOT (meta_gps_lat = 0 AND meta_gps_lng = 0)"
    " ORDER BY meta_date_taken IS NULL, meta_date_taken LIMIT 1"
)


async def gps_enrichment(job: JobContext) -> dict[str, Any]:
    locid: str = job.payload["locid"]
    subid: str | None = job.payload.get("subid")
    target, key, value = ("slocs", "subid", subid) if subid else ("locs", "locid", locid)
    row = await job.db.fetch_one(f"SELECT gps_lat, gps_lng FROM {target} WHERE {key} = ?", (value,))
    if row is None:
        return {"enriched": False, "reason": f"no {target} row {value}"}
    if row[0] is not None and row[1] is not None:
        return {"enriched": False, "reason": "already has coordinates"}
    for kind in (MediaType.IMAGE, MediaType.VIDEO):
        sql = _FIRST_WITH_GPS.format(table=media_table(kind).table, sub="subid = ? AND" if subid else "")
        found = await job.db.fetch_one(sql, (locid, subid) if subid else (locid,))
        if found is not None:
            lat, lng = float(found[0]), float(found[1])
            break
    else:
        return {"enriched": False, "reason": "no media with GPS"}
    async with job.db.transaction() as conn:
        cursor = await conn.execute(
            f"UPDATE {target} SET gps_lat = ?, gps_lng = ?, gps_source = ?"
            f" WHERE {key} = ? AND (gps_lat IS NULL OR gps_lng IS NULL)",
            (lat, lng, SOURCE, value),
        )
        if cursor.rowcount == 0:  # set meanwhile (the user, in the app)
            return {"enriched": False, "reason": "already has coordinates"}
    if not subid:  # the app listens for the host location's event only
        job.events.gps_enriched(locid, lat, lng, kind)
    return {"enriched": True, "lat": lat, "lng": lng, "source": kind.value, "target": target}
