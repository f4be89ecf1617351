"""The import direction of sidecar/'s packages (STYLE.md): the wire (`rpc`, `api`) and the entry
points on top, the domain (`pipeline`, `jobs`) in the middle, neither importing the other, and
the foundations (`archive`, `db`, `tools`, `workers`, …) at the bottom, importing only each other."""

import ast
from pathlib import Path

SIDECAR = Path(__file__).resolve().parents[1] / "sidecar"
TOP = {"rpc", "api", "app", "cli", "console", "__main__"}
DOMAIN = {"pipeline", "jobs"}
# Everything else is a foundation (archive, db, fs, tools, workers, errors, log, config, …).


def layer(package: str) -> int:
    return 2 if package in TOP else 1 if package in DOMAIN else 0


def violations(root: Path) -> list[str]:
    """`module → imported module` for every import that goes the wrong way."""
    found = []
    for file in sorted(root.rglob("*.py")):
        parts = file.relative_to(root).with_suffix("").parts
        here = parts[0]
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                target = name.split(".")
                if target[0] != root.name or len(target) < 2:
                    continue
                there = target[1]
                wrong_way = layer(there) > layer(here)
                across = here in DOMAIN and there in DOMAIN and here != there
                if wrong_way or across:
                    found.append(f"{'.'.join(parts)} → {name}")
    return found


def test_no_package_imports_against_the_layers() -> None:
    assert violations(SIDECAR) == []


def test_the_check_catches_a_wrong_way_import(tmp_path: Path) -> None:
    root = tmp_path / "sidecar"
    for package, source in {
        "db": "from sidecar.pipeline.journal import Journal\n",
        "jobs": "import sidecar.pipeline.run\n",
        "pipeline": "from sidecar.api.imports import ImportApi\nfrom sidecar.archive import media\n",
        "archive": "from sidecar.db.locations import Location\n",
    }.items():
        (root / package).mkdir(parents=True)
        (root / package / "module.py").write_text(source)
    assert violations(root) == [
        "db.module → sidecar.pipeline.journal",
        "jobs.module → sidecar.pipeline.run",
        "pipeline.module → sidecar.api.imports",
    ]
