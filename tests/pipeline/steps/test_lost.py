"""A source that goes away mid-import (a card pulled), in process: what was copied is finalized,
every file not read is a per-file error saying so, the run fails resumably, and once the card is
back a resume ends exactly as an uninterrupted run."""

from pathlib import Path

import pytest

from sidecar.pipeline import failpoints
from sidecar.pipeline.journal import FileState
from sidecar.pipeline.run import run_import
from sidecar.pipeline.sources import UNREAD
from sidecar.pipeline.stop import ImportFailed, StopSignal
from tests.support.imports import NewHarness


@pytest.mark.parametrize("pulled_after", ["hash.commit.after", "copy.commit.after"])
async def test_a_card_pulled_mid_step_fails_resumably_and_the_resume_ends_as_an_uninterrupted_run(
    new_harness: NewHarness, card: Path, tmp_path: Path, pulled_after: str, read_once: bool
) -> None:
    reference = await new_harness()
    await run_import(await reference.context())
    expected = await reference.snapshot()

    harness = await new_harness()
    away = tmp_path / "card-in-a-pocket"

    async def pull(_: StopSignal) -> None:
        card.rename(away)

    failpoints.arm(pulled_after, 1, pull)
    if read_once and pulled_after.startswith("copy"):
        # Every file was read once, at the hash step: the rest of the import needs nothing more
        # from the card.
        await run_import(await harness.context())
        assert await harness.snapshot() == expected
        return
    with pytest.raises(ImportFailed) as failed:
        await run_import(await harness.context())
    failpoints.disarm()

    message = str(failed.value)
    assert message.startswith(f"The source {card} (No such file or directory) is gone"), message
    assert "resume" in message
    states = await harness.files()
    unread = {name for name, (state, _, _) in states.items() if state == "failed"}
    assert unread, states
    assert f"{len(unread)} files were not read" in message
    assert not any(state in ("scanned", "hashed", "copied", "validated") for state, _, _ in states.values())
    problems = await harness.journal.failures(harness.session.session_id, 100)
    assert {Path(p.path).name for p in problems} == unread
    assert all(p.message == f"{UNREAD}: {card} (No such file or directory)" for p in problems)
    if pulled_after.startswith("copy"):
        assert await harness.count(FileState.FINALIZED) >= 4  # the first page, read before the pull

    away.rename(card)
    await run_import(await harness.context())
    assert await harness.snapshot() == expected
