"""Fixtures for handler tests: a real SQLite file with the app's tables and one location, the real
tools as `scripts/setup` installs them, an event recorder that checks every payload against
`protocol/`, the jobs' threads, and a JobContext maker."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.config import ToolPaths
from sidecar.db.connection import Database
from sidecar.jobs.handlers import JobContext
from sidecar.jobs.store import Queue
from sidecar.jobs.threads import JobThreads
from sidecar.tools.discovery import Toolset, discover
from tests.support.archive import LocationFixture, add_location
from tests.support.jobs import ContextMaker, RecordedEvents


@pytest.fixture
def location(db: Database, db_path: Path) -> LocationFixture:
    return add_location(db_path)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    root.mkdir()
    return root


@pytest.fixture(scope="session")
def toolset() -> Toolset:
    tools = asyncio.run(discover(ToolPaths(exiftool=None, ffprobe=None, ffmpeg=None)))
    assert tools.exiftool and tools.ffprobe and tools.ffmpeg, "scripts/setup installs all three"
    return tools


@pytest.fixture
def events() -> RecordedEvents:
    return RecordedEvents()


@pytest.fixture
async def threads() -> AsyncIterator[JobThreads]:
    job_threads = JobThreads(2)
    yield job_threads
    await job_threads.close()


@pytest.fixture
def make_context(
    db: Database, toolset: Toolset, archive: Path, events: RecordedEvents, threads: JobThreads
) -> ContextMaker:
    def make(
        queue: Queue, payload: dict[str, Any], *, tools: Toolset | None = None, attempt: int = 1
    ) -> JobContext:
        return JobContext(
            job_id=f"test-{queue.value}",
            queue=queue,
            payload=payload,
            attempt=attempt,
            db=db,
            tools=toolset if tools is None else tools,
            archive_root=str(archive),
            events=events,
            threads=threads,
        )

    return make
