"""What an import reports, in the domain's terms: a progress snapshot while it runs, an outcome
with exact counts when it ends. `api/` alone turns them into the wire's dicts."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sidecar.pipeline.scanner import Skipped
from sidecar.pipeline.status import ImportStatus, ImportStep

# Files named in an outcome (errors, skips); past this the list is cut, never the counts.
MAX_LISTED = 1000


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    session_id: str
    status: ImportStatus
    step: int  # 0 before the first step, else an ImportStep's number
    percent: float
    current_file: str  # "" when no file is being worked on
    files_processed: int
    files_total: int
    bytes_processed: int
    bytes_total: int
    duplicates: int
    errors: int
    estimated_remaining_ms: int  # 0 when unknown


@dataclass(frozen=True, slots=True)
class FileProblem:
    """One file that failed, and where."""

    path: str
    step: ImportStep
    message: str


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    """How an import (or one resume of it) ended. Counts are exact; `problems` and `skips` list
    the first MAX_LISTED failures and skipped files."""

    session_id: str
    status: ImportStatus
    total_files: int  # files found (a path that could not be scanned is an error, not a file)
    total_bytes: int
    skipped: int
    duplicates: int  # media files, not their sidecars
    errors_by_step: Mapping[ImportStep, int]
    copied_bytes: int
    strategy: str | None  # how most files were copied: reflink | copy | hardlink
    finalized: int  # media files given their rows by this import
    sidecars_finalized: int  # archived beside their media, without rows
    jobs_queued: int
    from_medium: bool | None  # every validation read bypassed the page cache (None: none ran)
    problems: tuple[FileProblem, ...]
    skips: tuple[Skipped, ...]
    started_at: str
    completed_at: str
    error: str | None = None

    @property
    def duration_ms(self) -> int:
        elapsed = datetime.fromisoformat(self.completed_at) - datetime.fromisoformat(self.started_at)
        return max(0, int(elapsed.total_seconds() * 1000))

    @property
    def total_errors(self) -> int:
        return sum(self.errors_by_step.values())

    @property
    def problems_truncated(self) -> bool:
        return self.total_errors > len(self.problems)

    @property
    def skips_truncated(self) -> bool:
        return self.skipped > len(self.skips)

    def errors_in(self, step: ImportStep) -> int:
        return self.errors_by_step.get(step, 0)


@dataclass(frozen=True, slots=True)
class QueueView:
    """`import:v2:status`: the running import's latest progress and the imports waiting."""

    session_id: str | None
    progress: ProgressSnapshot | None
    queued: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResumableSession:
    session_id: str
    locid: str
    status: ImportStatus
    last_step: int
    started_at: str
    total_files: int
    processed_files: int
