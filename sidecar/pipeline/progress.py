"""`import:v2:progress` for one session: every field live, percent weighted by step and never
going backwards, an ETA from measured throughput, and at most one event per 100 ms (plus one at
every step change and at the end).
"""

import asyncio
import time

from sidecar.pipeline.events import ImportEvents
from sidecar.pipeline.outcome import ProgressSnapshot
from sidecar.pipeline.status import ImportStatus, ImportStep

MIN_INTERVAL_S = 0.1
# Before this much work has been measured an estimate would be noise; 0 means "unknown".
_ETA_MIN_ELAPSED_S = 0.5


class ImportProgress:
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
        self.files_processed = 0
        self.bytes_processed = 0
        self.duplicates = 0
        self.errors = 0
        self.percent = 0.0
        # What the current step has to do, to turn its progress into a fraction of its range.
        self._step_work = 0
        self._step_done = 0
        self._eta_origin: tuple[float, float] | None = None  # (time, percent) where measuring began
        self._last_sent = 0.0
        self._deferred: asyncio.TimerHandle | None = None

    # -- changes ---------------------------------------------------------------------------

    def begin_step(self, step: ImportStep, *, work: int, files_processed: int, bytes_processed: int) -> None:
        """Enter `step` with `work` units (bytes, or files for scan/finalize) still to do."""
        self.step = step
        self.status = step.status
        self._step_work = max(work, 0)
        self._step_done = 0
        self.files_processed = files_processed
        self.bytes_processed = bytes_processed
        self.current_file = ""
        self._raise_percent(step.percent_range[0])
        if step is ImportStep.HASH and self._eta_origin is None:
            self._eta_origin = (time.monotonic(), self.percent)
        self.publish(force=True)

    def advance(
        self, *, work: int = 0, files: int = 0, size: int = 0, current_file: str | None = None
    ) -> None:
        self._step_done += work
        self.files_processed += files
        self.bytes_processed += size
        if current_file is not None:
            self.current_file = current_file
        if self.step is not None:
            low, high = self.step.percent_range
            fraction = min(self._step_done / self._step_work, 1.0) if self._step_work else 0.0
            self._raise_percent(low + (high - low) * fraction)
        self.publish()

    def count(self, *, duplicates: int = 0, errors: int = 0) -> None:
        self.duplicates += duplicates
        self.errors += errors
        self.publish()

    def set_totals(self, files: int, size: int) -> None:
        self.files_total = files
        self.bytes_total = size
        self.publish()

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

    def _raise_percent(self, value: float) -> None:
        self.percent = min(max(self.percent, value), 100.0)

    def _eta_ms(self) -> int:
        if self._eta_origin is None or self.step is None or self.status is not self.step.status:
            return 0
        started, origin = self._eta_origin
        elapsed = time.monotonic() - started
        gained = self.percent - origin
        if elapsed < _ETA_MIN_ELAPSED_S or gained <= 0:
            return 0
        return int((100.0 - self.percent) / gained * elapsed * 1000)
