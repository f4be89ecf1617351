"""`import:v2:*`: params already checked against protocol/; the orchestrator does the work."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sidecar.api.refusals import database_refusals
from sidecar.errors import SidecarError
from sidecar.pipeline.orchestrator import ImportOrchestrator
from sidecar.rpc.dispatcher import Handler


class ImportApi:
    def __init__(self, orchestrator: ImportOrchestrator | None, unavailable: SidecarError | None) -> None:
        # Without a usable database every import method answers with the reason (e.g. schema too old).
        self._orchestrator = orchestrator
        self._unavailable = unavailable

    def handlers(self) -> dict[str, Handler]:
        return {
            "import:v2:start": self.start,
            "import:v2:cancel": self.cancel,
            "import:v2:status": self.status,
            "import:v2:resumable": self.resumable,
            "import:v2:resume": self.resume,
        }

    @contextmanager
    def _imports(self) -> Iterator[ImportOrchestrator]:
        """The orchestrator, with the database locked too long or full reported as such."""
        if self._orchestrator is None:
            raise self._unavailable or SidecarError()
        with database_refusals(self._orchestrator.db_path):
            yield self._orchestrator

    async def start(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._imports() as imports:
            return await imports.start(params)

    async def cancel(self, session_id: str) -> dict[str, Any]:
        with self._imports() as imports:
            return await imports.cancel(session_id)

    async def status(self) -> dict[str, Any]:
        with self._imports() as imports:
            return imports.status()

    async def resumable(self) -> list[dict[str, Any]]:
        with self._imports() as imports:
            return await imports.resumable()

    async def resume(self, session_id: str) -> dict[str, Any]:
        with self._imports() as imports:
            return await imports.resume(session_id)
