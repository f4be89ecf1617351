"""`au-sidecar repl` in a pseudo-terminal against the real sidecar: completion, calls, errors,
notifications (progress rewritten in place), Ctrl-C, history, Ctrl-D and a sidecar that dies; then
piped input for scripting."""

import io
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest

from sidecar.console.repl import PROMPT, Screen, parse, parse_params, show_notification
from tests.support.archive import add_location, write

REPO = Path(__file__).resolve().parents[2]
REPL = [sys.executable, "-m", "sidecar.console.repl"]

# A stand-in sidecar for what the real one cannot do on cue: `slow` is answered only at `release`,
# and `later` is followed by a notification a moment after its answer (so it arrives at the prompt).
FAKE_SIDECAR = """
import json, sys, threading
lock = threading.Lock()
def send(message):
    with lock:
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", **message}) + "\\n")
        sys.stdout.flush()
send({"method": "sidecar:ready", "params": {"version": "fake", "protocolVersion": "1.0.0", "pid": 0}})
held = []
for line in sys.stdin:
    request = json.loads(line)
    method, number = request["method"], request["id"]
    if method == "slow":
        held.append(number)
        send({"method": "test:waiting", "params": {"id": number}})
        continue
    if method == "release":
        for waiting in held:
            send({"id": waiting, "result": "slow done"})
    if method == "later":
        event = {"method": "asset:proxy-ready", "params": {"hash": "0123456789abcdef", "proxyPath": "/p"}}
        threading.Timer(0.3, send, [event]).start()
    send({"id": number, "result": {"echo": method}})
    if method == "sidecar:shutdown":
        break
"""


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Callable[..., pexpect.spawn]]:
    """Starts the REPL in a pseudo-terminal; what it showed is kept in terminal.log for failures."""
    env = {
        **os.environ,
        "AU_SIDECAR_HISTORY": str(tmp_path / "history"),
        "INPUTRC": "/dev/null",
        "TERM": "xterm",
    }
    children: list[pexpect.spawn] = []
    with (tmp_path / "terminal.log").open("w") as log:

        def start(*args: str) -> pexpect.spawn:
            child = pexpect.spawn(
                REPL[0],
                [*REPL[1:], *args],
                cwd=REPO,
                env=env,
                encoding="utf-8",
                timeout=20,
                dimensions=(40, 200),
            )
            children.append(child)
            child.logfile_read = log
            child.expect_exact(PROMPT)
            return child

        yield start
        for child in children:
            child.close(force=True)


def serve_args(tmp_path: Path) -> list[str]:
    (tmp_path / "archive").mkdir(exist_ok=True)
    return ["--db", str(tmp_path / "a.db"), "--archive", str(tmp_path / "archive")]


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_session_in_a_terminal(tmp_path: Path, terminal: Callable[..., pexpect.spawn]) -> None:
    db = tmp_path / "a.db"
    child = terminal(*serve_args(tmp_path))

    child.sendline("sidecar:info")
    child.expect(r'"pid": (\d+)')
    pid = int(child.match.group(1))
    child.expect_exact(f'"dbPath": "{db}"')
    child.expect_exact(PROMPT)

    child.send("jobs:st\t")
    child.expect_exact("atus")
    child.sendline("")
    child.expect_exact('"pending"')
    child.expect_exact(PROMPT)

    child.sendline("import:v2:cancel [1,2]")
    child.expect_exact("error -32602: Invalid params")
    child.expect_exact("/0: 1 is not of type 'string'")
    child.expect_exact(PROMPT)

    # Ctrl-C clears the line being typed and keeps the REPL (and the sidecar) going.
    child.send("garbage")
    child.expect_exact("garbage")  # read by readline: a ^C before that flushes it unread
    child.sendintr()
    child.expect_exact("^C")
    child.sendline("import:v2:status")
    child.expect_exact('"status": "idle"')
    child.expect_exact(PROMPT)

    location = add_location(db)
    source = tmp_path / "card"
    write(source / "permit.pdf", 10_000)
    write(source / "route.pdf", 20_000)
    child.sendline(f"import:v2:start {json.dumps(location.start_params(source)[0])}")
    child.expect(r"\[import:v2:complete\] .*\"status\": \"completed\"")
    progress = child.before
    assert "files 2/2" in progress
    # One line for the whole import, rewritten in place (cursor up, clear), not one per event.
    assert "\x1b[1A\r\x1b[K[import:v2:progress]" in progress
    child.expect_exact('"totalFiles": 2')
    child.expect_exact(PROMPT)

    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert not running(pid)
    assert processes_mentioning(str(db)) == []
    history = [line.strip() for line in (tmp_path / "history").read_text().splitlines()]
    assert {"sidecar:info", "jobs:status", "import:v2:cancel [1,2]", "import:v2:status"} <= set(history)
    assert "garbage" not in history


def test_a_sidecar_that_dies_ends_the_repl_with_an_error(
    tmp_path: Path, terminal: Callable[..., pexpect.spawn]
) -> None:
    child = terminal(*serve_args(tmp_path))
    child.sendline("sidecar:info")
    child.expect(r'"pid": (\d+)')
    pid = int(child.match.group(1))
    child.expect_exact(PROMPT)
    child.send("half a line")
    os.kill(pid, signal.SIGKILL)
    child.expect_exact(f"the sidecar exited (exit code {-signal.SIGKILL})")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1


def test_notifications_keep_the_line_being_typed_and_ctrl_c_detaches_a_call(
    tmp_path: Path, terminal: Callable[..., pexpect.spawn]
) -> None:
    fake = tmp_path / "fake_sidecar.py"
    fake.write_text(FAKE_SIDECAR)
    child = terminal("--", sys.executable, str(fake))

    child.sendline("later")
    child.expect_exact('"echo": "later"')
    child.expect_exact(PROMPT)
    child.send("sidecar:")
    child.expect_exact('[asset:proxy-ready] {"hash": "0123456789abcdef"')
    child.expect_exact(f"{PROMPT}sidecar:")  # drawn again below the notification, with what was typed
    child.sendline("info")
    child.expect_exact('"echo": "sidecar:info"')  # the line was not mangled
    child.expect_exact(PROMPT)

    child.sendline("slow")
    child.expect_exact('[test:waiting] {"id": 3}')  # Ctrl-C before that would only clear the line
    child.sendintr()
    child.expect_exact("#3 slow still running")
    child.expect_exact(PROMPT)
    child.sendline("release")
    child.expect_exact("[#3 slow]")
    child.expect_exact('"slow done"')
    child.expect_exact('"echo": "release"')
    child.expect_exact(PROMPT)

    child.sendline("quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_without_a_terminal_progress_is_written_once_per_step() -> None:
    out = io.StringIO()
    screen = Screen(out, live=False)
    for status, files in (("hashing", 0), ("hashing", 1), ("copying", 1), ("copying", 2)):
        progress = {
            "sessionId": "s1",
            "status": status,
            "percent": 50,
            "filesProcessed": files,
            "filesTotal": 2,
        }
        show_notification(screen, "import:v2:progress", progress)
    show_notification(screen, "jobs:progress", {"queue": "video-proxy", "jobId": 7, "progress": 40})
    show_notification(screen, "jobs:progress", {"queue": "video-proxy", "jobId": 7, "progress": 100})
    lines = out.getvalue().splitlines()
    assert [line.split("  ")[1] for line in lines[:2]] == ["hashing", "copying"]
    assert lines[2:] == ["[jobs:progress] video-proxy #7  40%", "[jobs:progress] video-proxy #7  100%"]


def test_piped_commands_to_a_given_command(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    command = [sys.executable, "-m", "sidecar", "serve", "--db", str(db), "--archive", str(tmp_path)]
    script = "help import:v2:start\nhelp jobs:de\n# a comment\nsidecar:info\nimport:v2:cancel [1,2]\n"
    done = subprocess.run(
        [*REPL, "--", *command], input=script, capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert "import:v2:start [{paths, locid, loc12?, address_state?, type?, slocnam?, category?" in done.stdout
    assert "matching: jobs:deadLetter, jobs:deadLetter" in done.stdout  # the method and the event
    assert f'"dbPath": "{db}"' in done.stdout
    assert "error -32602: Invalid params" in done.stdout
    assert "\x1b[" not in done.stdout and PROMPT not in done.stdout
    assert done.returncode == 1, done.stderr  # a call failed


def test_a_command_that_never_gets_ready_is_reported(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *REPL,
            "--",
            sys.executable,
            "-c",
            "import sys; sys.stderr.write('no luck\\n'); raise SystemExit(3)",
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 1
    assert re.search(r"could not start .*exit code 3", done.stderr)
    assert "no luck" in done.stderr


def test_params_and_arguments() -> None:
    assert parse_params("") == []
    assert parse_params(' ["a", null] ') == ["a", None]
    assert parse_params('{"deadLetterId": 1}') == [{"deadLetterId": 1}]
    assert parse_params('"id"') == ["id"]
    with pytest.raises(ValueError, match="not JSON"):
        parse_params("[1,")
    assert parse(["--", "x", "serve", "--db", "y"]).command == ["x", "serve", "--db", "y"]
    own = parse(["--db", "rel.db"]).command
    assert own[-3:] == ["serve", "--db", str(Path("rel.db").absolute())]
    with pytest.raises(SystemExit):
        parse(["--db", "a.db", "--", "x"])
