"""The one vocabulary of an import's steps and statuses, as the journal, the progress and the
result speak of them: step 3 is `ImportStep.COPY`, its errors are recorded under `copy`, and a
session in it has the status `copying`."""

from enum import IntEnum, StrEnum


class ImportStatus(StrEnum):
    PENDING = "pending"
    SCANNING = "scanning"
    HASHING = "hashing"
    COPYING = "copying"
    VALIDATING = "validating"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        """Never resumed again (a failed import stays resumable)."""
        return self in (ImportStatus.COMPLETED, ImportStatus.CANCELLED)


class ImportStep(IntEnum):
    """The five steps in order; the value is the step's number (`import_sessions.last_step`)."""

    SCAN = 1
    HASH = 2
    COPY = 3
    VALIDATE = 4
    FINALIZE = 5

    @property
    def label(self) -> str:
        """How a file's error names its step (`aus_import_files.error_step`, `errors[].step`)."""
        return self.name.lower()

    @property
    def status(self) -> ImportStatus:
        return _STATUS[self]

    @property
    def percent_range(self) -> tuple[float, float]:
        """The share of the progress bar this step fills (SPEC §3.3)."""
        return _PERCENT[self]

    @classmethod
    def of_label(cls, label: str) -> "ImportStep":
        return cls[label.upper()]


_STATUS = {
    ImportStep.SCAN: ImportStatus.SCANNING,
    ImportStep.HASH: ImportStatus.HASHING,
    ImportStep.COPY: ImportStatus.COPYING,
    ImportStep.VALIDATE: ImportStatus.VALIDATING,
    ImportStep.FINALIZE: ImportStatus.FINALIZING,
}
_PERCENT = {
    ImportStep.SCAN: (0.0, 5.0),
    ImportStep.HASH: (5.0, 40.0),
    ImportStep.COPY: (40.0, 80.0),
    ImportStep.VALIDATE: (80.0, 95.0),
    ImportStep.FINALIZE: (95.0, 100.0),
}
