"""Run-time configuration: what `au-sidecar serve` was told, and the defaults it falls back to."""

from dataclasses import dataclass
from pathlib import Path

from sidecar import host

DB_FILE_NAME = "au-archive.db"


@dataclass(frozen=True, slots=True)
class ToolPaths:
    """Paths given on the command line; None means "look on PATH"."""

    exiftool: str | None = None
    ffprobe: str | None = None
    ffmpeg: str | None = None


@dataclass(frozen=True, slots=True)
class Config:
    db_path: Path
    archive_override: Path | None = None
    hash_workers: int | None = None
    tools: ToolPaths = ToolPaths()
    allow_hardlinks: bool = False
    read_once: str = "auto"  # auto | always | never: see pipeline/sources.py
    page_files: int | None = None  # files per page of an import step (default: pipeline/context.py)
    log_level: str = "info"


def user_data_dir() -> Path:
    """The platform's per-user application-data folder, as Electron's `app.getPath('appData')`."""
    return host.current().user_data_dir()


def default_db_path() -> Path:
    return user_data_dir() / DB_FILE_NAME
