"""Step 2 in process: hashes and duplicates (within a page, across pages, already archived), its
stops at every page commit, and its resume."""

from pathlib import Path

import pytest

from sidecar.pipeline.steps import hash as hashing
from sidecar.pipeline.steps import scan
from sidecar.pipeline.stop import Interrupted
from tests.support.archive import hash16
from tests.support.imports import NewHarness, stop_at, stop_at_every_commit


async def test_each_file_gets_its_hash_and_later_copies_of_a_content_are_duplicates(
    new_harness: NewHarness,
) -> None:
    harness = await new_harness()
    await harness.run([scan.run, hashing.run])
    files = await harness.files()
    duplicates = sorted(name for name, (state, _, _) in files.items() if state == "duplicate")
    # Name order: COPY_0001 comes first, and IMG_0001 in its page is its duplicate; COPY_0002 is in
    # the next folder, a page after IMG_0002.
    assert duplicates == ["COPY_0002.JPG", "IMG_0001.JPG"]
    assert files["COPY_0002.JPG"][1] == files["IMG_0002.JPG"][1]
    card = Path(harness.session.source_paths[0])
    assert files["IMG_0007.JPG"][1] == hash16(card / "101CARD" / "IMG_0007.JPG")
    assert files["IMG_0003.xmp"][0] == "hashed"  # a sidecar is never a duplicate on its own


async def test_a_hash_already_in_the_app_table_is_a_duplicate(new_harness: NewHarness) -> None:
    harness = await new_harness()
    await harness.run([scan.run])
    card = Path(harness.session.source_paths[0])
    async with harness.db.transaction() as conn:
        await conn.execute(
            "INSERT INTO imgs (imghash, imgnam, imgnamo, imgloc, imgloco, locid, imgadd)"
            " VALUES (?, 'x.jpg', 'x.jpg', '/elsewhere/x.jpg', '/old/x.jpg', ?, '2025-01-01T00:00:00.000Z')",
            (hash16(card / "100CARD" / "IMG_0004.JPG"), harness.session.locid),
        )
    await harness.run([hashing.run])
    assert (await harness.files())["IMG_0004.JPG"][0] == "duplicate"


@pytest.mark.parametrize("when", ["before", "inside", "after"])
async def test_stopped_at_any_page_commit_then_resumed_it_hashes_as_an_uninterrupted_run(
    new_harness: NewHarness, when: str
) -> None:
    stops = await stop_at_every_commit(new_harness, [scan.run], hashing.run, f"hash.commit.{when}")
    assert stops >= 4  # 12 photos in 4-file pages, then the sidecar's page


async def test_a_page_committed_as_the_stop_comes_is_never_a_duplicate_of_itself(
    new_harness: NewHarness,
) -> None:
    """Issue 11's loss: the page committed, the stop raised, the page was committed again and every
    file of it became a duplicate of its own journal row."""
    harness = await new_harness()
    await harness.run([scan.run])
    stop_at("hash.commit.after", 1)
    with pytest.raises(Interrupted):
        await harness.run([hashing.run])
    duplicates = {n for n, (s, _, _) in (await harness.files()).items() if s == "duplicate"}
    assert duplicates <= {"IMG_0001.JPG", "COPY_0002.JPG"}  # the card's own duplicates, no other
    await harness.run([hashing.run])
    assert sorted(n for n, (s, _, _) in (await harness.files()).items() if s == "duplicate") == [
        "COPY_0002.JPG",
        "IMG_0001.JPG",
    ]
