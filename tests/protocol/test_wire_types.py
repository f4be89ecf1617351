"""sidecar/api/wire.py is generated from protocol/: it must be current, and the check must bite when
the contract drifts from it."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "scripts" / "wire_types.py"


def check(protocol: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--protocol", str(protocol)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )


def test_the_wire_types_are_generated_from_the_current_contract() -> None:
    done = check(REPO / "protocol")
    assert done.returncode == 0, done.stderr


def test_the_check_fails_when_a_schema_changes(tmp_path: Path) -> None:
    protocol = tmp_path / "protocol"
    shutil.copytree(REPO / "protocol", protocol)
    schema = protocol / "schemas" / "import.v2.complete.notification.json"
    document = json.loads(schema.read_text())
    document["properties"]["totalSkipped"] = {"$ref": "defs.json#/$defs/Count"}
    schema.write_text(json.dumps(document))
    done = check(protocol)
    assert done.returncode == 1
    assert "stale" in done.stderr
