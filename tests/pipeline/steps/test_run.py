"""The steps overlapping over windows of files (sidecar/pipeline/run.py), in process: the first
files' rows and jobs are committed while later files are still read, the outcome is that of one
window over everything, the progress speaks of the whole, and a stop at any commit of any step,
then a resume, ends as an uninterrupted run."""

import asyncio
import contextlib
import itertools
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from sidecar.pipeline import failpoints, progress, run
from sidecar.pipeline.run import run_import
from sidecar.pipeline.sessions import Sessions
from sidecar.pipeline.status import ImportStatus, ImportStep
from sidecar.pipeline.steps import scan
from sidecar.pipeline.stop import ImportFailed, Interrupted, StopSignal
from sidecar.pipeline.windows import Cutter, Window
from tests.pipeline.steps.conftest import make_card
from tests.support.archive import write
from tests.support.imports import Harness, NewHarness, stop_at

_FRONT_ORDER = [
    ImportStatus.SCANNING,
    ImportStatus.HASHING,
    ImportStatus.COPYING,
    ImportStatus.VALIDATING,
    ImportStatus.FINALIZING,
]
# 31 files on the card: windows of 2, then 4.
SMALL_WINDOWS = partial(Cutter, first_files=2, max_files=4)
ONE_WINDOW = partial(Cutter, first_files=2**40, first_bytes=2**62, max_files=2**40, max_bytes=2**62)


class _ReadBackwards(Cutter):
    def finish(self) -> list[Window]:
        return super().finish()[::-1]


@pytest.fixture
def card(tmp_path: Path) -> Path:
    """The steps' card (two folders: duplicates, a sidecar, an unknown file) and six folders more,
    so the scan gives windows out while it goes on: eight folders, eight scan commits."""
    root = make_card(tmp_path / "card")
    for folder in range(6):
        for i in range(3):
            size = 2000 + 10 * folder + i
            write(root / f"{102 + folder}CARD" / f"IMG_{1000 + size:04d}.JPG", size, seed=100 + folder)
    return root


@pytest.fixture
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "Cutter", SMALL_WINDOWS)


async def _one_window_outcome(new_harness: NewHarness, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    with monkeypatch.context() as patch:
        patch.setattr(run, "Cutter", ONE_WINDOW)
        reference = await new_harness()
        await run_import(await reference.context())
    return await reference.snapshot()


async def test_jobs_start_while_a_card_is_read_and_the_outcome_is_one_window_s(
    new_harness: NewHarness, monkeypatch: pytest.MonkeyPatch, read_once: bool
) -> None:
    expected = await _one_window_outcome(new_harness, monkeypatch)
    monkeypatch.setattr(run, "Cutter", SMALL_WINDOWS)
    harness = await new_harness()
    ctx = await harness.context()
    steps_at_jobs: list[ImportStep | None] = []
    await run_import(ctx, lambda: steps_at_jobs.append(ctx.progress.step))
    assert await harness.snapshot() == expected
    if read_once:  # another medium than the archive's: the jobs start while it is read
        assert len(steps_at_jobs) >= 3 and steps_at_jobs[0] in (ImportStep.SCAN, ImportStep.HASH)
    else:  # the archive's own disk: the jobs would compete with the import for it, so they wait
        assert steps_at_jobs == [ImportStep.FINALIZE]


async def test_windows_read_in_another_order_archive_the_same(
    new_harness: NewHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clip's window is read early (windows.py), out of id order: every step follows that order."""
    expected = await _one_window_outcome(new_harness, monkeypatch)
    monkeypatch.setattr(run, "Cutter", partial(_ReadBackwards, first_files=2, max_files=4))
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


async def test_the_first_windows_are_archived_while_later_folders_are_still_scanned(
    new_harness: NewHarness, small_windows: None
) -> None:
    expected = await (await _uninterrupted(new_harness)).snapshot()
    committed = asyncio.Event()
    waited: list[bool] = []

    async def first_commit(_: StopSignal) -> None:
        committed.set()

    async def last_folder(_: StopSignal) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):  # were the steps waiting for the scan, never
                await committed.wait()
        waited.append(committed.is_set())

    failpoints.arm("finalize.commit.after", 1, first_commit)
    failpoints.arm("scan.commit.before", 8, last_folder)  # the last folder's
    harness = await new_harness()
    await run_import(await harness.context())
    assert waited == [True], "no window was committed before the scan's last folder"
    assert await harness.snapshot() == expected


async def test_a_card_pulled_while_it_is_scanned_stops_resumably_and_the_resume_ends_as_an_uninterrupted_run(
    new_harness: NewHarness, small_windows: None, card: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = await (await _uninterrupted(new_harness)).snapshot()
    monkeypatch.setattr(scan, "SCAN_CHUNK", 1)  # the walk lists a folder only when it is wanted
    pulled = card.with_name("pulled")

    async def pull(_: StopSignal) -> None:
        card.rename(pulled)  # what is left of the card: no folder at its path

    failpoints.arm("scan.commit.after", 4, pull)
    harness = await new_harness()
    with pytest.raises(ImportFailed, match="is gone"):
        await run_import(await harness.context())
    failpoints.disarm()
    # The folders it could not list are no errors of theirs: the session stays at the scan.
    assert not [f for f in (await harness.files()).values() if f[2] == ImportStep.SCAN.label]
    session = await Sessions(harness.db).load(harness.session.session_id)
    assert session is not None and session.last_step == ImportStep.SCAN
    pulled.rename(card)
    await run_import(await harness.context())
    assert await harness.snapshot() == expected


async def _uninterrupted(new_harness: NewHarness) -> Harness:
    reference = await new_harness()
    await run_import(await reference.context())
    return reference


@pytest.mark.parametrize(
    "point",
    [
        "scan.commit.inside",
        "scan.commit.after",
        "hash.commit.inside",
        "copy.commit.after",
        "validate.commit.before",
        "finalize.commit.inside",
    ],
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
