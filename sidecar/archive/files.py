"""A file the archive now holds, as the import hands it to whatever follows (the job queue)."""

from dataclasses import dataclass

from sidecar.archive.media import MediaType


@dataclass(frozen=True, slots=True)
class ArchivedFile:
    hash: str
    media_type: MediaType
    archive_path: str
    raw_pair_hash: str | None = None  # the JPEG shot with this RAW
    live_pair_hash: str | None = None  # the other half of a Live Photo candidate
