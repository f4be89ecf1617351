"""Step 3 in process: copies at their place in the layout, sidecars beside their parent, its stops
at every page commit, and a resume that keeps what a stopped run had copied."""

import os
from pathlib import Path

import pytest

from sidecar.pipeline import failpoints
from sidecar.pipeline.steps import copy, scan
from sidecar.pipeline.steps import hash as hashing
from sidecar.pipeline.stop import Interrupted, StopSignal
from tests.support.archive import hash16
from tests.support.imports import Harness, NewHarness, stop_at_every_commit


async def test_new_files_are_copied_by_content_and_a_sidecar_lands_beside_its_parent(
    new_harness: NewHarness,
) -> None:
    harness = await new_harness()
    await harness.run([scan.run, hashing.run, copy.run])
    files = await harness.files()
    copied = {name for name, (state, _, _) in files.items() if state == "copied"}
    assert copied == {f"IMG_{i:04d}.JPG" for i in range(10) if i != 1} | {"COPY_0001.JPG", "IMG_0003.xmp"}
    [folder] = harness.archive.glob("locations/NY-factory/old-factory-*/org-img-*")
    archived = sorted(p.name for p in folder.iterdir())
    photo = files["IMG_0003.JPG"][1]
    assert f"{photo}.xmp" in archived  # <parent hash><sidecar ext>
    assert len(archived) == 11
    for path in folder.iterdir():
        if path.suffix == ".jpg":
            assert hash16(path) == path.stem


async def _sidecar_place_taken(
    new_harness: NewHarness, content: bytes | None
) -> tuple[Harness, Harness, Path]:
    """An uninterrupted run, and a run hashed up to its copy whose sidecar's place beside its parent
    already holds `content` (None: the sidecar's own bytes). Returns both and the sidecar's copy in
    the uninterrupted run."""
    reference = await new_harness()
    await reference.run([scan.run, hashing.run, copy.run])
    photo = (await reference.files())["IMG_0003.JPG"][1]
    [beside] = reference.archive.glob(f"locations/*/*/org-img-*/{photo}.xmp")
    harness = await new_harness()
    await harness.run([scan.run, hashing.run])
    taken = harness.archive / beside.relative_to(reference.archive)
    taken.parent.mkdir(parents=True)
    taken.write_bytes(beside.read_bytes() if content is None else content)
    return reference, harness, beside


async def test_a_sidecar_a_killed_run_copied_beside_its_parent_without_recording_it_is_kept_there(
    new_harness: NewHarness,
) -> None:
    # What a kill -9 between the sidecar's copy and its page's commit leaves.
    reference, harness, _ = await _sidecar_place_taken(new_harness, None)
    await harness.run([copy.run])
    assert await harness.snapshot() == await reference.snapshot()
    assert not list(harness.archive.glob("locations/*/*/org-misc-*/*")), "copied a second time"


async def test_a_sidecar_of_another_import_beside_the_parent_is_never_overwritten(
    new_harness: NewHarness,
) -> None:
    theirs = b"<x:xmpmeta>another edit</x:xmpmeta>"
    reference, harness, beside = await _sidecar_place_taken(new_harness, theirs)
    await harness.run([copy.run])
    assert (harness.archive / beside.relative_to(reference.archive)).read_bytes() == theirs
    [ours] = harness.archive.glob("locations/*/*/org-misc-*/*.xmp")
    assert ours.read_bytes() == beside.read_bytes()


@pytest.mark.parametrize("when", ["before", "inside", "after"])
async def test_stopped_at_any_page_commit_then_resumed_it_copies_as_an_uninterrupted_run(
    new_harness: NewHarness, when: str
) -> None:
    stops = await stop_at_every_commit(new_harness, [scan.run, hashing.run], copy.run, f"copy.commit.{when}")
    assert stops >= 3


async def test_a_resume_keeps_every_copy_a_stopped_run_made_even_those_its_journal_never_heard_of(
    new_harness: NewHarness,
) -> None:
    """Stopped inside its first commit, the run's first two pages are copied but only the first is
    recorded (the second was in flight): the resume reads those copies once and writes none again."""
    harness = await new_harness()
    await harness.run([scan.run, hashing.run])

    async def interrupt(signal: StopSignal) -> None:
        signal.interrupt()

    failpoints.arm("copy.commit.inside", 1, interrupt)
    with pytest.raises(Interrupted):
        await harness.run([copy.run])
    failpoints.disarm()
    before = {p: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in _archived(harness.archive)}
    assert len(before) >= 4
    await harness.run([copy.run])
    after = {
        p: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in _archived(harness.archive) if p in before
    }
    assert after == before


def _archived(archive: Path) -> list[Path]:
    """The archive's files, not its hidden ones (a read-once import's staged reads among them)."""
    return [
        p
        for p in archive.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(archive).parts)
    ]
