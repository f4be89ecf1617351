"""The progress's time left: measured from the throughput since hashing began, 0 only when unknown
(spec §3.3): known once half a second or a tenth of the import has been measured, and then never 0
while work is left."""

from types import SimpleNamespace

import pytest

from sidecar.pipeline import progress
from sidecar.pipeline.progress import ImportProgress
from sidecar.pipeline.status import ImportStatus, ImportStep
from tests.support.imports import RecordedEvents

UNITS = 100_000  # per step: a large import, so its last small window is a sliver of it


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The progress module's clock, set by the test (the event loop keeps the real one)."""
    now = SimpleNamespace(seconds=1000.0)
    monkeypatch.setattr(progress, "time", SimpleNamespace(monotonic=lambda: now.seconds))
    return now


def hashing(events: RecordedEvents) -> ImportProgress:
    """An import whose hash, copy, validate and finalize have `UNITS` of work each, hashing begun."""
    tracked = ImportProgress("session", events)
    for step in (ImportStep.HASH, ImportStep.COPY, ImportStep.VALIDATE, ImportStep.FINALIZE):
        tracked.start(step, total=UNITS)
    tracked.report(ImportStep.HASH)
    return tracked


async def test_the_time_left_is_never_rounded_to_unknown_while_work_is_left(clock: SimpleNamespace) -> None:
    events = RecordedEvents()
    tracked = hashing(events)
    assert events.progress_events[-1].estimated_remaining_ms == 0  # nothing measured yet

    # The card is read; every window but the last, of one small file, is archived already.
    clock.seconds += 3.0
    tracked.advance(ImportStep.HASH, work=UNITS)
    for step in (ImportStep.COPY, ImportStep.VALIDATE, ImportStep.FINALIZE):
        tracked.advance(step, work=UNITS - 1)
    tracked.report(ImportStep.COPY)

    copying = events.progress_events[-1]
    assert copying.status is ImportStatus.COPYING and tracked.percent < 100
    assert copying.estimated_remaining_ms >= 1

    tracked.finish(ImportStatus.COMPLETED)
    assert events.progress_events[-1].estimated_remaining_ms == 0
    tracked.close()


@pytest.mark.parametrize(
    ("seconds", "hashed", "known"),
    [
        (0.1, 0.2, False),  # 7 percent points in 0.1 s: noise yet
        (0.1, 0.5, True),  # 17.5 points: a fast import gets its estimate before half a second
        (0.6, 0.2, True),  # half a second measured
    ],
)
async def test_the_time_left_is_estimated_from_the_throughput_once_enough_is_measured(
    clock: SimpleNamespace, seconds: float, hashed: float, known: bool
) -> None:
    events = RecordedEvents()
    tracked = hashing(events)
    origin = tracked.percent

    clock.seconds += seconds
    tracked.advance(ImportStep.HASH, work=round(UNITS * hashed))
    tracked.report(ImportStep.HASH)  # sent at once, not coalesced

    left = events.progress_events[-1].estimated_remaining_ms
    if known:
        rate = (tracked.percent - origin) / seconds  # percent points per second
        assert abs(left - (100 - tracked.percent) / rate * 1000) <= 1, left
    else:
        assert left == 0
    tracked.close()
