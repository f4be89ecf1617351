"""Logging as JSON lines on stderr, each with an `action` field. Never stdout: that is the protocol.

While serving, stderr carries nothing else: Python warnings are logged (`python.warning`), and
fd 2 itself is a pipe whose lines are logged (`stderr.native`), so what C libraries, children
and Python's last-resort output write there arrives as JSON too.
"""

import atexit
import logging
import os
import sys
import threading
import uuid
from typing import Any, TextIO

import orjson

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# A line written to fd 2 without a newline is logged in pieces of this size.
NATIVE_LINE_LIMIT = 64 * 1024
# How long exit waits for the lines already in the pipe to be logged.
NATIVE_DRAIN_S = 2.0


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "action": getattr(record, "action", "log"),
            "msg": record.getMessage(),
        }
        line.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure(level: str = "info", *, capture_native: bool = False) -> None:
    """JSON lines on stderr. `capture_native` (the server) also makes fd 2 a pipe logged line by
    line; call it before fd 1 is pointed at fd 2, so fd 1's stray writes are caught as well."""
    stream: TextIO = sys.stderr
    if capture_native:
        stream = _NativeStderr.start()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # warnings.warn (Pillow's UserWarning, DecompressionBombWarning, ...) becomes a log record.
    logging.captureWarnings(True)
    warnings_logger = logging.getLogger("py.warnings")
    if not any(isinstance(f, _Action) for f in warnings_logger.filters):
        warnings_logger.addFilter(_Action("python.warning"))
    if capture_native:
        _NativeStderr.pump()


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


class _Action(logging.Filter):
    """Gives records from a logger we do not own (py.warnings) an `action`."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action = action

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "action"):
            record.action = self.action
        return True


class _NativeStderr:
    """fd 2 as a pipe read by a thread that logs each line; the log handler writes to a private
    copy of the real stderr. Whatever writes to fd 2 (libtiff's error handler prints "<file>:
    <message>" there; Pillow installs only a warning handler), a child that inherits it, and
    Python's own last resort (an unraisable exception, a thread's traceback) thus reach the app as
    JSON. A write the pipe cannot take at once waits for the thread, as a slow terminal would."""

    _read_fd: int | None = None
    _marker = b""
    _drained = threading.Event()

    @classmethod
    def start(cls) -> TextIO:
        """Redirect fd 2; returns the real stderr as a line-buffered text stream."""
        real_fd = os.dup(2)  # non-inheritable: children get the pipe, never the real stderr
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)  # inheritable, as fd 2 should be
        os.close(write_fd)
        cls._read_fd = read_fd
        cls._marker = f"au-sidecar-drained-{uuid.uuid4().hex}".encode()
        # The real stderr is gone (the app died): there is no one to tell, and handleError's own
        # report would go to fd 2, i.e. back into the pipe, for ever.
        logging.raiseExceptions = False
        return open(real_fd, "w", buffering=1, encoding="utf-8", errors="replace")

    @classmethod
    def pump(cls) -> None:
        """Start the thread (once logging writes to the real stderr, so it never logs into itself)."""
        if cls._read_fd is None:
            return
        threading.Thread(target=cls._run, args=(cls._read_fd,), name="stderr-pump", daemon=True).start()
        atexit.register(cls._drain)

    @classmethod
    def _run(cls, read_fd: int) -> None:
        log = logging.getLogger("sidecar.native")
        pending = b""
        while chunk := os.read(read_fd, 1 << 16):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            while len(pending) > NATIVE_LINE_LIMIT:
                lines.append(pending[:NATIVE_LINE_LIMIT])
                pending = pending[NATIVE_LINE_LIMIT:]
            for line in lines:
                if line == cls._marker:
                    cls._drained.set()
                    continue
                text = line.decode(errors="replace").rstrip("\r")
                if text.strip():
                    log.warning(text, extra={"action": "stderr.native"})

    @classmethod
    def _drain(cls) -> None:
        """At exit: log what is still in the pipe (a library's last words) before the process ends."""
        try:
            sys.stderr.flush()
            os.write(2, b"\n" + cls._marker + b"\n")  # a line left open ends before the marker
        except OSError:
            return
        cls._drained.wait(NATIVE_DRAIN_S)
