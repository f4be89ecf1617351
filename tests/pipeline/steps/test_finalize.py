"""Step 5 in process: rows, counts and jobs committed per page, sidecars finalized with their
parent, its stops at every page commit and a resume that inserts nothing twice."""

import pytest

from sidecar.pipeline.steps import copy, finalize, scan, validate
from sidecar.pipeline.steps import hash as hashing
from sidecar.pipeline.stop import Cancelled, StopSignal
from tests.support.imports import NewHarness, Step, stop_at, stop_at_every_commit

BEFORE: list[Step] = [scan.run, hashing.run, copy.run, validate.run]


async def test_each_new_photo_gets_its_row_its_jobs_and_its_import_count(new_harness: NewHarness) -> None:
    harness = await new_harness()
    ctx = await harness.run([*BEFORE, finalize.run])
    snapshot = await harness.snapshot()
    assert len(snapshot["rows"]) == 10  # 12 photos, two of them duplicates
    assert snapshot["imports"] == [(10,)]
    assert dict(snapshot["jobs"]) == {"exiftool": 10, "thumbnail": 10}
    assert ctx.state.jobs_committed
    assert {state for state, _, _ in (await harness.files()).values()} == {"finalized", "duplicate"}


@pytest.mark.parametrize("when", ["before", "inside", "after"])
async def test_stopped_at_any_page_commit_then_resumed_it_finalizes_as_an_uninterrupted_run(
    new_harness: NewHarness, when: str
) -> None:
    assert await stop_at_every_commit(new_harness, BEFORE, finalize.run, f"finalize.commit.{when}") >= 3


async def test_a_parent_s_sidecar_is_finalized_in_the_parent_s_own_commit(new_harness: NewHarness) -> None:
    """A cancel right after the page holding IMG_0003 committed: its .xmp must already be final,
    or the cancel's cleanup would remove it while the photo stays archived."""
    harness = await new_harness()
    await harness.run(BEFORE)
    stop_at("finalize.commit.after", 2, StopSignal.cancel)  # pages: 4 photos, then IMG_0003's
    with pytest.raises(Cancelled):
        await harness.run([finalize.run])
    files = await harness.files()
    assert files["IMG_0003.JPG"][0] == "finalized"
    assert files["IMG_0003.xmp"][0] == "finalized"
