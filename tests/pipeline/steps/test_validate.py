"""Step 4 in process: every copy re-read and compared, a damaged copy replaced once, its stops at
every page commit and its resume."""

from pathlib import Path

import pytest

from sidecar.pipeline.steps import copy, scan, validate
from sidecar.pipeline.steps import hash as hashing
from tests.support.imports import Harness, NewHarness, Step, stop_at_every_commit


async def test_every_copy_is_validated_from_the_medium(new_harness: NewHarness) -> None:
    harness = await new_harness()
    ctx = await harness.run([scan.run, hashing.run, copy.run, validate.run])
    states = {state for state, _, _ in (await harness.files()).values()}
    assert states == {"validated", "duplicate"}
    assert ctx.state.from_medium is True  # Linux drops the copy's cached pages before reading it


async def test_a_damaged_copy_is_copied_again_and_then_valid(new_harness: NewHarness) -> None:
    harness = await new_harness()
    await harness.run([scan.run, hashing.run, copy.run])
    target = Path(await _target_of(harness, "IMG_0006.JPG"))
    target.write_bytes(b"bit rot")
    await harness.run([validate.run])
    assert (await harness.files())["IMG_0006.JPG"][0] == "validated"
    assert target.stat().st_size == 3006


async def test_a_source_changed_after_hashing_is_an_error_and_its_copy_is_not_kept_as_valid(
    new_harness: NewHarness,
) -> None:
    harness = await new_harness()
    await harness.run([scan.run, hashing.run, copy.run])
    source = Path(harness.session.source_paths[0]) / "101CARD" / "IMG_0008.JPG"
    original = source.read_bytes()
    try:
        source.write_bytes(b"changed")  # the re-copy reads the changed source: still a mismatch
        Path(await _target_of(harness, "IMG_0008.JPG")).write_bytes(b"damaged")
        await harness.run([validate.run])
    finally:
        source.write_bytes(original)
    state, _, step = (await harness.files())["IMG_0008.JPG"]
    assert (state, step) == ("failed", "validate")


@pytest.mark.parametrize("when", ["before", "inside", "after"])
async def test_stopped_at_any_page_commit_then_resumed_it_validates_as_an_uninterrupted_run(
    new_harness: NewHarness, when: str
) -> None:
    before: list[Step] = [scan.run, hashing.run, copy.run]
    assert await stop_at_every_commit(new_harness, before, validate.run, f"validate.commit.{when}") >= 3


async def _target_of(harness: Harness, name: str) -> str:
    rows = await harness.db.fetch_all("SELECT source, target FROM aus_import_files WHERE target IS NOT NULL")
    target: str = next(target for source, target in rows if bytes(source).decode().endswith(name))
    return target
