"""The composition root: builds every service once and runs the process lifecycle.

Lifecycle: claim stdio → open the database → serve → `sidecar:ready` … until stdin EOF, a signal,
`sidecar:shutdown` or a vanished reader → refuse new work, finish what runs, flush, exit 0.
"""

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from sidecar import PROTOCOL_VERSION, __version__, host
from sidecar.api.imports import ImportApi, ImportNotifier
from sidecar.api.jobs import JobNotifier, JobsApi
from sidecar.api.sidecar import SidecarApi
from sidecar.config import Config
from sidecar.db import settings
from sidecar.db.connection import Database
from sidecar.errors import ShuttingDown, SidecarError
from sidecar.jobs.handlers import JobHandler
from sidecar.jobs.handlers.bagit import bagit
from sidecar.jobs.handlers.exiftool import exiftool_handler
from sidecar.jobs.handlers.ffprobe import ffprobe
from sidecar.jobs.handlers.gps_enrichment import gps_enrichment
from sidecar.jobs.handlers.live_photo import live_photo
from sidecar.jobs.handlers.location_stats import location_stats
from sidecar.jobs.handlers.thumbnail import thumbnail_handler
from sidecar.jobs.handlers.video_proxy import video_proxy
from sidecar.jobs.planning import ImportJobs
from sidecar.jobs.scheduler import CONCURRENCY, JobScheduler
from sidecar.jobs.store import JobStore, Queue
from sidecar.log import get_logger
from sidecar.pipeline import failpoints
from sidecar.pipeline.bytepool import BytePool
from sidecar.pipeline.context import PAGE_FILES
from sidecar.pipeline.orchestrator import ImportOrchestrator
from sidecar.pipeline.sources import ReadOnce
from sidecar.rpc.contract import Contract
from sidecar.rpc.dispatcher import Dispatcher, Handler
from sidecar.rpc.server import JsonRpcServer
from sidecar.rpc.stdio import ProtocolStreams
from sidecar.tools.discovery import Toolset, discover
from sidecar.tools.exiftool import ExifToolPool

# Total budget from "stop" to exit is 10 s (SPEC §3.2).
# The orchestrator stops the running import first (up to ~5 s); requests then get what is left.
REQUEST_GRACE_S = 2.0
# Running jobs get this long to finish before they are stopped and released (pending again).
JOBS_GRACE_S = 2.0
# The byte pool's default size is one more than the CPU count, at most this.
MAX_DEFAULT_HASH_WORKERS = 8
# Methods that start new work; refused once shutdown has begun.
_WORK_METHODS = frozenset({"import:v2:start", "import:v2:resume", "jobs:retry"})


def job_handlers(exiftool: ExifToolPool) -> dict[Queue, JobHandler]:
    """The handler of every queue; a queue without one would keep its jobs pending."""
    return {
        Queue.EXIFTOOL: exiftool_handler(exiftool),
        Queue.THUMBNAIL: thumbnail_handler(exiftool),
        Queue.FFPROBE: ffprobe,
        Queue.VIDEO_PROXY: video_proxy,
        Queue.LIVE_PHOTO: live_photo,
        Queue.BAGIT: bagit,
        Queue.LOCATION_STATS: location_stats,
        Queue.GPS_ENRICHMENT: gps_enrichment,
    }


log = get_logger(__name__)


class Sidecar:
    def __init__(self, config: Config) -> None:
        self._config = config
        self._stop = asyncio.Event()
        self._stopping = False

    def request_stop(self) -> None:
        if not self._stopping:
            log.info("shutdown requested", extra={"action": "sidecar.stop"})
        self._stopping = True
        self._stop.set()

    async def run(self, streams: ProtocolStreams) -> int:
        self._install_signal_handlers()
        failpoints.arm_from_environment()  # tests stop imports at exact moments; inert otherwise
        db, db_error = await self._open_database()
        server = JsonRpcServer(streams)
        pool = BytePool(self._hash_workers)
        # Metadata jobs and RAW previews for thumbnails share the long-lived exiftool processes.
        exiftool = ExifToolPool(CONCURRENCY[Queue.EXIFTOOL] + CONCURRENCY[Queue.THUMBNAIL])
        async with asyncio.TaskGroup() as tasks:
            toolset = tasks.create_task(discover(self._config.tools), name="tools-discover")

            async def tools() -> Toolset:
                return await asyncio.shield(toolset)

            store = scheduler = imports = None
            if db is not None:
                store = JobStore(db)
                archive_root = settings.ArchiveRoot(db, self._config.archive_override)
                scheduler = JobScheduler(
                    store,
                    job_handlers(exiftool),
                    tools=tools,
                    archive_root=archive_root,
                    events=JobNotifier(server),
                )
                imports = ImportOrchestrator(
                    db,
                    pool,
                    ImportNotifier(server),
                    ImportJobs(),
                    archive_root,
                    self._config.allow_hardlinks,
                    ReadOnce(self._config.read_once),
                    jobs_added=scheduler.wake,
                    page_files=self._config.page_files or PAGE_FILES,
                )
            dispatcher = self._dispatcher(db, db_error, tools, imports, store, scheduler)
            serving = tasks.create_task(server.serve(dispatcher), name="rpc-serve")
            serving.add_done_callback(lambda _: self.request_stop())
            background = [serving, tasks.create_task(self._watch(server), name="rpc-peer-watch")]
            if imports is not None and scheduler is not None:
                background.append(tasks.create_task(self._run_imports(pool, imports), name="imports"))
                background.append(tasks.create_task(scheduler.run(), name="jobs"))
            server.emit(
                "sidecar:ready",
                {"version": __version__, "protocolVersion": PROTOCOL_VERSION, "pid": os.getpid()},
            )
            log.info(
                "ready",
                extra={
                    "action": "sidecar.ready",
                    "db": str(self._config.db_path),
                    "host": host.current().name,
                },
            )
            await self._stop.wait()
            if imports is not None:
                await imports.shutdown()
            if scheduler is not None:
                await scheduler.stop(JOBS_GRACE_S)
            await exiftool.close()
            await server.close(REQUEST_GRACE_S)
            for task in background:
                task.cancel()
        await pool.close()
        if db is not None:
            await db.close()
        log.info("exited cleanly", extra={"action": "sidecar.exit"})
        return 0

    @property
    def _hash_workers(self) -> int:
        # One more than the cores: the byte work waits on the disk (reads, flushes), and the extra
        # worker keeps it busy meanwhile (bench/README.md). Capped, so a many-core machine does not
        # point dozens of readers at one disk.
        return self._config.hash_workers or min((os.cpu_count() or 1) + 1, MAX_DEFAULT_HASH_WORKERS)

    async def _run_imports(self, pool: BytePool, imports: ImportOrchestrator) -> None:
        # The workers start in the background, so `sidecar:ready` is not held up by spawning them.
        await pool.start()
        await imports.run()

    async def _watch(self, server: JsonRpcServer) -> None:
        await server.peer_gone.wait()
        self.request_stop()

    async def _open_database(self) -> tuple[Database | None, SidecarError | None]:
        """A database we must refuse (schema too old) is reported on every call that needs it,
        instead of exiting: the app would only see a crash loop."""
        try:
            return await Database.open(self._config.db_path), None
        except SidecarError as exc:
            log.error(
                "database refused",
                extra={
                    "action": "db.refused",
                    "error": exc.message,
                    "db": str(self._config.db_path),
                },
            )
            return None, exc

    def _dispatcher(
        self,
        db: Database | None,
        db_error: SidecarError | None,
        tools: Callable[[], Awaitable[Toolset]],
        imports: ImportOrchestrator | None,
        store: JobStore | None,
        scheduler: JobScheduler | None,
    ) -> Dispatcher:
        watch = None if scheduler is None else scheduler.watch
        sidecar_api = SidecarApi(self._config, db, self._hash_workers, tools, self.request_stop, watch)
        import_api = ImportApi(imports, db_error)
        jobs_api = JobsApi(store, scheduler, db_error)
        handlers: dict[str, Handler] = {
            **sidecar_api.handlers(),
            **import_api.handlers(),
            **jobs_api.handlers(),
        }
        return Dispatcher(Contract.load(), {n: self._gated(n, h) for n, h in handlers.items()})

    def _gated(self, name: str, handler: Handler) -> Handler:
        if name not in _WORK_METHODS:
            return handler

        async def gated(*params: Any) -> Any:
            if self._stopping:
                raise ShuttingDown()
            return await handler(*params)

        return gated

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            # Windows has no such handlers: stdin EOF and sidecar:shutdown are the graceful paths there.
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, self.request_stop)
