"""`import:v2:*`: params already checked against protocol/ become an ImportRequest, the orchestrator
does the work, and its outcomes, snapshots and views become the wire's dicts here and only here."""

from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, Protocol, cast

from sidecar.api import wire
from sidecar.api.refusals import database_refusals
from sidecar.errors import SidecarError
from sidecar.log import get_logger
from sidecar.pipeline.orchestrator import ImportOrchestrator, ImportRequest
from sidecar.pipeline.outcome import ImportOutcome, ProgressSnapshot, QueueView, ResumableSession
from sidecar.pipeline.status import ImportStatus, ImportStep
from sidecar.rpc.dispatcher import Handler

log = get_logger(__name__)


class Emitter(Protocol):
    def emit(self, event: str, payload: Any, latest_key: Hashable | None = None) -> None: ...


class ImportApi:
    def __init__(self, orchestrator: ImportOrchestrator | None, unavailable: SidecarError | None) -> None:
        # Without a usable database every import method answers with the reason (e.g. schema too old).
        self._orchestrator = orchestrator
        self._unavailable = unavailable

    def handlers(self) -> dict[str, Handler]:
        return {
            "import:v2:start": self.start,
            "import:v2:cancel": self.cancel,
            "import:v2:status": self.status,
            "import:v2:resumable": self.resumable,
            "import:v2:resume": self.resume,
        }

    @contextmanager
    def _imports(self) -> Iterator[ImportOrchestrator]:
        """The orchestrator, with the database locked too long or full reported as such."""
        if self._orchestrator is None:
            raise self._unavailable or SidecarError()
        with database_refusals(self._orchestrator.db_path):
            yield self._orchestrator

    async def start(self, options: wire.ImportV2StartOptions) -> wire.ImportV2StartResult:
        with self._imports() as imports:
            return import_result(await imports.start(import_request(options)))

    async def cancel(self, session_id: str) -> wire.ImportV2CancelResult:
        with self._imports() as imports:
            if await imports.cancel(session_id):
                return {"cancelled": True}
            return {"cancelled": False, "reason": "No active import found"}

    async def status(self) -> wire.ImportV2StatusResult:
        with self._imports() as imports:
            return status_result(imports.status())

    async def resumable(self) -> wire.ImportV2ResumableResult:
        with self._imports() as imports:
            return [resumable_session(s) for s in await imports.resumable()]

    async def resume(self, session_id: str) -> wire.ImportV2ResumeResult:
        with self._imports() as imports:
            return import_result(await imports.resume(session_id))


class ImportNotifier:
    """The orchestrator's events as the app's notifications: progress latest-wins per session."""

    def __init__(self, emitter: Emitter) -> None:
        self._emitter = emitter

    def progress(self, snapshot: ProgressSnapshot) -> None:
        event: wire.ImportV2ProgressEvent = progress_event(snapshot)
        self._emitter.emit(
            "import:v2:progress", event, latest_key=("import:v2:progress", snapshot.session_id)
        )

    def completed(self, outcome: ImportOutcome) -> None:
        event: wire.ImportV2CompleteEvent = {
            "sessionId": outcome.session_id,
            "status": _status(outcome.status),
            "totalImported": outcome.finalized,
            "totalDuplicates": outcome.duplicates,
            "totalErrors": outcome.total_errors,
            "totalDurationMs": outcome.duration_ms,
            "jobsQueued": outcome.jobs_queued,
        }
        self._emitter.emit("import:v2:complete", event)


def import_request(options: wire.ImportV2StartOptions) -> ImportRequest:
    """The request of either generation of the app: the later one says `category` for `type`.
    Unknown keys are ignored, as the app's own handler (zod) did."""
    unknown = sorted(set(options) - set(wire.ImportV2StartOptions.__annotations__))
    if unknown:
        log.debug("unknown import keys ignored", extra={"action": "import.unknown_keys", "keys": unknown})
    return ImportRequest(
        paths=tuple(options["paths"]),
        locid=options["locid"],
        loc12=options.get("loc12"),
        address_state=options.get("address_state"),
        type=options.get("type") or options.get("category"),
        slocnam=options.get("slocnam"),
        subid=options.get("subid"),
        auth_imp=options.get("auth_imp"),
        is_contributed=bool(options.get("is_contributed")),
        contribution_source=options.get("contribution_source"),
    )


def import_result(outcome: ImportOutcome) -> wire.ImportV2Result:
    copy_result: wire.ImportV2ResultCopyResult = {
        "totalBytes": outcome.copied_bytes,
        "totalErrors": outcome.errors_in(ImportStep.COPY),
        "strategy": _strategy(outcome.strategy),
    }
    validation: wire.ImportV2ResultValidationResult = {"totalInvalid": outcome.errors_in(ImportStep.VALIDATE)}
    if outcome.from_medium is not None:
        validation["fromMedium"] = outcome.from_medium
    result: wire.ImportV2Result = {
        "sessionId": outcome.session_id,
        "status": _status(outcome.status),
        "scanResult": {
            "totalFiles": outcome.total_files,
            "totalBytes": outcome.total_bytes,
            "skipped": outcome.skipped,
        },
        "hashResult": {
            "totalDuplicates": outcome.duplicates,
            "totalErrors": outcome.errors_in(ImportStep.HASH),
        },
        "copyResult": copy_result,
        "validationResult": validation,
        "finalizationResult": {
            "totalFinalized": outcome.finalized,
            "totalErrors": outcome.errors_in(ImportStep.FINALIZE),
            "jobsQueued": outcome.jobs_queued,
            "totalSidecars": outcome.sidecars_finalized,
        },
        "totalErrors": outcome.total_errors,
        "errors": [
            {"path": p.path, "step": _step_label(p.step), "message": p.message} for p in outcome.problems
        ],
        "skipped": [{"path": s.path, "reason": s.reason} for s in outcome.skips],
        "startedAt": outcome.started_at,
        "completedAt": outcome.completed_at,
        "totalDurationMs": outcome.duration_ms,
    }
    if outcome.problems_truncated:
        result["errorsTruncated"] = True
    if outcome.skips_truncated:
        result["skippedTruncated"] = True
    if outcome.error is not None:
        result["error"] = outcome.error
    return result


def progress_event(snapshot: ProgressSnapshot) -> wire.ImportV2Progress:
    return {
        "sessionId": snapshot.session_id,
        "status": _status(snapshot.status),
        "step": snapshot.step,
        "totalSteps": 5,
        "percent": snapshot.percent,
        "currentFile": snapshot.current_file,
        "filesProcessed": snapshot.files_processed,
        "filesTotal": snapshot.files_total,
        "bytesProcessed": snapshot.bytes_processed,
        "bytesTotal": snapshot.bytes_total,
        "duplicatesFound": snapshot.duplicates,
        "errorsFound": snapshot.errors,
        "estimatedRemainingMs": snapshot.estimated_remaining_ms,
    }


def status_result(view: QueueView) -> wire.ImportV2StatusResult:
    progress = None if view.progress is None else progress_event(view.progress)
    return {
        "sessionId": view.session_id,
        "status": "idle" if progress is None else progress["status"],
        "progress": progress,
        "queued": list(view.queued),
    }


def resumable_session(session: ResumableSession) -> wire.ResumableSession:
    return {
        "sessionId": session.session_id,
        "locid": session.locid,
        "status": _status(session.status),
        "lastStep": session.last_step,
        "startedAt": session.started_at,
        "totalFiles": session.total_files,
        "processedFiles": session.processed_files,
    }


def _status(status: ImportStatus) -> wire.ImportStatus:
    return status.value


def _strategy(strategy: str | None) -> Literal["reflink", "copy", "hardlink"]:
    # Nothing copied at all reads as "copy", the default strategy.
    return cast(Literal["reflink", "copy", "hardlink"], strategy or "copy")


def _step_label(step: ImportStep) -> Literal["scan", "hash", "copy", "validate", "finalize"]:
    return cast(Literal["scan", "hash", "copy", "validate", "finalize"], step.label)
