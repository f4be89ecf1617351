"""Step 2 in process: hashes and duplicates (within a page, across pages, already archived), its
stops at every page commit, and its resume."""

from pathlib import Path

import pytest

from sidecar.pipeline.context import staging_folder
from sidecar.pipeline.journal import FileState
from sidecar.pipeline.steps import copy, finalize, scan, validate
from sidecar.pipeline.steps import hash as hashing
from sidecar.pipeline.stop import Interrupted
from tests.support.archive import hash16
from tests.support.imports import NewHarness, open_harness, stop_at, stop_at_every_commit


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


async def test_a_read_once_import_stages_new_files_and_only_hashes_those_an_app_row_names(
    tmp_path: Path, card: Path
) -> None:
    """The one read of a file also stages its copy, unless an app row has its name and size: then it
    is most likely archived already and is only hashed. A wrong guess costs a second read, at the
    copy, and nothing else."""
    harness = await open_harness(tmp_path / "run", [card], read_once=True)
    try:
        await harness.run([scan.run])
        archived = card / "100CARD" / "IMG_0004.JPG"  # archived before: the guess holds
        renumbered = card / "101CARD" / "IMG_0005.JPG"  # a name and size archived before, other bytes
        async with harness.db.transaction() as conn:
            for digest, source in ((hash16(archived), archived), ("0123456789abcdef", renumbered)):
                await conn.execute(
                    "INSERT INTO imgs (imghash, imgnam, imgnamo, imgloc, imgloco, locid, imgadd,"
                    " file_size_bytes) VALUES (?, 'x.jpg', ?, '/elsewhere/x.jpg', '/old/x.jpg', ?,"
                    " '2025-01-01T00:00:00.000Z', ?)",
                    (digest, source.name, harness.session.locid, source.stat().st_size),
                )

        ctx = await harness.run([hashing.run])

        rows = await harness.db.fetch_all(
            "SELECT file_id, source, state FROM aus_import_files WHERE session_id = ?",
            (harness.session.session_id,),
        )
        name_of = {file_id: Path(bytes(source).decode()).name for file_id, source, _ in rows}
        staged = {name_of[int(p.stem)] for p in Path(staging_folder(ctx.session)).iterdir()}
        hashed = {name_of[file_id] for file_id, _, state in rows if state == "hashed"}
        assert (await harness.files())["IMG_0004.JPG"][0] == "duplicate"
        assert "IMG_0005.JPG" in hashed and staged == hashed - {"IMG_0005.JPG"}

        await harness.run([copy.run, validate.run, finalize.run])
        [(copied,)] = await harness.db.fetch_all(
            "SELECT imgloc FROM imgs WHERE imgnamo = 'IMG_0005.JPG' AND imgloco != '/old/x.jpg'"
        )
        assert Path(copied).read_bytes() == renumbered.read_bytes()
        assert (await harness.count(FileState.FINALIZED)) == len(hashed)
        assert not any(Path(staging_folder(ctx.session)).iterdir())
    finally:
        await harness.db.close()
