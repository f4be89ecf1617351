"""The copy worker on real filesystems, in process (sidecar/workers/bytework.py; the FICLONE call is
in sidecar/host/linux.py): a clone where source and archive share a btrfs or xfs filesystem, a
kernel-side copy across filesystems (the clone fails with EXDEV) or on ext4; every copy independent
of its source and whole under its name."""

from pathlib import Path

import blake3
import pytest

from sidecar.workers.bytework import CopyRequest, copy_files, init_worker
from tests.filesystems.conftest import Mount
from tests.support.filesystems import Mounted, shared_bytes

SIZE = 3 << 20


def source_file(fs: Mounted, name: str = "clip.mp4") -> tuple[Path, str]:
    path = fs.path / "card" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blake3.blake3(name.encode()).digest(length=SIZE))
    return path, blake3.blake3(path.read_bytes()).hexdigest(length=8)


def copy_into(fs: Mounted, source: Path, digest: str) -> tuple[str | None, Path]:
    init_worker(None)
    target = fs.path / "archive" / f"{digest}.mp4"
    [outcome] = copy_files([CopyRequest(str(source), str(target), digest)])
    assert outcome.error is None and outcome.created, outcome
    return outcome.strategy, target


@pytest.mark.parametrize("fstype", ["btrfs", "xfs"])
def test_on_one_cow_filesystem_the_copy_is_a_clone_sharing_every_extent(mounted: Mount, fstype: str):
    fs = mounted(fstype)
    source, digest = source_file(fs)
    strategy, copy = copy_into(fs, source, digest)
    assert strategy == "reflink"
    assert shared_bytes(copy) == SIZE
    with open(source, "r+b") as out:  # the user edits the source afterwards
        out.write(b"edited")
    assert blake3.blake3(copy.read_bytes()).hexdigest(length=8) == digest


@pytest.mark.parametrize(("source_fs", "archive_fs"), [("ext4", "btrfs"), ("xfs", "btrfs"), ("ext4", "ext4")])
def test_across_filesystems_or_on_ext4_it_is_a_kernel_side_copy(
    mounted: Mount, source_fs: str, archive_fs: str
):
    card = mounted(source_fs, 0, f"{source_fs}-card")
    archive = card if archive_fs == source_fs else mounted(archive_fs, 0, f"{archive_fs}-archive")
    source, digest = source_file(card)
    strategy, copy = copy_into(archive, source, digest)
    assert strategy == "copy"
    assert shared_bytes(copy) == 0
    assert copy.read_bytes() == source.read_bytes()
