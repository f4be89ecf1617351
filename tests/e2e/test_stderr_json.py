"""stderr carries JSON log lines only, whatever writes there: files that make Pillow warn (a Python
UserWarning) and libtiff complain (its error handler prints to fd 2 from C) imported through the
real sidecar process, their thumbnail jobs run, the process stopped; every stderr line parses."""

import re
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
from PIL import Image

from tests.support.archive import add_location, hash16
from tests.support.client import SidecarPaths, Spawn, jobs_settled

ORIENTATION = 274


def _entries(data: bytes | bytearray) -> dict[int, int]:
    """Tag -> offset of its 12-byte entry in IFD0 of a little-endian TIFF."""
    assert data[:4] == b"II*\x00"
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    return {struct.unpack_from("<H", data, ifd + 2 + 12 * n)[0]: ifd + 2 + 12 * n for n in range(count)}


def make_tiff_with_two_orientations(path: Path) -> Path:
    """A readable TIFF whose Orientation has two values where TIFF allows one: Pillow warns
    "Metadata Warning, tag 274 had too many entries: 2, expected 1" (a UserWarning), then decodes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (640, 480), (40, 90, 200)).save(path, "TIFF", tiffinfo={ORIENTATION: 1})
    data = bytearray(path.read_bytes())
    entry = _entries(data)[ORIENTATION]
    struct.pack_into("<IHH", data, entry + 4, 2, 1, 1)  # count 2, both SHORTs inline
    path.write_bytes(data)
    return path


def make_tiff_with_a_corrupt_strip(path: Path) -> Path:
    """An LZW TIFF whose first strip is overwritten with 0xFF: Pillow hands it to libtiff, whose error
    handler prints "<name>: Using code not yet in table." on fd 2 (Pillow sets only libtiff's
    warning handler); the decode fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Pseudo-random pixels (the same every run) keep the strip long: LZW barely compresses them.
    pixels = bytes((n * 7919 + (n >> 8) * 104729) % 251 for n in range(256 * 256 * 3))
    Image.frombytes("RGB", (256, 256), pixels).save(path, "TIFF", compression="tiff_lzw")
    data = bytearray(path.read_bytes())
    (count, where) = struct.unpack_from("<II", data, _entries(data)[273] + 4)  # StripOffsets
    (first,) = struct.unpack_from("<I", data, where) if count > 1 else (where,)
    data[first + 192 : first + 2000] = b"\xff" * (2000 - 192)
    path.write_bytes(data)
    return path


async def test_warnings_and_c_library_messages_reach_stderr_as_json_lines(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    client = await spawn_sidecar(sidecar_paths.args())
    location = add_location(sidecar_paths.db)
    card = tmp_path / "card"
    warns = make_tiff_with_two_orientations(card / "SCAN_0001.TIF")
    broken = make_tiff_with_a_corrupt_strip(card / "SCAN_0002.TIF")

    result = await client.request("import:v2:start", location.start_params(card))
    assert result["status"] == "completed", result
    status = await jobs_settled(client)
    assert (status["thumbnail"]["completed"], status["thumbnail"]["dead"]) == (1, 1)
    dead = await client.notification("jobs:deadLetter", lambda p: p["queue"] == "thumbnail")
    # Undecodable: dead after one attempt, the archived copy (named by its hash) in the reason.
    assert dead["attempts"] == 1 and dead["error"].startswith("cannot decode ")
    assert hash16(broken) in dead["error"]
    ready = await client.notification("asset:thumbnail-ready", lambda p: p["hash"] == hash16(warns))
    assert Path(ready["paths"]["sm"]).is_file()
    await client.close_stdin()
    assert await client.wait_exit() == 0

    records = []
    for line in client.stderr_lines:
        record = orjson.loads(line)  # raises on any line that is not JSON
        assert isinstance(record, dict) and isinstance(record.get("action"), str), line
        records.append(record)
    warnings = [r for r in records if r["action"] == "python.warning"]
    assert any("UserWarning" in r["msg"] and "tag 274 had too many entries" in r["msg"] for r in warnings), (
        warnings
    )
    native = [r for r in records if r["action"] == "stderr.native"]
    # libtiff's default error handler prints "<module>: <message>", the module being the file name
    # Pillow gives libtiff ("tempfile.tif"); the message (here "Using code not yet in table.")
    # may differ between libtiff versions.
    assert any(re.match(r"\S+\.tif: \S", r["msg"]) for r in native), native
    assert {r["level"] for r in native} == {"warning"}
    assert "sidecar.exit" in {r["action"] for r in records}


def test_every_stray_write_to_stderr_or_stdout_becomes_a_json_line():
    """The server's start order (sidecar/cli.py: logging, then claim_stdio) in a bare process: a
    print, C-level writes to fd 1 and fd 2, a child's stdout and stderr, a warning and a line left
    without its newline at exit all arrive on stderr as JSON lines; stdout has the frame only."""
    script = textwrap.dedent(
        """
        import os, subprocess, warnings
        from sidecar import log
        log.configure("info", capture_native=True)
        from sidecar.rpc.stdio import claim_stdio
        streams = claim_stdio()
        print("stray print")
        os.write(1, b"c-level write to fd 1\\n")
        os.write(2, b"c-level write to fd 2\\n")
        subprocess.run(["sh", "-c", "echo child stdout; echo child stderr >&2"], check=True)
        warnings.warn("careful now")
        os.write(streams.outbound, b'{"frame":1}\\n')
        os.write(2, b"last words without a newline")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=30, check=True)

    assert result.stdout == b'{"frame":1}\n'
    records = [orjson.loads(line) for line in result.stderr.splitlines()]
    native = [r["msg"] for r in records if r["action"] == "stderr.native"]
    assert native == [
        "stray print",
        "c-level write to fd 1",
        "c-level write to fd 2",
        "child stdout",
        "child stderr",
        "last words without a newline",
    ]
    [warning] = [r for r in records if r["action"] == "python.warning"]
    assert "UserWarning: careful now" in warning["msg"]
