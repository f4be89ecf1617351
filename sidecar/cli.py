"""Command line: `au-sidecar serve|import|repl`. Parses options, then hands over; no logic here."""

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from sidecar import __version__, host
from sidecar.config import Config, ToolPaths, default_db_path


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="au-sidecar", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="speak JSON-RPC 2.0 on stdin/stdout (what the app runs)")
    serve.add_argument("--db", type=Path, help=f"SQLite file (default: {default_db_path()})")
    serve.add_argument(
        "--archive", type=Path, help="archive root (default: the app's archive_folder setting)"
    )
    serve.add_argument("--hash-workers", type=_positive_int, help="processes for hashing and copying")
    serve.add_argument("--exiftool", help="path to exiftool (default: PATH)")
    serve.add_argument("--ffprobe", help="path to ffprobe (default: PATH)")
    serve.add_argument("--ffmpeg", help="path to ffmpeg (default: PATH)")
    serve.add_argument(
        "--allow-hardlinks",
        action="store_true",
        help="hard-link instead of copying on the same filesystem",
    )
    serve.add_argument(
        "--read-once",
        default="auto",
        choices=["auto", "always", "never"],
        help="hash while staging the copy, one read per file (auto: sources on another filesystem)",
    )
    serve.add_argument(
        "--page-files",
        type=_positive_int,
        help="files per page of an import step, the unit of commit and of stopping (default 2048)",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    # Listed here for --help; they parse their own options (`au-sidecar import --help`).
    commands.add_parser("import", help="import files into an archive through a sidecar, with progress")
    commands.add_parser("repl", help="call the sidecar's methods interactively and watch its events")
    return parser


def _config(args: argparse.Namespace) -> Config:
    return Config(
        db_path=(args.db or default_db_path()).absolute(),
        archive_override=args.archive.absolute() if args.archive else None,
        hash_workers=args.hash_workers,
        tools=ToolPaths(exiftool=args.exiftool, ffprobe=args.ffprobe, ffmpeg=args.ffmpeg),
        allow_hardlinks=args.allow_hardlinks,
        read_once=args.read_once,
        page_files=args.page_files,
        log_level=args.log_level,
    )


def _serve(config: Config) -> int:
    # Logging first: it makes fd 2 a pipe logged as JSON lines (writing nothing to fd 1), so that
    # claim_stdio, pointing fd 1 at fd 2, leads stray writes to fd 1 there too. Then claim stdio
    # before anything else can write to fd 1.
    from sidecar import log

    log.configure(config.log_level, capture_native=True)
    from sidecar.rpc.stdio import claim_stdio

    streams = claim_stdio()
    from sidecar.app import Sidecar

    return asyncio.run(Sidecar(config).run(streams))


def _tool(argv: list[str]) -> int | None:
    """Run `import` or `repl` with the rest of the arguments; None for anything else."""
    if argv[:1] == ["import"]:
        from sidecar.console import importer

        return importer.main(argv[1:])
    if argv[:1] == ["repl"]:
        if sys.platform == "win32":
            sys.exit("au-sidecar repl needs POSIX signals and readline: not available on Windows")
        from sidecar.console import repl

        return repl.main(argv[1:])
    return None


def main(argv: Sequence[str] | None = None) -> int:
    try:
        host.current()  # a bad AUS_PLATFORM stops here, before anything else runs
    except ValueError as exc:
        sys.exit(f"au-sidecar: {exc}")
    arguments = list(sys.argv[1:] if argv is None else argv)
    code = _tool(arguments)
    if code is not None:
        return code
    args = _parser().parse_args(arguments)
    if args.command == "serve":
        return _serve(_config(args))
    raise AssertionError(f"unhandled command {args.command}")
