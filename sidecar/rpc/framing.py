"""Newline-delimited JSON framing with a size cap, independent of where the bytes come from."""

from collections.abc import Iterable, Iterator
from typing import Any, Final

import orjson

MAX_MESSAGE_BYTES: Final = 16 * 1024 * 1024


class Oversized:
    """Stands in for a line longer than the cap; its bytes were discarded, not buffered."""

    def __repr__(self) -> str:
        return "Oversized()"


OVERSIZED: Final = Oversized()


def split_lines(chunks: Iterable[bytes], cap: int = MAX_MESSAGE_BYTES) -> Iterator[bytes | Oversized]:
    """Yield each non-blank line (without its newline), or OVERSIZED once for a line past `cap`.

    Memory stays bounded by `cap`: the rest of an over-long line is dropped as it arrives.
    A last line without a newline at EOF still counts.
    """
    pending = bytearray()
    discarding = False
    for chunk in chunks:
        start = 0
        while (newline := chunk.find(b"\n", start)) != -1:
            piece = chunk[start:newline]
            start = newline + 1
            if discarding:
                discarding = False
            elif len(pending) + len(piece) > cap:
                pending.clear()
                yield OVERSIZED
            else:
                line = bytes(pending) + piece
                pending.clear()
                if line.strip():
                    yield line
        rest = chunk[start:]
        if discarding:
            continue
        if len(pending) + len(rest) > cap:
            pending.clear()
            discarding = True
            yield OVERSIZED
        else:
            pending += rest
    if not discarding and pending.strip():
        yield bytes(pending)


def encode(message: Any) -> bytes:
    """One frame: compact JSON (newlines inside strings are escaped) plus the terminating newline."""
    return orjson.dumps(message) + b"\n"
