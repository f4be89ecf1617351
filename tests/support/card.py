"""A card emulator: a FUSE filesystem that serves a folder read-only at a card's speed, counts the
bytes read from it (per file and in all), and fails on command — EIO on one file, or the card
"pulled" (every stat, listing, open and read fails with EIO, as a card reader does once the card is
out; at once, or the moment it has served a given number of bytes) and "inserted" again.

It runs as its own process (`python -m tests.support.card FOLDER MOUNTPOINT --socket S`), so a
test's sidecar reads it like any card, and a test or benchmark drives it through a Unix socket with
`CardEmulator`. Built on mfusepy (https://github.com/mxmlnkn/mfusepy, `mfusepy.py`: never give the
Operations subclass an attribute named like an operation, e.g. `read` or `lock`: it would shadow
the method) over libfuse 3 (`FUSE_LIBRARY_NAME=fuse3`; Debian's `fuse3`).

Speed: a token bucket, `rate` bytes a second with at most `burst` bytes ahead of it, shared by all
reads (one medium). Counting and failures are what the unit tests check; whether the speed holds is
the benchmark's matter (bench/card_bench.py).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MB = 1_000_000
READY = b"ready\n"


# -- the filesystem (runs in the emulator's process) -------------------------------------------------


@dataclass
class CardState:
    """What the control socket changes and reports; shared by the FUSE threads under `mutex`."""

    rate: float  # bytes per second; 0: as fast as the folder's disk
    burst: int
    pulled: bool = False
    pull_at: int | None = None  # pulled once this many bytes in all have been read
    # Files a reader had open as the card was pulled, and any with a read served after it (one that
    # had passed its check just before). The kernel reads ahead of a reader, so such a file may
    # have served all its bytes while its reader's next call (a read from the cache, which
    # revalidates the file, or the one that finds the end) fails: cut off for the reader.
    open_at_pull: set[str] = field(default_factory=set)
    open_files: dict[int, str] = field(default_factory=dict)  # handle -> path, until its reader closes it
    failing: set[str] = field(default_factory=set)  # paths under the card, "/"-rooted
    read_by_file: dict[str, int] = field(default_factory=dict)
    read_total: int = 0
    opens: int = 0
    mutex: threading.Lock = field(default_factory=threading.Lock)
    medium: threading.Lock = field(default_factory=threading.Lock)  # reads take turns, as on a card
    tokens: float = 0.0
    refilled: float = field(default_factory=time.monotonic)

    def throttle(self, size: int) -> None:
        """Take `size` bytes from the bucket, waiting for the debt when it runs dry."""
        if self.rate <= 0:
            return
        with self.medium:
            now = time.monotonic()
            self.tokens = min(float(self.burst), self.tokens + (now - self.refilled) * self.rate)
            self.refilled = now
            self.tokens -= size
            if self.tokens < 0:
                time.sleep(-self.tokens / self.rate)  # the card's own pace, not a test's wait

    def pull(self) -> None:
        """Under `mutex`."""
        if not self.pulled:
            self.pulled = True
            self.open_at_pull.update(self.open_files.values())

    def stats(self) -> dict[str, Any]:
        with self.mutex:
            return {
                "total": self.read_total,
                "files": dict(self.read_by_file),
                "opens": self.opens,
                "pulled": self.pulled,
                "pull_at": self.pull_at,
                "open_at_pull": sorted(self.open_at_pull),
                "failing": sorted(self.failing),
            }


def _make_operations(root: Path, state: CardState) -> Any:
    import mfusepy

    def eio() -> OSError:
        error: OSError = mfusepy.FuseOSError(errno.EIO)
        return error

    class CardOperations(mfusepy.Operations):  # type: ignore[misc]
        use_ns = True

        def __init__(self) -> None:
            self._root = root
            self._state = state

        def _real(self, path: str) -> str:
            return os.path.join(self._root, path.lstrip("/"))

        def _check(self, path: str | None = None) -> None:
            with self._state.mutex:
                if self._state.pulled or (path is not None and path in self._state.failing):
                    raise eio()

        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            self._check()
            st = os.lstat(self._real(path))
            mode = st.st_mode & ~0o222  # read-only, as a write-protected card
            keys = ("st_ino", "st_nlink", "st_size", "st_atime_ns", "st_mtime_ns", "st_ctime_ns")
            attrs: dict[str, Any] = {key: getattr(st, key) for key in keys}
            attrs.update(st_mode=mode, st_uid=0, st_gid=0)
            for key in ("st_atime", "st_mtime", "st_ctime"):
                attrs[key] = attrs.pop(key + "_ns")
            return attrs

        def readdir(self, path: str, fh: int) -> list[str]:
            self._check()
            return [".", "..", *sorted(os.listdir(self._real(path)))]

        def open(self, path: str, flags: int) -> int:
            self._check()
            if flags & (os.O_WRONLY | os.O_RDWR):
                raise mfusepy.FuseOSError(errno.EROFS)
            fh = os.open(self._real(path), os.O_RDONLY)
            with self._state.mutex:
                self._state.opens += 1
                self._state.open_files[fh] = path
            return fh

        def flush(self, path: str, fh: int) -> int:
            """Each close(2) of the reader's, which waits for this (release comes later, on its own)."""
            with self._state.mutex:
                self._state.open_files.pop(fh, None)
            return 0

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            self._check(path)
            self._state.throttle(size)
            self._check(path)  # pulled while this read waited for the medium
            data = os.pread(fh, size, offset)
            state = self._state
            with state.mutex:
                state.read_total += len(data)
                state.read_by_file[path] = state.read_by_file.get(path, 0) + len(data)
                if state.pull_at is not None and state.read_total >= state.pull_at:
                    state.pull()  # this read is served; every later operation fails
                if state.pulled:
                    state.open_at_pull.add(path)
            return data

        def release(self, path: str, fh: int) -> int:
            with self._state.mutex:
                self._state.open_files.pop(fh, None)
            os.close(fh)
            return 0

        def statfs(self, path: str) -> dict[str, int]:
            self._check()
            st = os.statvfs(self._root)
            keys = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree")
            return {key: getattr(st, key) for key in keys} | {"f_namemax": 255}

        def readlink(self, path: str) -> str:
            self._check()
            return os.readlink(self._real(path))

        def access(self, path: str, amode: int) -> int:
            self._check()
            if amode & os.W_OK:
                raise mfusepy.FuseOSError(errno.EROFS)
            return 0

        def init(self, path: str) -> None:
            os.write(sys.stdout.fileno(), READY)  # the kernel's connection is up: the mount works

    return CardOperations()


def _listen(sock_path: str) -> socket.socket:
    """The control socket, listening before the mount says it is ready: a driver that connects at
    once must find it (a thread that bound it later, on a loaded machine, refused the first command)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen()
    return server


def _serve_control(server: socket.socket, state: CardState) -> None:
    """One JSON command a line, one JSON answer a line: pull, pull_after BYTES, insert, fail NAME,
    heal NAME, reset (the counts), rate, stats."""
    while True:
        conn, _ = server.accept()
        with conn, conn.makefile("rwb") as stream:
            for line in stream:
                command = json.loads(line)
                with state.mutex:
                    match command["cmd"]:
                        case "pull":
                            state.pull()
                        case "pull_after":
                            state.pull_at = int(command["bytes"])
                        case "insert":
                            state.pulled, state.pull_at = False, None
                            state.open_at_pull.clear()
                        case "fail":
                            state.failing.add("/" + command["name"].lstrip("/"))
                        case "heal":
                            state.failing.discard("/" + command["name"].lstrip("/"))
                        case "reset":
                            state.read_total, state.read_by_file, state.opens = 0, {}, 0
                        case "rate":
                            state.rate, state.burst = float(command["rate"]), int(command["burst"])
                stream.write(json.dumps(state.stats()).encode() + b"\n")
                stream.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("mountpoint")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--rate", type=float, default=0.0, help="bytes a second (0: unthrottled)")
    parser.add_argument("--burst", type=int, default=4 << 20, help="bytes the card may run ahead")
    parser.add_argument("--kernel-cache", action="store_true", help="keep cached pages across opens")
    args = parser.parse_args(argv)
    os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")  # libfuse 2 is installed too (exfat-fuse)
    import mfusepy

    state = CardState(rate=args.rate, burst=args.burst, tokens=float(args.burst))
    threading.Thread(target=_serve_control, args=(_listen(args.socket), state), daemon=True).start()
    operations = _make_operations(args.folder.resolve(), state)
    options: dict[str, Any] = {
        "foreground": True,
        "ro": True,
        "fsname": "card-emulator",
        "subtype": "card",
        # No cached attributes or names: a pulled card fails the next stat, not one second later.
        "attr_timeout": 0,
        "entry_timeout": 0,
        "negative_timeout": 0,
    }
    if args.kernel_cache:
        options["kernel_cache"] = True
    mfusepy.FUSE(operations, args.mountpoint, **options)


# -- the driver (runs in the test's or the benchmark's process) --------------------------------------


class CardEmulator:
    """A running emulator: its mount point, and the control socket's commands."""

    def __init__(self, process: subprocess.Popen[bytes], mountpoint: Path, sock_path: str) -> None:
        self.process = process
        self.path = mountpoint
        self._sock_path = sock_path

    def _command(self, **command: Any) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(self._sock_path)
            sock.sendall(json.dumps(command).encode() + b"\n")
            with sock.makefile("rb") as stream:
                answer: dict[str, Any] = json.loads(stream.readline())
        return answer

    def pull(self) -> None:
        """Every operation fails with EIO from now on, as when the card leaves its reader."""
        self._command(cmd="pull")

    def pull_after(self, total_bytes: int) -> None:
        """Pull the card the moment the card has served `total_bytes` in all (counted since the
        last reset): mid-read, wherever the reader is, with no waiting on the test's side."""
        self._command(cmd="pull_after", bytes=total_bytes)

    def insert(self) -> None:
        self._command(cmd="insert")

    def fail(self, name: str) -> None:
        """Reads of this file (a path under the card) fail with EIO."""
        self._command(cmd="fail", name=name)

    def heal(self, name: str) -> None:
        self._command(cmd="heal", name=name)

    def reset_counts(self) -> None:
        self._command(cmd="reset")

    def set_rate(self, rate: float, burst: int) -> None:
        self._command(cmd="rate", rate=rate, burst=burst)

    def stats(self) -> dict[str, Any]:
        return self._command(cmd="stats")

    def bytes_read(self, name: str | None = None) -> int:
        stats = self.stats()
        if name is None:
            return int(stats["total"])
        return int(stats["files"].get("/" + name.lstrip("/"), 0))


@contextlib.contextmanager
def card_emulator(
    folder: Path,
    where: Path,
    *,
    rate: float = 0.0,
    burst: int = 4 << 20,
    kernel_cache: bool = False,
    ready_timeout: float = 20.0,
) -> Iterator[CardEmulator]:
    """Serve `folder` as a card mounted at `where/card`; unmounted and stopped at the end, also when
    the code inside fails. Needs root and /dev/fuse (see filesystems.mount_unavailable)."""
    mountpoint = where / "card"
    mountpoint.mkdir(parents=True)
    sock_path = str(where / "card.sock")
    command = [
        sys.executable,
        "-m",
        "tests.support.card",
        str(folder),
        str(mountpoint),
        "--socket",
        sock_path,
    ]
    command += ["--rate", str(rate), "--burst", str(burst)] + (["--kernel-cache"] if kernel_cache else [])
    repo = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        command, cwd=repo, stdout=subprocess.PIPE, env={**os.environ, "FUSE_LIBRARY_NAME": "fuse3"}
    )
    try:
        assert process.stdout is not None
        _wait_ready(process, ready_timeout)
        yield CardEmulator(process, mountpoint, sock_path)
    finally:
        # fusermount3 -u ends the FUSE session; the process then returns from its main loop.
        unmounted = shutil.which("fusermount3") is not None and (
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True).returncode == 0
        )
        if not unmounted:  # no fusermount3, or it failed: root can unmount a FUSE mount itself
            subprocess.run(["umount", "--lazy", str(mountpoint)], capture_output=True, check=False)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sock_path)


def _wait_ready(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait (bounded) for the emulator's line saying FUSE is mounted, or its early exit."""
    import selectors

    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise TimeoutError(f"the card emulator did not mount within {timeout} s")
    line = process.stdout.readline()
    if line != READY:
        code = process.wait(timeout=10)
        raise RuntimeError(f"the card emulator exited ({code}) before mounting")


if __name__ == "__main__":
    main()
