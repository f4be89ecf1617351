"""The benchmark's datasets (the shapes of performance-floor.md §1), generated from a seed.

Content comes from BLAKE3's extendable output keyed by dataset, seed and relative path: fast (GB/s),
never all-zero, incompressible, and distinct per file, so the import finds no duplicates and every
file is really hashed, copied and re-read.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import blake3

KIB = 1024
MIB = 1024 * KIB
_CHUNK = 8 * MIB  # big files are written in slices of the XOF stream, not built whole in memory


@dataclass(frozen=True)
class Dataset:
    name: str
    root: Path
    files: list[Path]  # every file written, absolute
    total_bytes: int
    finalized: int  # files that get a media row: sidecars (.xmp) travel with their parent, rowless


def _large(rng: random.Random) -> list[tuple[str, int]]:
    return [(f"clip_{i:03d}.mp4", 50 * MIB) for i in range(40)]


def _small(rng: random.Random) -> list[tuple[str, int]]:
    return [
        (f"{d:03d}/IMG_{d * 100 + i:05d}.jpg", rng.randint(4 * KIB, 64 * KIB))
        for d in range(200)
        for i in range(100)
    ]


def _mixed(rng: random.Random) -> list[tuple[str, int]]:
    """A camera card: 77 photos with an XMP each over two folders, and one 200 MiB clip per folder.
    Clip names differ from photo names so no Live-Photo pairs form."""
    files = []
    for i in range(77):
        folder = "DCIM/100MEDIA" if i < 39 else "DCIM/101MEDIA"
        files.append((f"{folder}/IMG_{i + 1:04d}.JPG", rng.randint(3 * MIB, 8 * MIB)))
        files.append((f"{folder}/IMG_{i + 1:04d}.XMP", 2 * KIB))
    files += [("DCIM/100MEDIA/MVI_0001.MP4", 200 * MIB), ("DCIM/101MEDIA/MVI_0002.MP4", 200 * MIB)]
    return files


def _huge(rng: random.Random) -> list[tuple[str, int]]:
    return [
        (f"{d:04d}/IMG_{d * 100 + i:05d}.jpg", rng.randint(1 * KIB, 4 * KIB))
        for d in range(1000)
        for i in range(100)
    ]


LAYOUTS: dict[str, Callable[[random.Random], list[tuple[str, int]]]] = {
    "large": _large,
    "small": _small,
    "mixed": _mixed,
    "huge": _huge,
}


def generate(name: str, root: Path, seed: int = 1) -> Dataset:
    """Write dataset `name` under `root` (which must not exist yet)."""
    layout = LAYOUTS[name](random.Random(f"{name}:{seed}"))
    root.mkdir(parents=True)
    files = []
    for relative, size in layout:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        stream = blake3.blake3(f"{name}:{seed}:{relative}".encode())
        with open(path, "wb") as f:
            for offset in range(0, size, _CHUNK):
                f.write(stream.digest(length=min(_CHUNK, size - offset), seek=offset))
        files.append(path)
    sidecars = sum(1 for relative, _ in layout if relative.lower().endswith(".xmp"))
    return Dataset(name, root, files, sum(size for _, size in layout), len(layout) - sidecars)
