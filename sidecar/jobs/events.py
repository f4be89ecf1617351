"""How the jobs report outward without knowing the wire: an injected sink of domain events
(api/jobs.py's JobNotifier turns them into the app's notifications)."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sidecar.archive.media import MediaType
from sidecar.jobs.store import DeadLetterEntry, Queue


@dataclass(frozen=True, slots=True)
class ThumbnailPaths:
    small: str  # 400 px on the short edge
    large: str  # 800 px
    preview: str  # 1920 px


class JobEvents(Protocol):
    def progress(self, queue: Queue, job_id: str, percent: float, message: str | None) -> None:
        """How far a running job got; an undelivered earlier one may be replaced by it."""

    def metadata_complete(self, hash: str, media_type: MediaType, metadata: Mapping[str, Any]) -> None:
        """A file's metadata was read; `metadata` holds the app's typed fields."""

    def thumbnail_ready(self, hash: str, media_type: MediaType, paths: ThumbnailPaths) -> None: ...

    def proxy_ready(self, hash: str, path: str) -> None: ...

    def gps_enriched(self, locid: str, lat: float, lng: float, source: MediaType) -> None:
        """A location without coordinates got them from its media."""

    def dead_letter(self, entry: DeadLetterEntry) -> None:
        """A job exhausted its attempts (or failed for good)."""
