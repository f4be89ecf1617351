"""`import:v2:*`: params already checked against protocol/; the orchestrator does the work."""

from typing import Any

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

    def _imports(self) -> ImportOrchestrator:
        if self._orchestrator is None:
            raise self._unavailable or SidecarError()
        return self._orchestrator

    async def start(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._imports().start(params)

    async def cancel(self, session_id: str) -> dict[str, Any]:
        return await self._imports().cancel(session_id)

    async def status(self) -> dict[str, Any]:
        return self._imports().status()

    async def resumable(self) -> list[dict[str, Any]]:
        return await self._imports().resumable()

    async def resume(self, session_id: str) -> dict[str, Any]:
        return await self._imports().resume(session_id)
