"""What every benchmark script here shares: output, percentiles, the event loop's lag."""

import asyncio
import sys
import time

# The lag probe's period: how late a 5 ms sleep wakes up is how long the loop was busy.
TICK_S = 0.005


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] if ordered else float("nan")


async def ticker(lags: list[float], stop: asyncio.Event) -> None:
    """Record how late each short sleep wakes, until `stop`."""
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(TICK_S)
        lags.append(time.perf_counter() - start - TICK_S)
