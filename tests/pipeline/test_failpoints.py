"""The failpoints a real sidecar arms from AUS_FAILPOINTS: each holds the import at its nth arrival
until the import is told to stop or SIGUSR1 lets it go on, and only then."""

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest

from sidecar.pipeline import failpoints
from sidecar.pipeline.stop import StopSignal

POINT = "hash.commit.inside"


@pytest.fixture
def armed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(failpoints.ENVIRONMENT, f"{POINT}=2")
    failpoints.arm_from_environment()
    yield
    failpoints.disarm()


async def held(stop: StopSignal) -> asyncio.Task[None]:
    """The armed (second) arrival at the point, running and waiting."""
    await failpoints.reached(POINT, stop)  # the first passes straight through
    waiting = asyncio.create_task(failpoints.reached(POINT, stop))
    await asyncio.sleep(0)  # one turn of the loop: the task runs up to its wait
    assert not waiting.done()
    return waiting


async def test_sigusr1_lets_a_held_import_go_on_and_is_its_own_again_after(armed: None) -> None:
    stop = StopSignal()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    waiting = await held(stop)
    assert signal.getsignal(signal.SIGUSR1) != signal.SIG_DFL  # a SIGUSR1 now no longer kills

    os.kill(os.getpid(), signal.SIGUSR1)
    await asyncio.wait_for(waiting, timeout=10)

    assert not stop.is_set
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


async def test_a_stop_lets_a_held_import_go_on(armed: None) -> None:
    stop = StopSignal()
    waiting = await held(stop)

    stop.interrupt()
    await asyncio.wait_for(waiting, timeout=10)

    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


async def test_a_held_import_that_is_torn_down_leaves_no_handler_behind(armed: None) -> None:
    waiting = await held(StopSignal())

    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting

    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
