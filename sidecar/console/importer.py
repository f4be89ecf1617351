"""`au-sidecar import PATH... --archive DIR [--db FILE] [--location NAME]`: a real import through
the protocol, as the app runs one. It spawns a sidecar, shows the import's progress on one line,
then waits for the background jobs with their own progress, and prints what happened.

Ctrl-C cancels the import (the sidecar removes what it had copied); during the jobs it stops
waiting, and the jobs carry on at the sidecar's next start.
"""

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sidecar.console.client import SidecarClient, own_command
from sidecar.console.locations import Location, find_or_create
from sidecar.console.originals import source_paths

JOBS_REFRESH_S = 0.25
ERRORS_SHOWN = 20
BAR_WIDTH = 24
UNFINISHED = ("pending", "processing")


@dataclass
class Tally:
    """What the sidecar announced while we watched."""

    progress: dict[str, Any] | None = None
    step_began: tuple[str, float, int] | None = None  # step, when we first saw it, its bytes then
    thumbnails: int = 0
    metadata: int = 0
    proxies: int = 0
    dead: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def receive(self, method: str, params: Any) -> None:
        if method == "import:v2:progress":
            self.progress = params
            if self.step_began is None or self.step_began[0] != params["status"]:
                self.step_began = (params["status"], time.monotonic(), params["bytesProcessed"])
        elif method == "asset:thumbnail-ready":
            self.thumbnails += 1
        elif method == "asset:metadata-complete":
            self.metadata += 1
        elif method == "asset:proxy-ready":
            self.proxies += 1
        elif method == "jobs:deadLetter":
            self.dead.append(params)
        self.changed.set()

    def bytes_per_s(self) -> float | None:
        """This step's rate so far (each step reads or writes the bytes once)."""
        if self.progress is None or self.step_began is None:
            return None
        _, began, base = self.step_began
        elapsed = time.monotonic() - began
        return (self.progress["bytesProcessed"] - base) / elapsed if elapsed > 0.5 else None


class Screen:
    """One status line rewritten in place on a terminal; on a pipe, the last status of each step."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._live = out.isatty()
        self._key = ""
        self._held: str | None = None  # a pipe's latest status, written when its step ends

    def status(self, text: str, key: str) -> None:
        if self._live:
            self._out.write("\r\x1b[K" + text)
            self._out.flush()
        else:
            if key != self._key:
                self._release()
            self._held = text
        self._key = key

    def line(self, text: str = "") -> None:
        if self._live and self._key:
            self._out.write("\r\x1b[K")
        self._release()
        self._out.write(text + "\n")
        self._out.flush()
        self._key = ""

    def _release(self) -> None:
        if self._held is not None:
            self._out.write(self._held + "\n")
            self._held = None


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="au-sidecar import", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="files or folders to import")
    parser.add_argument("--archive", type=Path, required=True, help="the archive root")
    parser.add_argument("--db", type=Path, help="SQLite file (default: the sidecar's default database)")
    parser.add_argument(
        "--location", help="location to import into, created when missing (default: the first folder's name)"
    )
    parser.add_argument("--no-wait", action="store_true", help="do not wait for the background jobs")
    parser.add_argument(
        "--log", type=Path, help="write the sidecar's log here (default: beside the database)"
    )
    return parser.parse_args(argv)


def main(argv: list[str], out: IO[str] = sys.stdout) -> int:
    return asyncio.run(run(parse(argv), out))


async def run(args: argparse.Namespace, out: IO[str]) -> int:
    screen = Screen(out)
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        screen.line(f"error: not found: {', '.join(missing)}")
        return 2
    args.archive.mkdir(parents=True, exist_ok=True)
    tally = Tally()
    command = [*own_command(), "serve", "--archive", str(args.archive.absolute())]
    if args.db is not None:
        command += ["--db", str(args.db.absolute())]
    with open_log(args) as log, interrupts() as interrupted:
        client = await SidecarClient.spawn(command, on_notification=tally.receive, stderr=log)
        try:
            return await session(client, args, tally, screen, interrupted)
        finally:
            await client.close()


@contextlib.contextmanager
def open_log(args: argparse.Namespace) -> Any:
    path = args.log or (args.db.absolute().with_suffix(".sidecar.log") if args.db else None)
    if path is None:
        yield asyncio.subprocess.DEVNULL
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as log:
        yield log


async def session(
    client: SidecarClient, args: argparse.Namespace, tally: Tally, screen: Screen, interrupted: asyncio.Event
) -> int:
    info = await client.request("sidecar:info")
    location = find_or_create(Path(info["dbPath"]), args.location or default_location(args.paths))
    screen.line(
        f"{'Created' if location.created else 'Importing into'} location “{location.name}” ({location.loc12})"
    )
    missing_tools = [name for name, tool in info["tools"].items() if tool is None]
    if missing_tools:
        screen.line(f"warning: {', '.join(missing_tools)} not found: their jobs will fail")
    if interrupted.is_set():
        screen.line("Interrupted before the import started.")
        return 130
    result = await import_with_progress(client, location, args.paths, tally, screen, interrupted)
    print_import(result, screen)
    if result["status"] == "cancelled":
        return 130
    if result["status"] != "completed":
        return 1
    if not args.no_wait and result.get("finalizationResult", {}).get("jobsQueued"):
        interrupted.clear()  # a new Ctrl-C only stops the waiting
        await wait_for_jobs(client, tally, screen, interrupted)
    print_jobs(tally, screen, Path(info["dbPath"]))
    screen.line(f"Archive: {info['archivePath']}\nDatabase: {info['dbPath']}")
    return 0


def default_location(paths: list[Path]) -> str:
    first = paths[0].absolute()
    return (first if first.is_dir() else first.parent).name or "Imported"


async def import_with_progress(
    client: SidecarClient,
    location: Location,
    paths: list[Path],
    tally: Tally,
    screen: Screen,
    interrupted: asyncio.Event,
) -> dict[str, Any]:
    """The import's result, showing its progress meanwhile. Ctrl-C asks the sidecar to cancel it
    (as soon as its session is known); the result then says `cancelled`."""
    start = asyncio.create_task(
        client.request("import:v2:start", [location.start_params([str(p.absolute()) for p in paths])])
    )
    cancel: asyncio.Task[Any] | None = None
    while True:
        tally.changed.clear()
        if tally.progress is not None:
            screen.status(progress_line(tally.progress, tally.bytes_per_s()), tally.progress["status"])
            if interrupted.is_set() and cancel is None and not start.done():
                screen.line("Cancelling…")
                cancel = asyncio.create_task(
                    client.request("import:v2:cancel", [tally.progress["sessionId"]])
                )
        if start.done():
            break  # with its last progress shown: the final one is sent before the result
        await first_of(start, tally.changed.wait(), *([] if interrupted.is_set() else [interrupted.wait()]))
    result: dict[str, Any] = start.result()
    return result


@contextlib.contextmanager
def interrupts() -> Iterator[asyncio.Event]:
    """An event set by Ctrl-C while in this block (instead of KeyboardInterrupt)."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, event.set)
    except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C ends the command as usual
        yield event
        return
    try:
        yield event
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def progress_line(p: dict[str, Any], bytes_per_s: float | None) -> str:
    filled = round(BAR_WIDTH * p["percent"] / 100)
    parts = [
        f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {p['percent']:5.1f}%",
        f"{p['status']:<10}",
        f"{p['filesProcessed']}/{p['filesTotal']} files",
        f"{human_bytes(p['bytesProcessed'])}/{human_bytes(p['bytesTotal'])}",
    ]
    if bytes_per_s:
        parts.append(f"{human_bytes(bytes_per_s)}/s")
    if p["estimatedRemainingMs"] > 0:
        parts.append(f"ETA {clock(p['estimatedRemainingMs'] / 1000)}")
    if p["duplicatesFound"]:
        parts.append(f"{p['duplicatesFound']} dup")
    if p["errorsFound"]:
        parts.append(f"{p['errorsFound']} err")
    return "  ".join(parts)


async def wait_for_jobs(client: SidecarClient, tally: Tally, screen: Screen, stop: asyncio.Event) -> None:
    """Until no job is pending or processing, showing how many are left; Ctrl-C stops waiting."""
    total = 0
    while not stop.is_set():
        status = await client.request("jobs:status")
        left = {queue: sum(counts[s] for s in UNFINISHED) for queue, counts in status.items()}
        remaining = sum(left.values())
        total = max(total, remaining)
        if remaining == 0:
            screen.line("Background jobs: all done")
            return
        busy = ", ".join(f"{queue} {n}" for queue, n in left.items() if n)
        screen.status(f"Background jobs: {total - remaining}/{total} done ({busy} left)", "jobs")
        tally.changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(JOBS_REFRESH_S):
                await first_of(tally.changed.wait(), stop.wait())
    screen.line("Stopped waiting; the remaining jobs run at the sidecar's next start.")


async def first_of(*waits: Any) -> None:
    """Until the first of these ends; the others are cancelled (a task given is left running)."""
    tasks = [w if isinstance(w, asyncio.Future) else asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task, wait in zip(tasks, waits, strict=True):
            if task is not wait:
                task.cancel()


def print_import(result: dict[str, Any], screen: Screen) -> None:
    scan = result.get("scanResult") or {}
    final = result.get("finalizationResult") or {}
    duplicates = (result.get("hashResult") or {}).get("totalDuplicates", 0)
    skipped = scan.get("skipped", 0)
    errors = result.get("totalErrors", len(result["errors"]))
    sidecars = final.get("totalSidecars", 0)
    screen.line(
        f"Import {result['status']} in {result['totalDurationMs'] / 1000:.1f} s: "
        f"{final.get('totalFinalized', 0)} imported, {duplicates} duplicates, "
        f"{skipped} skipped, {errors} errors"
        + (f"; {sidecars} sidecar files archived with their media" if sidecars else "")
    )
    if result.get("error"):
        screen.line(f"  {result['error']}")
    if skipped:
        screen.line(f"Skipped ({skipped}):")
        for line in skip_lines(result["skipped"], skipped):
            screen.line("  " + line)
    if errors:
        screen.line(f"Errors ({errors}):")
        listed = [f"{e['step']}: {e['path']}: {e['message']}" for e in result["errors"]]
        for line in first_of_many(listed, errors):
            screen.line("  " + line)


def skip_lines(listed: list[dict[str, str]], total: int) -> list[str]:
    """The first paths with their reasons; when not all fit, how many had each reason first."""
    paths = first_of_many([f"{s['path']}: {s['reason']}" for s in listed], total)
    if total <= ERRORS_SHOWN:
        return paths
    among = f" (of the first {len(listed)})" if total > len(listed) else ""
    reasons = Counter(s["reason"] for s in listed).most_common()
    return [f"{n} × {reason}{among}" for reason, n in reasons] + paths


def first_of_many(lines: list[str], total: int) -> list[str]:
    """The first ERRORS_SHOWN lines, and how many of `total` were not shown."""
    shown = lines[:ERRORS_SHOWN]
    return shown + ([f"… and {total - len(shown)} more"] if total > len(shown) else [])


def print_jobs(tally: Tally, screen: Screen, db_path: Path) -> None:
    screen.line(f"Metadata: {tally.metadata}  Thumbnails: {tally.thumbnails}  Video proxies: {tally.proxies}")
    if not tally.dead:
        return
    sources = source_paths(db_path, (d["payload"]["hash"] for d in tally.dead if "hash" in d["payload"]))
    screen.line(f"Failed background jobs ({len(tally.dead)}):")
    for line in first_of_many([failed_job_line(d, sources) for d in tally.dead], len(tally.dead)):
        screen.line("  " + line)


def failed_job_line(entry: dict[str, Any], sources: dict[str, str]) -> str:
    """A dead job, named by the file the user gave (else the archive's copy, else its location)."""
    payload = entry["payload"]
    subject = (
        sources.get(payload.get("hash", ""))
        or payload.get("archivePath")
        or f"location {payload.get('locid')}"
    )
    return f"{entry['queue']}: {subject}: {entry['error']}"


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


def clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
