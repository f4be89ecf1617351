"""Background CPU priority, host by host: Linux lowers the calling thread and no other; the generic
POSIX, macOS and Windows hosts leave a thread as it is (their setpriority would lower the whole
process, or they have none); tools start through POSIX `nice` except on Windows; the jobs'
threads are lowered exactly where the sidecar's host lowers one thread; and a byte worker lowers
itself a little everywhere but on Windows."""

import asyncio
import shutil
import sys
import threading
from collections.abc import Callable

import pytest

from sidecar import host
from sidecar.host import BACKGROUND_NICENESS, BYTE_WORKER_NICENESS
from sidecar.host.darwin import Darwin
from sidecar.host.generic import Generic
from sidecar.host.linux import Linux
from sidecar.host.windows import Windows
from sidecar.jobs.threads import JobThreads
from tests.support.processes import lowered, this_thread

ON_LINUX = pytest.mark.skipif(sys.platform != "linux", reason="/proc and a niceness per thread are Linux's")


def in_a_new_thread(call: Callable[[], None]) -> int:
    """Run `call` on a thread of its own; that thread's niceness after it."""
    seen: list[int] = []

    def body() -> None:
        call()
        seen.append(this_thread())

    thread = threading.Thread(target=body, name="priority-probe")
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    [niceness] = seen
    return niceness


@ON_LINUX
def test_linux_lowers_the_calling_thread_and_no_other() -> None:
    base = this_thread()
    assert in_a_new_thread(Linux().lower_thread_priority) == lowered(base)
    assert this_thread() == base
    assert in_a_new_thread(lambda: None) == base, "a thread started afterwards is lowered too"


@ON_LINUX
@pytest.mark.parametrize("kind", [Generic, Darwin, Windows])
def test_the_other_hosts_leave_a_thread_as_it_is(kind: type[Generic]) -> None:
    assert in_a_new_thread(kind().lower_thread_priority) == this_thread()


@ON_LINUX
@pytest.mark.parametrize(
    ("kind", "lowers"), [(Generic, True), (Linux, True), (Darwin, True), (Windows, False)]
)
def test_a_byte_worker_lowers_itself_a_little_except_on_windows(kind: type[Generic], lowers: bool) -> None:
    """On a thread of its own, as a worker's one working thread: Linux's nice() lowers the calling
    thread alone (elsewhere the worker's whole process, which is the worker's alone)."""
    base = this_thread()
    expected = lowered(base, BYTE_WORKER_NICENESS) if lowers else base
    assert in_a_new_thread(kind().lower_worker_priority) == expected
    assert this_thread() == base


def test_the_jobs_run_below_the_byte_workers() -> None:
    """Else a card's thumbnails would take the cores from the import that reads it."""
    assert 0 < BYTE_WORKER_NICENESS < BACKGROUND_NICENESS


def test_tools_start_through_posix_nice_except_on_windows() -> None:
    argv = ["/opt/tools/ffprobe", "-v", "quiet"]
    nice = shutil.which("nice")
    assert nice is not None
    for kind in (Generic, Linux, Darwin):
        assert kind().at_background_priority(argv) == [nice, "-n", "10", *argv]
    assert Windows().at_background_priority(argv) == argv


@ON_LINUX
@pytest.mark.parametrize(("chosen", "lowers"), [(Linux, True), (Generic, False)])
async def test_the_jobs_threads_are_lowered_where_the_host_lowers_a_thread(
    monkeypatch: pytest.MonkeyPatch, chosen: type[Generic], lowers: bool
) -> None:
    """Natively the jobs' CPU work runs lowered; in the generic test mode (AUS_PLATFORM=generic) at
    the sidecar's priority, and it still runs. The default executor's threads are never lowered."""
    monkeypatch.setattr(host, "current", chosen)
    base = this_thread()
    threads = JobThreads(2)
    try:
        seen = await threads.run(this_thread)
    finally:
        await threads.close()
    assert seen == (lowered(base) if lowers else base)
    assert await asyncio.to_thread(this_thread) == base
