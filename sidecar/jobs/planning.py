"""Which background jobs an import queues: per new file and per touched location, with their
dependencies as SPEC §6 orders them, inserted in the import's own transaction."""

from collections.abc import Sequence
from typing import Any

import aiosqlite

from sidecar.archive.files import ArchivedFile
from sidecar.archive.media import MediaType
from sidecar.jobs.store import NewJob, Priority, Queue, insert_jobs


def jobs_for(file: ArchivedFile, session_id: str) -> list[NewJob]:
    """The background work one new file needs."""
    base: dict[str, Any] = {
        "hash": file.hash,
        "mediaType": file.media_type.value,
        "archivePath": file.archive_path,
        "sessionId": session_id,
    }
    if file.raw_pair_hash:
        base["pairedHash"] = file.raw_pair_hash
    if file.live_pair_hash:
        base["livePairHash"] = file.live_pair_hash
    exiftool = NewJob(Queue.EXIFTOOL, base, Priority.HIGH)
    exiftool.payload["jobId"] = exiftool.job_id
    jobs = [exiftool]
    if file.media_type in (MediaType.IMAGE, MediaType.VIDEO):
        # After exiftool, so RAW previews and orientation are known.
        jobs.append(NewJob(Queue.THUMBNAIL, dict(base), Priority.NORMAL, depends_on=exiftool.job_id))
    if file.media_type is MediaType.VIDEO:
        ffprobe = NewJob(Queue.FFPROBE, dict(base), Priority.HIGH)
        ffprobe.payload["jobId"] = ffprobe.job_id
        jobs.append(ffprobe)
        jobs.append(NewJob(Queue.VIDEO_PROXY, dict(base), Priority.LOW, depends_on=ffprobe.job_id))
    return jobs


def location_jobs(locid: str, session_id: str, subid: str | None = None) -> list[NewJob]:
    """Per touched location, once its files are committed."""
    payload = {"locid": locid, "sessionId": session_id}
    return [
        NewJob(Queue.GPS_ENRICHMENT, {**payload, "subid": subid}, Priority.NORMAL),
        NewJob(Queue.LIVE_PHOTO, dict(payload), Priority.NORMAL),
        NewJob(Queue.BAGIT, dict(payload), Priority.LOW),
        NewJob(Queue.LOCATION_STATS, dict(payload), Priority.LOW),
    ]


class ImportJobs:
    """The job queue as the import's finalizer sees it (pipeline/finalizer.py's JobPlanner)."""

    async def queue_files(
        self, conn: aiosqlite.Connection, files: Sequence[ArchivedFile], session_id: str, now: str
    ) -> int:
        jobs = [job for file in files for job in jobs_for(file, session_id)]
        await insert_jobs(conn, jobs, now)
        return len(jobs)

    async def queue_location(
        self, conn: aiosqlite.Connection, locid: str, subid: str | None, session_id: str, now: str
    ) -> int:
        jobs = location_jobs(locid, session_id, subid)
        await insert_jobs(conn, jobs, now)
        return len(jobs)
