"""The order of the orchestrator's last writes, in process: a SIGKILL can land between any two of
them, so what the session's status says must already be true on disk when it is written."""

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from sidecar import fs
from sidecar.db.connection import Database
from sidecar.db.settings import ArchiveRoot
from sidecar.jobs.planning import ImportJobs
from sidecar.pipeline.bytepool import BytePool
from sidecar.pipeline.orchestrator import ImportOrchestrator, ImportRequest
from sidecar.pipeline.outcome import ImportOutcome, ProgressSnapshot
from sidecar.pipeline.status import ImportStatus
from tests.support.archive import add_location, rows, write


class Events:
    def progress(self, snapshot: ProgressSnapshot) -> None:
        pass

    def completed(self, outcome: ImportOutcome) -> None:
        pass


async def test_an_import_is_marked_completed_only_once_its_leftovers_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A completed session is never resumed: were its status written first, a kill before the
    cleanup would leave a killed copy's temp files (or a copy that failed validation, without its
    row) in the archive for good."""
    db_path, archive = tmp_path / "au-archive.db", tmp_path / "archive"
    archive.mkdir()
    db = await Database.open(db_path)
    location = add_location(db_path)
    status_at_cleanup: list[str] = []
    sweep = fs.sweep_temps

    def sweep_noting_the_status(folders: Any) -> int:
        [(status,)] = rows(db_path, "SELECT status FROM import_sessions")
        status_at_cleanup.append(status)
        return sweep(folders)

    monkeypatch.setattr(fs, "sweep_temps", sweep_noting_the_status)
    pool = BytePool(1)
    imports = ImportOrchestrator(db, pool, Events(), ImportJobs(), ArchiveRoot(db, archive))
    runner = asyncio.create_task(imports.run(), name="imports")
    try:
        await pool.start()
        source = write(tmp_path / "src" / "a.jpg", 100)
        outcome = await imports.start(ImportRequest((str(source),), location.locid))
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await pool.close()
        await db.close()
    assert outcome.status is ImportStatus.COMPLETED
    assert status_at_cleanup == ["finalizing"]
