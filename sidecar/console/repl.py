"""`au-sidecar repl [--db FILE] [--archive DIR] [--log FILE] [-- COMMAND...]`: call a sidecar's
methods by hand and watch its notifications. It spawns `au-sidecar serve` (or exactly COMMAND, such
as a frozen binary) and reads `method [json params]` lines; it knows the methods only from
`protocol/`, and the sidecar only through its stdio.

Input: `method` alone sends `[]`; `method [...]` sends that array as the params; any other JSON
value is the one argument, so `import:v2:start {"paths": [...], ...}` sends `[{...}]` and
`import:v2:cancel "id"` sends `["id"]` (write `jobs:acknowledge [[1, 2]]` for an array argument).
`help [name]` shows a method's params and description, `log` the sidecar's last stderr lines,
`quit` or Ctrl-D stops the sidecar and leaves. TAB completes names; history is kept in
~/.au_sidecar_history (or $AU_SIDECAR_HISTORY). Ctrl-C clears the line at the prompt; while a call
is waiting it stops waiting, and the answer prints when it comes.

Piped input is read line by line (blank lines and `#` comments skipped), with no prompt; then the
exit status is 1 when any call failed.
"""

import argparse
import asyncio
import concurrent.futures
import contextlib
import functools
import itertools
import json
import os
import readline
import shutil
import signal
import sys
import textwrap
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any, TypeVar

from sidecar.console.client import (
    LINE_LIMIT,
    READY_TIMEOUT_S,
    Notify,
    RemoteError,
    SidecarClient,
    SidecarGone,
    own_command,
)
from sidecar.rpc.contract import Contract, protocol_dir

# POSIX signals and GNU readline: the REPL is not for Windows (`au-sidecar import` is). mypy reads
# this as "the rest of the module does not exist on win32".
assert sys.platform != "win32", "au-sidecar repl needs POSIX signals and readline"

PROMPT = "sidecar> "
HISTORY_ENV = "AU_SIDECAR_HISTORY"
HISTORY_LENGTH = 1000
STDERR_KEPT = 200
STDERR_SHOWN = 20
DRAIN_TIMEOUT_S = 2.0
COMMANDS = ("help", "log", "quit", "exit")
MAIN_THREAD_SIGNALS = {signal.SIGINT, signal.SIGUSR1}
_T = TypeVar("_T")


class SidecarExited(Exception):
    """Raised in the main thread (by SIGUSR1) when the sidecar exits while the REPL waits for input."""


@dataclass(frozen=True, slots=True)
class Options:
    command: list[str]
    log: Path | None


def parse(argv: list[str]) -> Options:
    own, dashes, command = _split(argv)
    parser = argparse.ArgumentParser(
        prog="au-sidecar repl",
        usage="%(prog)s [--db FILE] [--archive DIR] [--log FILE] [-- COMMAND...]",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="After --, COMMAND is run as given, e.g. -- dist/au-sidecar/au-sidecar serve --db x.db",
    )
    parser.add_argument("--db", type=Path, help="SQLite file (default: the sidecar's default database)")
    parser.add_argument("--archive", type=Path, help="archive root (default: the database's setting)")
    parser.add_argument("--log", type=Path, help="also append the sidecar's stderr to this file")
    args = parser.parse_args(own)
    if dashes and not command:
        parser.error("no command after --")
    if command and (args.db or args.archive):
        parser.error("--db and --archive belong to the command after --")
    if not command:
        command = [*own_command(), "serve"]
        command += ["--db", str(args.db.absolute())] if args.db else []
        command += ["--archive", str(args.archive.absolute())] if args.archive else []
    return Options(command, args.log)


def _split(argv: list[str]) -> tuple[list[str], bool, list[str]]:
    if "--" not in argv:
        return argv, False, []
    at = argv.index("--")
    return argv[:at], True, argv[at + 1 :]


def parse_params(text: str) -> list[Any]:
    """A JSON array is the params array itself; any other JSON value is its one argument."""
    text = text.strip()
    if not text:
        return []
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"params are not JSON: {exc}") from None
    return value if isinstance(value, list) else [value]


# --- what protocol/ says ------------------------------------------------------------------------


class Catalog:
    """Method and notification names with their help, from `protocol/`."""

    def __init__(self, contract: Contract, document: dict[str, Any]) -> None:
        self._contract = contract
        self._methods = {m["name"]: m for m in document["methods"]}
        self._notifications = {n["name"]: n for n in document["x-notifications"]}
        self.methods: list[str] = sorted(self._methods)
        self.notifications: list[str] = sorted(self._notifications)

    @classmethod
    def load(cls) -> "Catalog":
        document = json.loads((protocol_dir() / "openrpc.json").read_text(encoding="utf-8"))
        return cls(Contract.load(), document)

    def help(self, name: str) -> str:
        if not name:
            return self._overview()
        if name in self._methods:
            return self._method_help(name)
        if name in self._notifications:
            return f"{name} (notification) — {self._notifications[name]['summary']}"
        matching = [n for n in [*self.methods, *self.notifications] if n.startswith(name)]
        if matching:
            return "matching: " + ", ".join(matching)
        return f"no method or notification named {name!r} in protocol/"

    def _method_help(self, name: str) -> str:
        method = self._methods[name]
        lines = [self._contract.summary(name)]
        lines += [f"  {p['name']}: {p.get('summary', '')}" for p in method["params"]]
        if method.get("description"):
            lines += textwrap.wrap(
                method["description"], width=96, initial_indent="  ", subsequent_indent="  "
            )
        return "\n".join(lines)

    def _overview(self) -> str:
        lines = ["methods (`help METHOD` for its params):"]
        lines += [f"  {name:22} {self._methods[name]['summary']}" for name in self.methods]
        lines += [
            "notifications:",
            *textwrap.wrap(", ".join(self.notifications), 96, initial_indent="  ", subsequent_indent="  "),
        ]
        lines += [
            "input: METHOD [JSON]: a JSON array is the params, any other value the one argument",
            "       help [NAME], log (the sidecar's stderr), quit or Ctrl-D",
        ]
        return "\n".join(lines)


# --- how things look ----------------------------------------------------------------------------


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def format_error(error: RemoteError) -> str:
    lines = [f"error {error.code}: {error}"]
    data = error.data
    if isinstance(data, dict):
        for issue in data.get("issues") or []:
            where = issue.get("path") if isinstance(issue, dict) else None
            what = issue.get("message") if isinstance(issue, dict) else issue
            lines.append(f"  {where or '(params)'}: {what}")
        rest = {key: value for key, value in data.items() if key != "issues"}
        if rest:
            lines.append(f"  {compact(rest)}")
    elif data is not None:
        lines.append(f"  {compact(data)}")
    if error.code == -32603:
        lines.append("  (`log` shows the sidecar's stderr, where the traceback went)")
    return "\n".join(lines)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _size(count: Any) -> str:
    value = _number(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def import_progress_line(progress: dict[str, Any]) -> str:
    parts = [
        f"[import:v2:progress] {str(progress.get('sessionId'))[:8]}",
        str(progress.get("status")),
        f"{_number(progress.get('percent')):.0f}%",
        f"files {progress.get('filesProcessed')}/{progress.get('filesTotal')}",
        f"{_size(progress.get('bytesProcessed'))}/{_size(progress.get('bytesTotal'))}",
    ]
    if progress.get("duplicatesFound"):
        parts.append(f"duplicates {progress['duplicatesFound']}")
    if progress.get("errorsFound"):
        parts.append(f"errors {progress['errorsFound']}")
    if progress.get("estimatedRemainingMs"):
        parts.append(f"eta {_number(progress['estimatedRemainingMs']) / 1000:.0f} s")
    return "  ".join(parts)


def jobs_progress_line(progress: dict[str, Any]) -> str:
    line = (
        f"[jobs:progress] {progress.get('queue')} #{progress.get('jobId')}"
        f"  {_number(progress.get('progress')):.0f}%"
    )
    return f"{line}  {progress['message']}" if progress.get("message") else line


# --- the terminal -------------------------------------------------------------------------------


class Screen:
    """Writes from both threads without mangling the line being typed: on a terminal, every message
    goes above the prompt, which is then drawn again with what was typed so far (the cursor lands at
    its end), and a progress line is rewritten in place while it is the last thing written. Without
    a terminal, a progress line is written once per phase (an import's step, a job's start and end).
    """

    def __init__(self, out: IO[str], live: bool) -> None:
        self._out = out
        self.live = live
        self._lock = threading.Lock()
        self._prompt: str | None = None
        self._status: Hashable | None = None  # the progress line right above the cursor
        self._phases: dict[Hashable, str] = {}

    def prompting(self, prompt: str | None) -> None:
        with self._lock:
            self._prompt = prompt
            self._status = None

    def line(self, text: str) -> None:
        with self._lock:
            self._write(text, rewrite=False)
            self._status = None

    def status(self, key: Hashable, phase: str, text: str) -> None:
        with self._lock:
            if self.live:
                width = max(shutil.get_terminal_size().columns - 1, 20)
                self._write(text[:width], rewrite=self._status == key)
                self._status = key
            elif self._phases.get(key) != phase:
                self._phases[key] = phase
                self._write(text, rewrite=False)

    def raw(self, text: str) -> None:
        with self._lock:
            self._out.write(text)
            self._out.flush()
            self._status = None

    def _write(self, text: str, rewrite: bool) -> None:
        if self.live:
            head = "\r\x1b[K" + ("\x1b[1A\r\x1b[K" if rewrite else "")
            tail = "" if self._prompt is None else self._prompt + readline.get_line_buffer()
            self._out.write(f"{head}{text}\n{tail}")
        else:
            self._out.write(text + "\n")
        self._out.flush()


def show_notification(screen: Screen, method: str, params: Any) -> None:
    if method == "import:v2:progress" and isinstance(params, dict):
        screen.status(
            ("import", params.get("sessionId")), str(params.get("status")), import_progress_line(params)
        )
    elif method == "jobs:progress" and isinstance(params, dict):
        phase = "done" if _number(params.get("progress")) >= 100 else "running"
        screen.status(("jobs", params.get("queue"), params.get("jobId")), phase, jobs_progress_line(params))
    else:
        screen.line(f"[{method}] {compact(params)}")


# --- the sidecar, on a loop of its own ----------------------------------------------------------


class Background:
    """An event loop in its own thread: the main thread keeps the terminal, because readline and
    Ctrl-C only work there, and this loop keeps the sidecar."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="repl-loop", daemon=True)
        # Linux may hand a process's signal to any thread that does not block it, and a Python
        # handler run for another thread does not wake the main thread's read. So this thread and
        # the ones it starts (the child watcher's) block them, from their very start.
        signal.pthread_sigmask(signal.SIG_BLOCK, MAIN_THREAD_SIGNALS)
        try:
            self._thread.start()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, MAIN_THREAD_SIGNALS)

    def submit(self, coroutine: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class SidecarLink:
    """The spawned sidecar: its client, its stderr (kept, and appended to a log file if asked), and a
    watch that reports an exit nobody asked for. Runs on the background loop."""

    def __init__(self, log: IO[bytes] | None) -> None:
        self.client: SidecarClient | None = None
        self.stderr: deque[str] = deque(maxlen=STDERR_KEPT)
        self.on_exit: Callable[[int], None] | None = None
        self._log = log
        self._process: asyncio.subprocess.Process | None = None
        self._closing = False
        self._tasks: list[asyncio.Task[Any]] = []

    async def start(self, command: list[str], on_notification: Notify) -> dict[str, Any]:
        """Spawn and wait for `sidecar:ready` (its params); SidecarGone if it exits first."""
        # A session of its own: Ctrl-C in the terminal is the REPL's, not a shutdown signal for the
        # sidecar (which stops gracefully on SIGINT).
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=LINE_LIMIT,
            start_new_session=True,
            # The sidecar would inherit this thread's blocked signals; it gets a mask as the app gives it.
            preexec_fn=functools.partial(signal.pthread_sigmask, signal.SIG_UNBLOCK, MAIN_THREAD_SIGNALS),
        )
        self._process = process
        assert process.stderr is not None
        self._tasks.append(asyncio.create_task(self._drain(process.stderr), name="repl-stderr"))
        exited = asyncio.create_task(process.wait(), name="repl-sidecar-exit")
        self._tasks.append(exited)
        ready = asyncio.Event()

        def notify(method: str, params: Any) -> None:
            if method == "sidecar:ready":
                ready.set()
            else:
                on_notification(method, params)

        self.client = SidecarClient(process, notify)
        waiting = asyncio.create_task(ready.wait(), name="repl-ready")
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await asyncio.wait([waiting, exited], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        if self.client.ready is None:
            raise SidecarGone(f"the sidecar exited before it was ready (exit code {process.returncode})")
        self._tasks.append(asyncio.create_task(self._watch(exited), name="repl-watch"))
        return self.client.ready

    async def request(self, method: str, params: list[Any]) -> Any:
        if self.client is None:
            raise SidecarGone("the sidecar is not running")
        return await self.client.request(method, params)

    async def close(self) -> int | None:
        """Stop the sidecar (staged, as the client does it); its exit code, None if none started."""
        self._closing = True
        code: int | None = None
        if self.client is not None:
            code = await self.client.close()
        elif self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            code = await self._process.wait()
        drain = [task for task in self._tasks if task.get_name() == "repl-stderr"]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                await asyncio.gather(*drain, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return code

    async def _watch(self, exited: asyncio.Task[int]) -> None:
        code = await exited
        if not self._closing and self.on_exit is not None:
            self.on_exit(code)

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        # Never stop reading: a full stderr pipe would block the sidecar's logging.
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # longer than the limit; the stream skips it
                line = b"(a line too long to show)\n"
            if not line:
                return
            if self._log is not None:
                self._log.write(line)
                self._log.flush()
            self.stderr.append(line.decode("utf-8", errors="replace").rstrip("\r\n"))


# --- the loop -----------------------------------------------------------------------------------


class Repl:
    """Reads lines in the main thread and runs each call on the background loop."""

    def __init__(
        self,
        catalog: Catalog,
        screen: Screen,
        background: Background,
        link: SidecarLink,
        interactive: bool,
    ) -> None:
        self.catalog = catalog
        self.screen = screen
        self.background = background
        self.link = link
        self.interactive = interactive
        self.failed = False
        self.exited: int | None = None  # the sidecar's exit code, when it went away on its own
        self.shutdown_requested = False
        self._armed = False
        self._numbers = itertools.count(1)

    def notify(self, method: str, params: Any) -> None:
        show_notification(self.screen, method, params)

    def sidecar_exited(self, code: int) -> None:
        """From the background loop: wake the main thread wherever it waits."""
        self.exited = code
        main = threading.main_thread().ident
        assert main is not None
        signal.pthread_kill(main, signal.SIGUSR1)

    def run(self) -> int:
        """Until quit, EOF or the sidecar's exit; the REPL's exit status."""
        previous = signal.signal(signal.SIGUSR1, self._interrupt)
        self._armed = True
        try:
            self._loop()
        except SidecarExited:
            pass
        except KeyboardInterrupt:  # piped input: Ctrl-C ends the script
            return 130
        finally:
            self._armed = False
            signal.signal(signal.SIGUSR1, previous)
        if self.exited is not None:
            return self._report_exit(self.exited)
        return 1 if self.failed and not self.interactive else 0

    def _interrupt(self, signum: int, frame: FrameType | None) -> None:
        if self._armed:
            raise SidecarExited

    def _loop(self) -> None:
        while True:
            try:
                line = self._read()
            except EOFError:
                if self.interactive:
                    self.screen.raw("\n")
                return
            except KeyboardInterrupt:
                if not self.interactive:
                    raise
                self.screen.raw("^C\n")
                continue
            if line.strip() in ("quit", "exit"):
                return
            try:
                self.execute(line)
            except KeyboardInterrupt:
                if not self.interactive:
                    raise
                self.screen.raw("^C\n")

    def _read(self) -> str:
        if not self.interactive:
            line = sys.stdin.readline()
            if not line:
                raise EOFError
            return line
        self.screen.prompting(PROMPT)
        try:
            return input(PROMPT)
        finally:
            self.screen.prompting(None)

    def execute(self, line: str) -> None:
        text = line.strip()
        if not text or text.startswith("#"):
            return
        word, *more = text.split(maxsplit=1)
        rest = more[0] if more else ""
        if word == "help":
            self.screen.line(self.catalog.help(rest.strip()))
        elif word == "log":
            self.screen.line("\n".join(self.link.stderr) or "(nothing on the sidecar's stderr yet)")
        else:
            try:
                params = parse_params(rest)
            except ValueError as exc:
                self.failed = True
                self.screen.line(f"error: {exc}")
                return
            self.call(word, params)

    def call(self, method: str, params: list[Any]) -> None:
        """Wait for the answer; Ctrl-C stops waiting, and the answer prints when it comes."""
        number = next(self._numbers)
        self.shutdown_requested |= method == "sidecar:shutdown"
        future = self.background.submit(self.link.request(method, params))
        try:
            concurrent.futures.wait([future])
        except KeyboardInterrupt:
            if not self.interactive:
                raise
            # The terminal echoed ^C itself: readline is not reading now.
            self.screen.raw("\n")
            self.screen.line(f"#{number} {method} still running; its answer will print when it comes")
            future.add_done_callback(
                lambda done: self.screen.line(f"[#{number} {method}]\n{self._answer(done)}")
            )
            return
        self.screen.line(self._answer(future))

    def _answer(self, future: concurrent.futures.Future[Any]) -> str:
        error = future.exception()
        if error is None:
            return pretty(future.result())
        self.failed = True
        if isinstance(error, RemoteError):
            return format_error(error)
        return f"error: {error}"

    def _report_exit(self, code: int) -> int:
        expected = code == 0 and self.shutdown_requested
        if self.interactive:
            self.screen.raw("\r\x1b[K" if self.screen.live else "\n")
        sys.stderr.write(f"the sidecar {'stopped' if expected else 'exited'} (exit code {code})\n")
        if not expected:
            tail = list(self.link.stderr)[-STDERR_SHOWN:]
            if tail:
                sys.stderr.write("its last lines on stderr:\n" + "\n".join(tail) + "\n")
        sys.stderr.flush()
        return 0 if expected else 1


# --- readline -----------------------------------------------------------------------------------


def history_path() -> Path:
    return Path(os.environ.get(HISTORY_ENV) or Path.home() / ".au_sidecar_history")


def setup_readline(catalog: Catalog, history: Path) -> None:
    readline.set_completer(completer(catalog))
    # Method names hold `:` and `-`, which readline would otherwise treat as word breaks.
    readline.set_completer_delims(" \t\n\"'")
    if "libedit" in (readline.__doc__ or ""):
        readline.parse_and_bind("bind ^I rl_complete")
    else:
        readline.parse_and_bind("tab: complete")
    readline.set_history_length(HISTORY_LENGTH)
    with contextlib.suppress(OSError):
        readline.read_history_file(history)


def save_history(history: Path) -> None:
    try:
        history.parent.mkdir(parents=True, exist_ok=True)
        readline.write_history_file(history)
    except OSError as exc:
        sys.stderr.write(f"history not saved to {history}: {exc}\n")


def completer(catalog: Catalog) -> Callable[[str, int], str | None]:
    """Commands and methods as the first word; after `help`, methods and notifications."""

    def complete(text: str, state: int) -> str | None:
        before = readline.get_line_buffer()[: readline.get_begidx()].split()
        if not before:
            names = [*COMMANDS, *catalog.methods]
        elif before == ["help"]:
            names = [*catalog.methods, *catalog.notifications]
        else:
            names = []
        matches = [name for name in names if name.startswith(text)]
        if state >= len(matches):
            return None
        return matches[state] + " " if len(matches) == 1 else matches[state]

    return complete


# --- entry --------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    options = parse(argv)
    interactive = sys.stdin.isatty()
    screen = Screen(sys.stdout, live=sys.stdout.isatty())
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(options.log.open("ab")) if options.log else None
        background = Background()
        link = SidecarLink(log)
        repl = Repl(Catalog.load(), screen, background, link, interactive)
        link.on_exit = repl.sidecar_exited
        try:
            return session(repl, options.command, history_path() if interactive else None)
        finally:
            code = _uninterrupted(background.submit(link.close()))
            background.stop()
            if code and repl.exited is None:
                sys.stderr.write(f"the sidecar exited with code {code} while stopping\n")
    raise AssertionError("unreachable")


def session(repl: Repl, command: list[str], history: Path | None) -> int:
    """Start the sidecar, then run the REPL on it; the exit status."""
    starting = repl.background.submit(repl.link.start(command, repl.notify))
    try:
        ready = starting.result()
    except KeyboardInterrupt:
        starting.cancel()
        return 130
    except (SidecarGone, TimeoutError, OSError) as exc:
        reason = "no sidecar:ready in time" if isinstance(exc, TimeoutError) else str(exc)
        sys.stderr.write(f"could not start {' '.join(command)}: {reason}\n")
        sys.stderr.write("".join(f"{line}\n" for line in list(repl.link.stderr)[-STDERR_SHOWN:]))
        return 1
    if history is None:
        return repl.run()
    setup_readline(repl.catalog, history)
    repl.screen.line(
        f"au-sidecar {ready.get('version')} (protocol {ready.get('protocolVersion')}, pid {ready.get('pid')})"
        " — `help` lists the methods, TAB completes, Ctrl-D quits"
    )
    try:
        return repl.run()
    finally:
        save_history(history)


def _uninterrupted(future: concurrent.futures.Future[_T]) -> _T:
    """The future's result; Ctrl-C meanwhile is ignored (starting and stopping are bounded)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return future.result()
    finally:
        signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
