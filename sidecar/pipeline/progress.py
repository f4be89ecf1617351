"""`import:v2:progress` for one session: every field live, percent weighted by step and never
going backwards, an ETA from measured throughput, and at most one event per 100 ms (plus one at
every step change and at the end).
"""

import asyncio
import math
import time
from dataclasses import dataclass

from sidecar.pipeline.events import ImportEvents
from sidecar.pipeline.outcome import ProgressSnapshot
from sidecar.pipeline.status import ImportStatus, ImportStep

MIN_INTERVAL_S = 0.1
# Before this much has been measured (time since hashing began, or percent gained since, whichever
# comes first) an estimate would be noise: 0 means "unknown". The share lets a fast import, over
# before the time, show one too.
_ETA_MIN_ELAPSED_S = 0.5
_ETA_MIN_GAINED_PERCENT = 10.0


@dataclass
class _StepWork:
    """One step's share of the import: its work in units (see ImportProgress.start) and the files
    and bytes through it."""

    total: int = 0
    done: int = 0
    files: int = 0
    bytes: int = 0

    @property
    def fraction(self) -> float:
        return min(self.done / self.total, 1.0) if self.total > 0 else 0.0


class ImportProgress:
    """Steps may run at once (hash, copy, validate and finalize over successive windows of files);
    the progress speaks of the import as a whole. `step` and `status` name the earliest step not yet
    done (the front of the pipeline: while the card is read, `hashing`), files and bytes processed
    are that step's, and `percent` adds up every step's share of its range, so it moves as any step
    does and never goes back."""

    def __init__(
        self, session_id: str, events: ImportEvents, status: ImportStatus = ImportStatus.PENDING
    ) -> None:
        self._events = events
        self.session_id = session_id
        self.status = status
        self.step: ImportStep | None = None
        self.current_file = ""
        self.files_total = 0
        self.bytes_total = 0
        self.duplicates = 0
        self.errors = 0
        self.percent = 0.0
        self._work: dict[ImportStep, _StepWork] = {}
        self._eta_origin: tuple[float, float] | None = None  # (time, percent) where measuring began
        self._last_sent = 0.0
        self._deferred: asyncio.TimerHandle | None = None

    @property
    def files_processed(self) -> int:
        return self._reported().files

    @property
    def bytes_processed(self) -> int:
        return self._reported().bytes

    # -- changes ---------------------------------------------------------------------------

    def start(self, step: ImportStep, *, total: int, done: int = 0, files: int = 0, size: int = 0) -> None:
        """`step` has `total` units of work (input paths for the scan, files for the finalize, a file's
        bytes plus one for the byte steps, so empty files count too), `done` of them done already, by
        `files` files of `size` bytes."""
        self._work[step] = _StepWork(total, done, files, size)
        self._update_percent()

    def report(self, step: ImportStep) -> None:
        """`step` is now the earliest one with work left: the status says so, at once."""
        self.step = step
        self.status = step.status
        self.current_file = ""
        self._update_percent()
        if step is ImportStep.HASH and self._eta_origin is None:
            self._eta_origin = (time.monotonic(), self.percent)
        self.publish(force=True)

    def advance(
        self,
        step: ImportStep,
        *,
        work: int = 0,
        files: int = 0,
        size: int = 0,
        current_file: str | None = None,
    ) -> None:
        work_of_step = self._work.setdefault(step, _StepWork())
        work_of_step.done += work
        work_of_step.files += files
        work_of_step.bytes += size
        if current_file is not None and step is self.step:
            self.current_file = current_file
        self._update_percent()
        self.publish()

    def count(self, *, duplicates: int = 0, errors: int = 0) -> None:
        self.duplicates += duplicates
        self.errors += errors
        self.publish()

    def grow(self, *, files: int, size: int) -> None:
        """The scan found `files` more files of `size` bytes: the import's totals and every later
        step's work grow by them (in each step's units, see `start`)."""
        self.files_total += files
        self.bytes_total += size
        for step, work in self._work.items():
            if step is ImportStep.FINALIZE:
                work.total += files
            elif step is not ImportStep.SCAN:
                work.total += size + files
        self.publish()

    def restore(self, *, files: int, size: int, duplicates: int, errors: int) -> None:
        """The counts the journal holds when the steps begin, sent with the first step's report: a
        resume must not first send the status its session was stopped in (`finalizing`, say) and
        then go back to `hashing`."""
        self.files_total = files
        self.bytes_total = size
        self.duplicates = duplicates
        self.errors = errors

    def finish(self, status: ImportStatus) -> None:
        self.status = status
        if status is ImportStatus.COMPLETED:
            self._raise_percent(100.0)
        self.current_file = ""
        self.publish(force=True)

    # -- output ----------------------------------------------------------------------------

    def snapshot(self) -> ProgressSnapshot:
        return ProgressSnapshot(
            session_id=self.session_id,
            status=self.status,
            step=int(self.step or 0),
            percent=round(self.percent, 2),
            current_file=self.current_file,
            files_processed=self.files_processed,
            files_total=self.files_total,
            bytes_processed=self.bytes_processed,
            bytes_total=self.bytes_total,
            duplicates=self.duplicates,
            errors=self.errors,
            estimated_remaining_ms=self._eta_ms(),
        )

    def publish(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_sent >= MIN_INTERVAL_S:
            if self._deferred is not None:
                self._deferred.cancel()
                self._deferred = None
            self._last_sent = now
            self._events.progress(self.snapshot())
        elif self._deferred is None:
            # Coalesced: the latest state goes out when the interval has passed.
            delay = MIN_INTERVAL_S - (now - self._last_sent)
            self._deferred = asyncio.get_running_loop().call_later(delay, self._send_deferred)

    def _send_deferred(self) -> None:
        self._deferred = None
        self.publish(force=True)

    def close(self) -> None:
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None

    def _reported(self) -> _StepWork:
        return self._work.get(self.step, _StepWork()) if self.step is not None else _StepWork()

    def _update_percent(self) -> None:
        """Steps before the reported one are done; each later one adds its fraction of its range.
        While the scan runs, the later steps have no total yet to be a fraction of: only the scan's
        share counts (they add theirs, never less, once it is done)."""
        if self.step is None:
            return
        value = self.step.percent_range[0]
        for step, work in self._work.items():
            if step >= self.step and (self.step is not ImportStep.SCAN or step is ImportStep.SCAN):
                low, high = step.percent_range
                value += (high - low) * work.fraction
        self._raise_percent(value)

    def _raise_percent(self, value: float) -> None:
        self.percent = min(max(self.percent, value), 100.0)

    def _eta_ms(self) -> int:
        if self._eta_origin is None or self.step is None or self.status is not self.step.status:
            return 0
        started, origin = self._eta_origin
        elapsed = time.monotonic() - started
        gained = self.percent - origin
        if gained <= 0 or (elapsed < _ETA_MIN_ELAPSED_S and gained < _ETA_MIN_GAINED_PERCENT):
            return 0
        # Rounded up: 0 means unknown, never "less than a millisecond left" (a last window of one
        # small file leaves that little once the card is read).
        return math.ceil((100.0 - self.percent) / gained * elapsed * 1000)
