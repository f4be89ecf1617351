"""What exiftool's flat tags (`-json -n`) say about a file, by one policy per media type: the
capture time, the size as displayed, the camera, the position. It knows exiftool's tag names,
never the database or the queue; the README's "Dates and dimensions" states the policy."""

import email.utils
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sidecar.timestamps import iso

# (date tag, its sub-second tag, its zone tag), first one that parses wins. EXIF 2.31 pairs each
# date with its own SubSecTime*/OffsetTime* tag; exiftool's composites (SubSecDateTimeOriginal, …)
# already join them when the camera wrote them, the plain tag plus its partners covers the rest.
_STILL_DATES: tuple[tuple[str, str | None, str | None], ...] = (
    ("SubSecDateTimeOriginal", None, "OffsetTimeOriginal"),
    ("DateTimeOriginal", "SubSecTimeOriginal", "OffsetTimeOriginal"),
    ("SubSecCreateDate", None, "OffsetTimeDigitized"),
    ("CreateDate", "SubSecTimeDigitized", "OffsetTimeDigitized"),
    ("DateTimeCreated", None, None),  # IPTC date + time (composite)
    ("DateCreated", None, None),  # XMP photoshop:DateCreated (a date alone is not enough)
    ("SubSecModifyDate", None, "OffsetTime"),
    ("ModifyDate", "SubSecTime", "OffsetTime"),  # IFD0 DateTime: the only date of some scanners
    ("GPSDateTime", None, None),  # UTC (composite of GPSDateStamp + GPSTimeStamp)
    ("CreationTime", None, None),  # PNG tEXt "Creation Time"
)
# QuickTime: Apple's CreationDate is the local start of recording with its zone; CreateDate (mvhd)
# is UTC by the QuickTime spec, and an iPhone writes the end of recording there; then what other
# containers carry (AVCHD/H.264 and AVI/Matroska DateTimeOriginal, the media and track headers).
_VIDEO_DATES: tuple[tuple[str, str | None, str | None], ...] = (
    ("CreationDate", None, None),
    ("CreateDate", None, None),
    ("DateTimeOriginal", None, None),
    ("MediaCreateDate", None, None),
    ("TrackCreateDate", None, None),
)
# Cameras with an unset clock write QuickTime's or Unix's epoch into videos; that is no capture date.
_EARLIEST_VIDEO_DATE = datetime(1971, 1, 1, tzinfo=UTC)
_DATE = re.compile(
    r"(\d{4})[:-](\d\d)[:-](\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d+))?"
    # AVCHD's "+02:00 DST": the offset already includes daylight saving time and exiftool prints the
    # stream's DST flag after it (its H264.pm), so the suffix is only a note; later releases may
    # write " STD" too (github.com/pulsejet/memories/issues/1710).
    r"\s*(Z|[+-]\d\d:?\d\d)?(?:\s*(?:DST|STD))?\s*"
)
# Orientations 5–8 turn the picture a quarter (EXIF 2.32, tag 0x0112): shown with width and height swapped.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})
_HEIF_MIME = ("image/heic", "image/heif", "image/avif")


def date_taken(media_type: str, tags: Mapping[str, Any]) -> str | None:
    """The capture time in the app's ISO format (UTC, milliseconds: a burst keeps its order).
    A zone written with the time or in its OffsetTime* tag is honoured; a time without one is the
    camera's wall clock, stored as if UTC (what exiftool-vendored's toISOString gave the app)."""
    policy = _VIDEO_DATES if media_type == "video" else _STILL_DATES
    for tag, subsec_tag, zone_tag in policy:
        moment = parse_date(
            tags.get(tag),
            subsec=tags.get(subsec_tag) if subsec_tag else None,
            zone=tags.get(zone_tag) if zone_tag else None,
        )
        if moment is not None and (media_type != "video" or moment >= _EARLIEST_VIDEO_DATE):
            return iso(moment)
    return None


def parse_date(value: Any, *, subsec: Any = None, zone: Any = None) -> datetime | None:
    """`2024:05:06 07:08:09[.123][+02:00|Z][ DST]` (or ISO 8601's `-` and `T`, or RFC 2822 as the
    PNG spec suggests) → an aware UTC datetime; None for anything else, including the
    `0000:00:00 00:00:00` of a camera whose clock was never set. `subsec` and `zone` apply when
    the value carries none of its own."""
    if not isinstance(value, str):
        return None
    found = _DATE.fullmatch(value.strip())
    if found is None:
        return _rfc2822(value)
    year, month, day, hour, minute, second, fraction, own_zone = found.groups()
    if fraction is None and isinstance(subsec, int | str) and str(subsec).strip().isdigit():
        fraction = str(subsec).strip()  # exiftool gives "05" as a string and "50" as a number
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int(((fraction or "") + "000000")[:6]),
        )
    except ValueError:
        return None
    offset = _zone(own_zone) if own_zone else _zone(zone) if isinstance(zone, str) else None
    return moment.replace(tzinfo=offset or UTC).astimezone(UTC)


def _zone(text: str) -> timezone | None:
    text = text.strip().replace(":", "")
    if text == "Z":
        return UTC
    if len(text) == 5 and text[0] in "+-" and text[1:].isdigit():
        minutes = int(text[1:3]) * 60 + int(text[3:])
        return timezone(timedelta(minutes=minutes if text[0] == "+" else -minutes))
    return None


def _rfc2822(value: str) -> datetime | None:
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def displayed_size(tags: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """A still's width and height as a viewer shows it, RAWs at sensor size.

    exiftool's Composite `ImageSize` knows where each format keeps the main image's size: the
    full-resolution IFD of a DNG or TIFF (SubfileType 0), ExifImageWidth/Height for a CR2 or IIQ
    whose IFD0 is the preview, RawImageCroppedSize for a RAF (exiftool's Exif.pm, Composite
    ImageSize; tested on generated CR2 and DNG stand-ins). A quarter turn swaps the two."""
    width, height = _pair(tags.get("ImageSize"))
    if width is None or height is None:
        width = first_int(tags, ("ImageWidth", "ExifImageWidth"))
        height = first_int(tags, ("ImageHeight", "ExifImageHeight"))
    if _quarter_turned(tags):
        width, height = height, width
    return width, height


def _quarter_turned(tags: Mapping[str, Any]) -> bool:
    """HEIF and AVIF turn the picture by their `irot` property (exiftool's `Rotation`), which
    decoders apply and which rules over an EXIF Orientation (Pillow even drops the EXIF tag when
    it writes irot); everything else by EXIF Orientation. Maker notes have their own `Rotation`
    tags (Panasonic, Canon), so it counts only for the HEIF family."""
    mime = tags.get("MIMEType")
    rotation = _number(tags.get("Rotation"))
    if isinstance(mime, str) and mime.startswith(_HEIF_MIME) and rotation is not None:
        return rotation % 180 == 90
    return _number(tags.get("Orientation")) in _QUARTER_TURNS


def _pair(value: Any) -> tuple[int | None, int | None]:
    """`6000 4000` (as `-n` prints it) or `6000x4000` → (6000, 4000)."""
    if not isinstance(value, str):
        return None, None
    numbers = re.findall(r"\d+(?:\.\d+)?", value)
    if len(numbers) != 2:
        return None, None
    width, height = (int(float(n)) for n in numbers)
    return (width, height) if width > 0 and height > 0 else (None, None)


def gps(tags: Mapping[str, Any]) -> dict[str, float | None] | None:
    """Signed decimal degrees (`-n` makes exiftool apply the N/S and E/W references). Exactly 0,0
    is what a camera writes without a fix (a spot in the Gulf of Guinea nobody photographs):
    no position."""
    lat, lng = _number(tags.get("GPSLatitude")), _number(tags.get("GPSLongitude"))
    altitude = _number(tags.get("GPSAltitude"))
    if (lat is None or lng is None) and isinstance(tags.get("GPSCoordinates"), str):
        # QuickTime keeps "lat lng [alt]" in one tag.
        parts = [_number(p) for p in tags["GPSCoordinates"].split()]
        if len(parts) >= 2:
            lat, lng = parts[0], parts[1]
            altitude = parts[2] if len(parts) > 2 else altitude
    if lat is None or lng is None or not (-90 <= lat <= 90 and -180 <= lng <= 180):
        return None
    if lat == 0 and lng == 0:
        return None
    return {"lat": lat, "lng": lng, "altitude": altitude}


def text(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def first_int(tags: Mapping[str, Any], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = _number(tags.get(name))
        if value is not None and value >= 0:
            return int(value)
    return None
