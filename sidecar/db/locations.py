"""Reads the app's `locs` rows the import needs: a location's identity and folder-naming fields."""

from dataclasses import dataclass

from sidecar.db.connection import Database


@dataclass(frozen=True, slots=True)
class Location:
    """What an import needs of a `locs` row: its identity and the fields that name its folder."""

    locid: str
    loc12: str
    locnam: str
    slocnam: str | None
    type: str | None
    address_state: str | None


async def find_location(db: Database, locid: str) -> Location | None:
    row = await db.fetch_one(
        "SELECT locid, loc12, locnam, slocnam, type, address_state FROM locs WHERE locid = ?", (locid,)
    )
    return None if row is None else Location(*row)


async def sublocation_of(db: Database, subid: str, locid: str) -> bool:
    """Whether `subid` is a sub-location (`slocs`) of location `locid`."""
    row = await db.fetch_one("SELECT 1 FROM slocs WHERE subid = ? AND locid = ?", (subid, locid))
    return row is not None
