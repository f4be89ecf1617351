"""Step 1 in process: the journal a scan writes, its stops between folders, and its resume."""

from pathlib import Path

import pytest

from sidecar.pipeline.outcome import MAX_LISTED
from sidecar.pipeline.scanner import Skipped
from sidecar.pipeline.sessions import Sessions
from sidecar.pipeline.steps import scan
from sidecar.pipeline.stop import Interrupted
from tests.support.archive import write
from tests.support.imports import NewHarness, stop_at, stop_at_every_commit


async def test_a_scan_journals_each_file_once_with_its_sidecar_parent(new_harness: NewHarness) -> None:
    harness = await new_harness()
    await harness.run([scan.run])
    files = await harness.files()
    assert sorted(files) == sorted(
        [f"IMG_{i:04d}.JPG" for i in range(10)] + ["COPY_0001.JPG", "COPY_0002.JPG", "IMG_0003.xmp"]
    )
    assert {state for state, _, _ in files.values()} == {"scanned"}
    session = await Sessions(harness.db).load(harness.session.session_id)
    assert session is not None and session.skipped == 1  # notes.xyz
    [(parent,)] = await harness.db.fetch_all(
        "SELECT p.source FROM aus_import_files f JOIN aus_import_files p"
        " ON p.session_id = f.session_id AND p.file_id = f.parent_id WHERE f.media_type = 'sidecar'"
    )
    assert bytes(parent).decode().endswith("IMG_0003.JPG")


@pytest.mark.parametrize("when", ["before", "inside", "after"])
async def test_a_scan_stopped_at_any_folder_and_resumed_journals_what_an_uninterrupted_one_does(
    new_harness: NewHarness, when: str
) -> None:
    assert await stop_at_every_commit(new_harness, [], scan.run, f"scan.commit.{when}") == 2  # two folders


async def test_a_stopped_scan_leaves_no_half_journal_for_the_next_steps(new_harness: NewHarness) -> None:
    """The resume starts the scan over: nothing copied yet depends on the files it had found."""
    harness = await new_harness()
    stop_at("scan.commit.after", 1)
    with pytest.raises(Interrupted):
        await harness.run([scan.run])
    assert len(await harness.files()) == 7  # 100CARD: five photos, a copy, a sidecar
    await harness.run([scan.run])
    assert len(await harness.files()) == 13


async def test_skipped_files_are_named_once_with_their_reasons_even_when_the_scan_starts_over(
    new_harness: NewHarness, card: Path
) -> None:
    write(card / "100CARD" / "._IMG_0000.JPG", 4096)
    expected = [
        Skipped(
            str(card / "100CARD" / "._IMG_0000.JPG"),
            "AppleDouble file (macOS metadata of another file, not media)",
        ),
        Skipped(str(card / "101CARD" / "notes.xyz"), "unknown extension (.xyz)"),
    ]
    harness = await new_harness()
    stop_at("scan.commit.after", 1)  # the first folder's skip is journalled, then the scan stops
    with pytest.raises(Interrupted):
        await harness.run([scan.run])
    await harness.run([scan.run])

    sid = harness.session.session_id
    assert await harness.journal.skips(sid, MAX_LISTED) == expected  # in scan order
    assert await harness.journal.skips(sid, 1) == expected[:1]  # cut at the limit
    session = await Sessions(harness.db).load(sid)
    assert session is not None and session.skipped == 2
