"""Each step run in process over a small card of 4-file pages: fresh harnesses on demand, closed at
the end, and no failpoint left armed."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sidecar.pipeline import failpoints
from tests.support.archive import write
from tests.support.imports import Harness, NewHarness, open_harness


def make_card(root: Path) -> Path:
    """Ten photos in two folders, two of them the same bytes under another name (one in each
    folder), an .xmp sidecar and a file of an unknown type."""
    for i in range(10):
        write(root / f"{100 + i // 5}CARD" / f"IMG_{i:04d}.JPG", 3000 + i, seed=i)
    (root / "100CARD" / "COPY_0001.JPG").write_bytes((root / "100CARD" / "IMG_0001.JPG").read_bytes())
    (root / "101CARD" / "COPY_0002.JPG").write_bytes((root / "100CARD" / "IMG_0002.JPG").read_bytes())
    write(root / "100CARD" / "IMG_0003.xmp", 200)
    write(root / "101CARD" / "notes.xyz", 10)
    return root


@pytest.fixture
def card(tmp_path: Path) -> Path:
    return make_card(tmp_path / "card")


@pytest.fixture(params=[True, False], ids=["read-once", "read-twice"])
def read_once(request: pytest.FixtureRequest) -> bool:
    """Every step test runs both ways an import reads: once (the default: hashed while staged for
    the copy) and twice (`--read-once never`: hashed, then read again by the copy)."""
    return bool(request.param)


@pytest.fixture
async def new_harness(tmp_path: Path, card: Path, read_once: bool) -> AsyncIterator[NewHarness]:
    opened: list[Harness] = []

    async def new() -> Harness:
        harness = await open_harness(tmp_path / f"run{len(opened)}", [card], read_once=read_once)
        opened.append(harness)
        return harness

    yield new
    failpoints.disarm()
    for harness in opened:
        await harness.db.close()
