"""Shared fixtures: the real sidecar process with a temporary database and archive."""

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from tests.support.client import (
    CONTRACT,
    SEEN_NOTIFICATIONS,
    SEEN_RESULTS,
    SidecarPaths,
    SidecarProcess,
    Spawn,
)
from tests.support.contract_status import NOT_YET_EMITTED, NOT_YET_IMPLEMENTED


@pytest.fixture
def sidecar_paths(tmp_path: Path) -> SidecarPaths:
    archive = tmp_path / "archive"
    archive.mkdir()
    return SidecarPaths(db=tmp_path / "au-archive.db", archive=archive)


@pytest.fixture
async def spawn_sidecar() -> AsyncIterator[Spawn]:
    """Start sidecars with any arguments; each is checked and stopped at teardown.

    A sidecar still running at the end must exit 0 on stdin EOF within 10 s; none may have written
    anything to stdout that is not a valid, schema-conforming JSON-RPC frame.
    """
    started: list[SidecarProcess] = []

    async def spawn(
        args: Sequence[str], env: dict[str, str] | None = None, prefix: Sequence[str] = ()
    ) -> SidecarProcess:
        client = await SidecarProcess.spawn(args, env, prefix)
        started.append(client)
        await client.notification("sidecar:ready")
        return client

    yield spawn

    for client in started:
        if client.process.returncode is None:
            await client.close_stdin()
            try:
                assert await client.wait_exit(10) == 0, client.stderr_lines[-20:]
            except TimeoutError:
                await client.kill()
                raise AssertionError("sidecar did not exit within 10 s of stdin EOF") from None
        else:
            try:
                async with asyncio.timeout(10):  # its pipes close once nothing it started holds them
                    await asyncio.gather(*client._tasks, return_exceptions=True)
            except TimeoutError:
                raise AssertionError(
                    "a killed sidecar's pipes stayed open: something it started lives on"
                ) from None
    for client in started:
        assert not client.violations, client.violations


@pytest.fixture
async def sidecar(spawn_sidecar: Spawn, sidecar_paths: SidecarPaths) -> SidecarProcess:
    return await spawn_sidecar(sidecar_paths.args())


# Tests that start the sidecar (or the frozen binary, or the console's own sidecar) as a process:
# these fixtures, or these folders. `scripts/test-fast` runs the rest (`-m "not process"`).
PROCESS_FIXTURES = frozenset({"spawn_sidecar", "sidecar"})
PROCESS_FOLDERS = frozenset({"e2e", "frozen", "console"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = Path(config.rootpath, "tests")
    for item in items:
        folder = item.path.relative_to(tests).parts[0] if item.path.is_relative_to(tests) else ""
        if folder in PROCESS_FOLDERS or PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.process)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Every schema needs a test: on a full run, each served method must have returned a result
    checked against its schema, and each emitted notification must have been seen."""
    full_run = not session.config.args or [Path(a).resolve() for a in session.config.args] == [
        Path(session.config.rootpath, "tests").resolve()
    ]
    # The slow set alone (scripts/test-full) and the fast tier (scripts/test-fast, "not process")
    # check no contract: they run beside the full suite.
    option = session.config.option
    subset = (
        option.keyword
        or option.markexpr not in ("", "not slow")
        or option.ignore
        or option.ignore_glob
        or option.deselect
    )
    if not full_run or exitstatus != 0 or subset:
        return
    untested = sorted((CONTRACT.methods - NOT_YET_IMPLEMENTED) - SEEN_RESULTS)
    unseen = sorted((CONTRACT.notifications - NOT_YET_EMITTED) - SEEN_NOTIFICATIONS)
    if untested or unseen:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"CONTRACT COVERAGE: no test saw a result of {untested} or a notification {unseen}",
                red=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
