"""The steps overlapping over windows of files (sidecar/pipeline/run.py), in process: the first
files' rows and jobs are committed while later files are still read, the outcome is that of one
window over everything, the progress speaks of the whole, and a stop at any commit of any step,
then a resume, ends as an uninterrupted run."""

import contextlib
import itertools
from functools import partial
from typing import Any

import pytest

from sidecar.pipeline import failpoints, progress, run
from sidecar.pipeline.run import run_import
from sidecar.pipeline.status import ImportStatus, ImportStep
from sidecar.pipeline.stop import Interrupted
from sidecar.pipeline.windows import EVERYTHING, cut
from tests.support.imports import NewHarness, stop_at

_FRONT_ORDER = [
    ImportStatus.SCANNING,
    ImportStatus.HASHING,
    ImportStatus.COPYING,
    ImportStatus.VALIDATING,
    ImportStatus.FINALIZING,
]
# 13 files on the card: windows of 2, then 4.
SMALL_WINDOWS = partial(cut, first_files=2, max_files=4)


@pytest.fixture
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "cut", SMALL_WINDOWS)


async def _one_window_outcome(new_harness: NewHarness, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    with monkeypatch.context() as patch:
        patch.setattr(run, "cut", lambda files: [EVERYTHING] if files else [])
        reference = await new_harness()
        await run_import(await reference.context())
    return await reference.snapshot()


async def test_jobs_start_while_a_card_is_read_and_the_outcome_is_one_window_s(
    new_harness: NewHarness, monkeypatch: pytest.MonkeyPatch, read_once: bool
) -> None:
    expected = await _one_window_outcome(new_harness, monkeypatch)
    monkeypatch.setattr(run, "cut", SMALL_WINDOWS)
    harness = await new_harness()
    ctx = await harness.context()
    steps_at_jobs: list[ImportStep | None] = []
    await run_import(ctx, lambda: steps_at_jobs.append(ctx.progress.step))
    assert await harness.snapshot() == expected
    if read_once:  # another medium than the archive's: the jobs start while it is read
        assert len(steps_at_jobs) >= 3 and steps_at_jobs[0] is ImportStep.HASH, steps_at_jobs
    else:  # the archive's own disk: the jobs would compete with the import for it, so they wait
        assert steps_at_jobs == [ImportStep.FINALIZE]


async def test_windows_read_in_another_order_archive_the_same(
    new_harness: NewHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clip's window is read early (windows.py), out of id order: every step follows that order."""
    expected = await _one_window_outcome(new_harness, monkeypatch)
    monkeypatch.setattr(run, "cut", lambda files: SMALL_WINDOWS(files)[::-1])
    harness = await new_harness()
    await run_import(await harness.context())
    got = await harness.snapshot()
    for key in ("archive", "jobs", "imports"):
        assert got[key] == expected[key], key
    # Of identical files the one read first is kept: which name the row carries may differ, no more.
    assert [row[:2] for row in got["rows"]] == [row[:2] for row in expected["rows"]]
    assert sorted(state for state, _, _ in got["files"].values()) == sorted(
        state for state, _, _ in expected["files"].values()
    )


async def test_progress_names_the_front_step_and_its_percent_counts_every_step(
    new_harness: NewHarness, small_windows: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "MIN_INTERVAL_S", 0.0)  # every change is an event
    harness = await new_harness()
    await run_import(await harness.context())
    events = harness.events.progress_events
    percents = [e.percent for e in events]
    assert percents == sorted(percents), "percent went backwards"
    statuses = [e.status for n, e in enumerate(events) if n == 0 or e.status != events[n - 1].status]
    assert statuses == _FRONT_ORDER
    # While the card is read, the copies, checks and commits of earlier windows move the bar too.
    assert any(e.status is ImportStatus.HASHING and e.percent > 40 for e in events), percents
    last = events[-1]
    assert last.files_processed == last.files_total and last.bytes_processed == last.bytes_total
    assert last.duplicates == 2


@pytest.mark.parametrize(
    "point", ["hash.commit.inside", "copy.commit.after", "validate.commit.before", "finalize.commit.inside"]
)
async def test_a_stop_at_any_commit_of_any_step_then_a_resume_ends_as_an_uninterrupted_run(
    new_harness: NewHarness, small_windows: None, point: str
) -> None:
    reference = await new_harness()
    await run_import(await reference.context())
    expected = await reference.snapshot()
    for nth in itertools.count(1):
        harness = await new_harness()
        stop_at(point, nth)
        ctx = await harness.context()
        with contextlib.suppress(Interrupted):  # a stop after the last commit: the run completes
            await run_import(ctx)
        failpoints.disarm()
        ctx.progress.close()  # as the orchestrator does: no coalesced event of the stopped run comes later
        if not ctx.stop.is_set:
            break
        before = len(harness.events.progress_events)
        await run_import(await harness.context())  # the resume
        assert await harness.snapshot() == expected, f"stopped at {point} #{nth}"
        # Its progress starts at the front of the pipeline, not at the status it was stopped in.
        resumed = [e.status for e in harness.events.progress_events[before:]]
        assert resumed and resumed == sorted(resumed, key=_FRONT_ORDER.index), (point, nth, resumed)
    assert nth > 3, f"{point} was reached only {nth - 1} times"
