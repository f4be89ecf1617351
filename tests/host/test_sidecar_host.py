"""The real sidecar picks its host from AUS_PLATFORM: it says which when ready, imports through the
generic host as through the native one, and refuses a host this machine cannot be."""

import subprocess
import sys
from pathlib import Path

import pytest

from sidecar import host
from tests.support.archive import add_location, write
from tests.support.client import SidecarPaths, Spawn, sidecar_command

POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32", reason="Windows is no POSIX: no generic host")


@pytest.mark.parametrize(
    ("forced", "expected"),
    [
        pytest.param({"AUS_PLATFORM": "generic"}, "generic", marks=POSIX_ONLY),
        ({"AUS_PLATFORM": ""}, host.native().name),
    ],
)
async def test_the_sidecar_imports_through_the_host_it_was_given(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path, forced: dict[str, str], expected: str
):
    sidecar = await spawn_sidecar(sidecar_paths.args(), env=forced)
    assert (await sidecar.logged("sidecar.ready"))["host"] == expected
    location = add_location(sidecar_paths.db)
    card = tmp_path / "card"
    for i in range(12):
        write(card / f"IMG_{i:04}.JPG", 5_000 + i)
    write(card / "CLIP.MP4", 9 << 20)  # more than one copy chunk
    result = await sidecar.request("import:v2:start", location.start_params(card))
    assert result["status"] == "completed" and result["errors"] == []
    assert result["finalizationResult"]["totalFinalized"] == 13
    # Windows alone cannot drop a file's cached pages.
    assert result["validationResult"] == {"totalInvalid": 0, "fromMedium": expected != "win32"}


@POSIX_ONLY
def test_a_host_this_machine_cannot_be_stops_the_sidecar_at_once(tmp_path: Path):
    done = subprocess.run(
        [*sidecar_command(), "serve", "--db", str(tmp_path / "x.db")],
        env={"AUS_PLATFORM": "win32", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert done.returncode == 1
    assert "AUS_PLATFORM='win32'" in done.stderr and done.stdout == ""
