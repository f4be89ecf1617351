"""`jobs:*`: params already checked against protocol/; the store does the work, the scheduler is
woken when a retry adds a job. The jobs' events and entries become the wire's dicts here only."""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, cast

from sidecar.api import wire
from sidecar.api.imports import Emitter
from sidecar.api.refusals import database_refusals
from sidecar.archive.media import MediaType
from sidecar.errors import SidecarError
from sidecar.jobs.events import ThumbnailPaths
from sidecar.jobs.scheduler import JobScheduler
from sidecar.jobs.store import DeadLetterEntry, JobStore, Queue
from sidecar.rpc.dispatcher import Handler

DEFAULT_CLEAR_AGE_MS = 24 * 3600 * 1000


class JobsApi:
    def __init__(
        self, store: JobStore | None, scheduler: JobScheduler | None, unavailable: SidecarError | None
    ) -> None:
        # Without a usable database every jobs method answers with the reason (e.g. schema too old).
        self._store = store
        self._scheduler = scheduler
        self._unavailable = unavailable

    def handlers(self) -> dict[str, Handler]:
        return {
            "jobs:status": self.status,
            "jobs:deadLetter": self.dead_letter,
            "jobs:retry": self.retry,
            "jobs:acknowledge": self.acknowledge,
            "jobs:clearCompleted": self.clear_completed,
        }

    @contextmanager
    def _jobs(self) -> Iterator[JobStore]:
        """The store, with the database locked too long or full reported as such."""
        if self._store is None:
            raise self._unavailable or SidecarError()
        with database_refusals(self._store.db.path):
            yield self._store

    async def status(self) -> wire.JobsStatusResult:
        with self._jobs() as jobs:
            return cast(wire.JobsStatusResult, await jobs.stats())

    async def dead_letter(self, queue: str | None = None) -> wire.JobsDeadLetterResult:
        with self._jobs() as jobs:
            entries = await jobs.dead_letters(None if queue is None else Queue(queue))
        return [dead_letter_entry(entry) for entry in entries]

    async def retry(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._jobs() as jobs:
            new_job_id = await jobs.retry_dead_letter(int(request["deadLetterId"]))
        if new_job_id is not None and self._scheduler is not None:
            self._scheduler.wake()
        return {"success": new_job_id is not None, "newJobId": new_job_id}

    async def acknowledge(self, ids: Sequence[int]) -> dict[str, Any]:
        with self._jobs() as jobs:
            return {"acknowledged": await jobs.acknowledge(ids)}

    async def clear_completed(self, older_than_ms: float | None = None) -> dict[str, Any]:
        age = DEFAULT_CLEAR_AGE_MS if older_than_ms is None else older_than_ms
        with self._jobs() as jobs:
            return {"cleared": await jobs.clear_completed(age)}


class JobNotifier:
    """The jobs' events as the app's notifications; job progress is latest-wins per job."""

    def __init__(self, emitter: Emitter) -> None:
        self._emitter = emitter

    def progress(self, queue: Queue, job_id: str, percent: float, message: str | None) -> None:
        event: wire.JobsProgressEvent = {"queue": _queue(queue), "jobId": job_id, "progress": percent}
        if message is not None:
            event["message"] = message
        self._emitter.emit("jobs:progress", event, latest_key=("jobs:progress", job_id))

    def metadata_complete(self, hash: str, media_type: MediaType, metadata: Mapping[str, Any]) -> None:
        event: wire.AssetMetadataCompleteEvent = {
            "hash": hash,
            "mediaType": _media_type(media_type),
            "metadata": dict(metadata),
        }
        self._emitter.emit("asset:metadata-complete", event)

    def thumbnail_ready(self, hash: str, media_type: MediaType, paths: ThumbnailPaths) -> None:
        event: wire.AssetThumbnailReadyEvent = {
            "hash": hash,
            "mediaType": _media_type(media_type),
            "paths": {"sm": paths.small, "lg": paths.large, "preview": paths.preview},
        }
        self._emitter.emit("asset:thumbnail-ready", event)

    def proxy_ready(self, hash: str, path: str) -> None:
        event: wire.AssetProxyReadyEvent = {"hash": hash, "proxyPath": path}
        self._emitter.emit("asset:proxy-ready", event)

    def gps_enriched(self, locid: str, lat: float, lng: float, source: MediaType) -> None:
        kind: Literal["image", "video"] = "video" if source is MediaType.VIDEO else "image"
        event: wire.LocationGpsEnrichedEvent = {"locid": locid, "lat": lat, "lng": lng, "source": kind}
        self._emitter.emit("location:gps-enriched", event)

    def dead_letter(self, entry: DeadLetterEntry) -> None:
        listed = dead_letter_entry(entry)
        # The later app's event also says when, as `timestamp` (its job-worker-service.ts).
        event: wire.JobsDeadLetterEvent = {**listed, "timestamp": listed["failedAt"]}
        self._emitter.emit("jobs:deadLetter", event)


def dead_letter_entry(entry: DeadLetterEntry) -> wire.DeadLetterEntry:
    """The protocol's DeadLetterEntry (`jobId` and `originalJobId` are the same id)."""
    return {
        "id": entry.id,
        "jobId": entry.job_id,
        "originalJobId": entry.job_id,
        "queue": _queue(entry.queue),
        "payload": entry.payload,
        "error": entry.error,
        "attempts": entry.attempts,
        "failedAt": _iso(entry.failed_at),
        "acknowledged": entry.acknowledged,
    }


def _iso(value: str | None) -> str:
    """ISO with ms and `Z`; the SQL default `YYYY-MM-DD HH:MM:SS` (never written by the app's code) too."""
    if value and len(value) == 19 and value[10] == " ":
        return value.replace(" ", "T") + ".000Z"
    return value or "1970-01-01T00:00:00.000Z"


def _queue(queue: Queue) -> wire.QueueName:
    return queue.value


def _media_type(media_type: MediaType) -> wire.MediaType:
    return cast(wire.MediaType, media_type.value)
