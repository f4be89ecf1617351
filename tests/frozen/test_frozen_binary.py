"""The frozen binary (`pyinstaller.spec`, onedir) smoke-tested as the app runs it: ready, info with
the tools found on PATH, an import that runs the process pool (freeze_support), bad params, stdin
EOF, SIGKILL, and nothing left running afterwards.

The binary is built once per session by scripts/build-frozen when it is missing or older than
anything it is built from. Processes are read from /proc, so this runs on Linux only (as CI does).
"""

import asyncio
import contextlib
import fcntl
import os
import platform
import shlex
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from sidecar import PROTOCOL_VERSION, __version__
from tests.support.archive import add_location, assert_archive_invariant, hash16, write
from tests.support.client import REPO, RpcError, SidecarPaths, SidecarProcess, Spawn
from tests.support.flashpix import write_flashpix
from tests.support.media import make_heic
from tests.support.raws import make_cfa_dng

DIST = REPO / "dist" / "au-sidecar"
BINARY = DIST / "au-sidecar"
# What the bundle is built from; a newer file here means the binary is stale.
BUILT_FROM = [
    REPO / "sidecar",
    REPO / "protocol",
    REPO / "pyinstaller.spec",
    REPO / "scripts" / "build-frozen",
]
BUILD_TIMEOUT_S = 300
EXIT_TIMEOUT_S = 10
RUN_MARKER = "AU_SIDECAR_SMOKE_RUN"

# The first test also waits for the build (15 s here); every wait in the tests is bounded on its own.
pytestmark = pytest.mark.timeout(BUILD_TIMEOUT_S + 120)


def _stale() -> bool:
    if not BINARY.exists():
        return True
    built = BINARY.stat().st_mtime
    for root in BUILT_FROM:
        for path in [root] if root.is_file() else root.rglob("*"):
            if "__pycache__" not in path.parts and path.is_file() and path.stat().st_mtime > built:
                return True
    return False


@pytest.fixture(scope="session")
def frozen_binary() -> Iterator[Path]:
    """dist/au-sidecar/au-sidecar, (re)built first if missing or stale. Held under a shared lock
    for the session, so another session cannot rebuild (delete) it while our tests run it."""
    lock_file = REPO / "build" / "frozen.lock"
    lock_file.parent.mkdir(exist_ok=True)
    with lock_file.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        if _stale():
            fcntl.flock(lock, fcntl.LOCK_EX)
            if _stale():
                subprocess.run([REPO / "scripts" / "build-frozen"], check=True, timeout=BUILD_TIMEOUT_S)
            fcntl.flock(lock, fcntl.LOCK_SH)
        yield BINARY


@pytest.fixture
def frozen(frozen_binary: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Makes spawn_sidecar start the frozen binary instead of `python -m sidecar`."""
    monkeypatch.setenv("SIDECAR_CMD", shlex.quote(str(frozen_binary)))
    return frozen_binary


# -- processes, from /proc ----------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    exe: str | None
    cmdline: tuple[str, ...]


def _proc(pid: int) -> Proc | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    if fields[0] == "Z":
        return None  # exited; only its exit status is left
    try:
        exe: str | None = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        exe = None
    args = tuple(a.decode(errors="replace") for a in cmdline.split(b"\0") if a)
    return Proc(pid, int(fields[1]), exe, args)


def processes() -> Iterator[Proc]:
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (proc := _proc(int(entry))) is not None:
            yield proc


def children(pid: int) -> list[Proc]:
    return [p for p in processes() if p.ppid == pid]


def marked(token: str) -> list[Proc]:
    """Processes started with RUN_MARKER=token in their environment: the sidecar and everything
    it started (workers, resource tracker, tools), even those in their own session or orphaned."""
    wanted = f"{RUN_MARKER}={token}".encode()
    found = []
    for proc in processes():
        try:
            environ = Path(f"/proc/{proc.pid}/environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        if wanted in environ.split(b"\0"):
            found.append(proc)
    return found


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def survivors(token: str, timeout: float) -> list[Proc]:
    """Waits up to `timeout` for every marked process to exit (on pidfds, readable when the process
    ends); returns those still running."""
    loop = asyncio.get_running_loop()
    waits: list[asyncio.Future[None]] = []
    fds: list[int] = []
    for proc in marked(token):
        try:
            fd = os.pidfd_open(proc.pid)
        except ProcessLookupError:
            continue
        fds.append(fd)
        gone: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, _resolve, gone)
        waits.append(gone)
    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(*waits)
    except TimeoutError:
        pass
    finally:
        for fd in fds:
            loop.remove_reader(fd)
            os.close(fd)
    return marked(token)


async def end(client: SidecarProcess, token: str) -> list[Proc]:
    """Waits up to EXIT_TIMEOUT_S for the sidecar and everything it started to exit, then for its
    pipes to close. What is still running is killed (it would hold the pipes and hang the
    session's teardown) and returned."""
    left = await survivors(token, EXIT_TIMEOUT_S)
    for proc in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
    await client.wait_exit(EXIT_TIMEOUT_S)
    return left


def tool_version(name: str) -> str:
    """The tool's version as `sidecar:info` reports it, asked directly."""
    args = ["-ver"] if name == "exiftool" else ["-version"]
    first = subprocess.run([name, *args], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    return first.strip() if name == "exiftool" else first.split()[2]


# -- tests --------------------------------------------------------------------------------------


async def test_ready_then_info_with_the_tools_found_on_path(
    frozen: Path, spawn_sidecar: Spawn, sidecar_paths: SidecarPaths
):
    client = await spawn_sidecar(sidecar_paths.args())
    # onedir: Python runs in the launched process itself, with no bootloader parent in between.
    assert client.of("sidecar:ready") == [
        {"version": __version__, "protocolVersion": PROTOCOL_VERSION, "pid": client.process.pid}
    ]
    info = await client.request("sidecar:info")
    assert (info["name"], info["version"], info["pid"]) == ("au-sidecar", __version__, client.process.pid)
    assert info["python"] == platform.python_version()  # the bundle carries the venv's Python
    assert Path(os.readlink(f"/proc/{info['pid']}/exe")) == frozen.resolve()
    # The tools ran with the bootloader's library path undone (sidecar.tools.discovery.child_env): a system
    # ffmpeg loading the bundle's libraries would fail or misreport.
    for name in ("exiftool", "ffprobe", "ffmpeg"):
        which = shutil.which(name)
        assert which is not None, f"{name} is not on PATH: run scripts/setup"
        assert info["tools"][name] == {"path": os.path.abspath(which), "version": tool_version(name)}


async def test_an_import_runs_on_the_process_pool_then_stdin_eof_leaves_nothing_running(
    frozen: Path, spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    token = uuid.uuid4().hex
    client = await spawn_sidecar([*sidecar_paths.args(), "--hash-workers", "2"], {RUN_MARKER: token})
    location = add_location(sidecar_paths.db)
    card = tmp_path / "card"
    sources = [write(card / "small" / f"IMG_{i:04d}.jpg", 4096) for i in range(300)]
    sources += [write(card / "big" / f"BIG_{i}.jpg", 8 << 20) for i in range(4)]

    result = await client.request("import:v2:start", location.start_params(card), timeout=120)

    assert (result["status"], result["errors"]) == ("completed", []), result
    assert result["finalizationResult"]["totalFinalized"] == len(sources)
    folder = sidecar_paths.archive / "locations" / "NY-factory" / f"old-factory-{location.loc12}"
    archived = sorted(p.name for p in (folder / f"org-img-{location.loc12}").iterdir())
    assert archived == sorted({f"{hash16(p)}.jpg" for p in sources})
    assert all(len(name) == len("0123456789abcdef.jpg") for name in archived)
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)

    # The pool's workers are this binary re-run by multiprocessing, diverted by freeze_support().
    assert [r["action"] for r in client.stderr_json()].count("bytepool.start") == 1
    workers = [p for p in children(client.process.pid) if "--multiprocessing-fork" in p.cmdline]
    assert 1 <= len(workers) <= 2, children(client.process.pid)
    assert all(p.exe is not None and Path(p.exe) == frozen.resolve() for p in workers), workers
    assert {p.pid for p in workers} | {client.process.pid} <= {p.pid for p in marked(token)}

    await client.close_stdin()
    assert await end(client, token) == []
    assert client.process.returncode == 0, client.stderr_lines[-20:]
    # Exactly one main() ran: a worker that re-ran it would have logged its own exit.
    assert [r["action"] for r in client.stderr_json()].count("sidecar.exit") == 1


async def test_thumbnails_come_from_the_bundled_pillow(
    frozen: Path, spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    client = await spawn_sidecar(sidecar_paths.args())
    location = add_location(sidecar_paths.db)
    photo = tmp_path / "card" / "IMG_0001.jpg"
    photo.parent.mkdir()
    Image.new("RGB", (1200, 900), (200, 120, 40)).save(photo, quality=90)

    result = await client.request("import:v2:start", location.start_params(photo))
    assert result["status"] == "completed", result
    ready = await client.notification("asset:thumbnail-ready", lambda p: p["hash"] == hash16(photo), 60)
    with Image.open(ready["paths"]["sm"]) as small:
        assert (small.format, small.size) == ("JPEG", (533, 400))


async def test_heic_raw_and_flashpix_thumbnails_come_from_the_bundled_decoders(
    frozen: Path, spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    # pi-heif (libheif, libde265), rawpy (LibRaw, numpy) and olefile (Pillow's FlashPix reader)
    # must be in the bundle: none is imported until the first such thumbnail (without olefile
    # Pillow merely skips its FPX plugin), so only a decode proves it.
    client = await spawn_sidecar(sidecar_paths.args())
    location = add_location(sidecar_paths.db)
    card = tmp_path / "card"
    picture = Image.new("RGB", (600, 400), (200, 120, 40))
    heic = make_heic(card / "IMG_0001.HEIC", picture)
    raw = make_cfa_dng(card / "L1000001.DNG", picture)
    fpx = write_flashpix(card / "IMG_0002.FPX", picture)

    result = await client.request("import:v2:start", location.start_params(card))
    assert result["status"] == "completed", result
    for source, size in ((heic, (600, 400)), (raw, (300, 200)), (fpx, (600, 400))):  # LibRaw: half size
        digest = hash16(source)
        ready = await client.notification("asset:thumbnail-ready", lambda p: p["hash"] == digest, 60)  # noqa: B023
        with Image.open(ready["paths"]["sm"]) as small:
            assert (small.format, small.size) == ("JPEG", size)


async def test_bad_params_name_every_issue(frozen: Path, spawn_sidecar: Spawn, sidecar_paths: SidecarPaths):
    client = await spawn_sidecar(sidecar_paths.args())
    with pytest.raises(RpcError) as error:
        await client.request("import:v2:start", [{"paths": 5, "locid": 7}])
    assert (error.value.code, error.value.message) == (-32602, "Invalid params")
    issues = error.value.data["issues"]
    assert {"/0/paths", "/0/locid"} <= {i["path"] for i in issues}, issues
    assert (await client.request("sidecar:info"))["pid"] == client.process.pid  # still serving


async def test_after_a_sigkill_the_workers_exit_too(
    frozen: Path, spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
):
    """The app's last resort must not leave the pool's workers or resource tracker behind."""
    token = uuid.uuid4().hex
    client = await spawn_sidecar([*sidecar_paths.args(), "--hash-workers", "2"], {RUN_MARKER: token})
    location = add_location(sidecar_paths.db)
    source = write(tmp_path / "card" / "IMG_0001.jpg", 4096)
    await client.request("import:v2:start", location.start_params(source))  # so the workers run
    assert any("--multiprocessing-fork" in p.cmdline for p in children(client.process.pid))

    os.kill(client.process.pid, signal.SIGKILL)  # the sidecar alone, not its process group
    assert await end(client, token) == []
    assert client.process.returncode == -signal.SIGKILL
