"""Named moments of an import where a test stops the sidecar on purpose (before, inside and after
a page commit of each step), so every kind of stop can land exactly there.

Inert unless armed. In the real process `AUS_FAILPOINTS=name=nth[,name=nth…]` arms them: at the
nth time the import reaches `name` it logs `failpoint.reached` on stderr and waits until the
import is told to stop (cancel, shutdown) or is killed, or, for a test that only changes the world
at that moment (a source rewritten between its hash and its copy), until SIGUSR1 lets it go on
(POSIX). In-process tests arm an action of their own. Names: `<step label>.page` (a page's byte
work was handed out), `<label>.commit.before`, `<label>.commit.inside` (in the page's
transaction), `<label>.commit.after`.
"""

import asyncio
import contextlib
import os
import signal
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator

from sidecar.log import get_logger
from sidecar.pipeline.stop import StopSignal

ENVIRONMENT = "AUS_FAILPOINTS"
# An armed point left waiting by a test that never stops the import carries on after this.
WAIT_BOUND_S = 120.0

Action = Callable[[StopSignal], Awaitable[None]]

log = get_logger(__name__)
_armed: dict[str, tuple[int, Action]] = {}
_reached: Counter[str] = Counter()


def arm(name: str, nth: int, action: Action) -> None:
    _armed[name] = (nth, action)


def disarm() -> None:
    _armed.clear()
    _reached.clear()


def arm_from_environment() -> None:
    """Arm what AUS_FAILPOINTS names, each to wait for the stop or the release."""
    for item in filter(None, os.environ.get(ENVIRONMENT, "").split(",")):
        name, _, nth = item.partition("=")
        arm(name.strip(), int(nth or 1), _wait_for_stop_or_release(name.strip()))


async def reached(name: str, stop: StopSignal) -> None:
    if not _armed:
        return
    _reached[name] += 1
    armed = _armed.get(name)
    if armed is not None and armed[0] == _reached[name]:
        await armed[1](stop)


def _wait_for_stop_or_release(name: str) -> Action:
    async def wait(stop: StopSignal) -> None:
        released = asyncio.Event()
        with _released_by_signal(released):  # before the log line: the test signals once it reads it
            log.warning("failpoint reached", extra={"action": "failpoint.reached", "failpoint": name})
            waits = [asyncio.ensure_future(stop.requested.wait()), asyncio.ensure_future(released.wait())]
            try:
                done, _ = await asyncio.wait(waits, timeout=WAIT_BOUND_S, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
        if not done:
            log.warning("failpoint not stopped", extra={"action": "failpoint.timeout", "failpoint": name})

    return wait


@contextlib.contextmanager
def _released_by_signal(released: asyncio.Event) -> Iterator[None]:
    """SIGUSR1 sets `released` while the block runs, where the platform has it (not Windows)."""
    signum: int | None = getattr(signal, "SIGUSR1", None)
    if signum is None:
        yield
        return
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signum, released.set)
    try:
        yield
    finally:
        loop.remove_signal_handler(signum)
