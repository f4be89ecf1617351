"""`sidecar:info` and `sidecar:shutdown`: who this process is and how to stop it."""

import os
import platform
from collections.abc import Awaitable, Callable
from typing import Any

from sidecar import PROTOCOL_VERSION, __version__
from sidecar.config import Config
from sidecar.db import settings
from sidecar.db.connection import Database
from sidecar.jobs.coexistence import WorkerWatch
from sidecar.rpc.dispatcher import Handler
from sidecar.tools.discovery import Tool, Toolset


def _tool(tool: Tool | None) -> dict[str, str] | None:
    return None if tool is None else {"path": tool.path, "version": tool.version}


class SidecarApi:
    def __init__(
        self,
        config: Config,
        db: Database | None,
        hash_workers: int,
        tools: Callable[[], Awaitable[Toolset]],
        request_shutdown: Callable[[], None],
        job_workers: WorkerWatch | None = None,
    ) -> None:
        self._job_workers = job_workers
        self._config = config
        self._db = db
        self._hash_workers = hash_workers
        self._tools = tools
        self._request_shutdown = request_shutdown

    def handlers(self) -> dict[str, Handler]:
        return {"sidecar:info": self.info, "sidecar:shutdown": self.shutdown}

    async def info(self) -> dict[str, Any]:
        tools = await self._tools()
        info: dict[str, Any] = {
            "name": "au-sidecar",
            "version": __version__,
            "protocolVersion": PROTOCOL_VERSION,
            "pid": os.getpid(),
            "python": platform.python_version(),
            "dbPath": str(self._config.db_path),
            "archivePath": await settings.ArchiveRoot(self._db, self._config.archive_override)(),
            "hashWorkers": self._hash_workers,
            "tools": {
                "exiftool": _tool(tools.exiftool),
                "ffprobe": _tool(tools.ffprobe),
                "ffmpeg": _tool(tools.ffmpeg),
            },
        }
        if self._job_workers is not None:
            info["jobWorkers"] = {
                "self": self._job_workers.worker_id,
                "others": [
                    {"lockedBy": o.locked_by, "lastSeenAt": o.last_seen_at, "how": o.how}
                    for o in self._job_workers.others
                ],
            }
        return info

    async def shutdown(self) -> dict[str, bool]:
        self._request_shutdown()
        return {"ok": True}
