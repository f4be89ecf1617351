"""How an import is told to stop, and how a stopped import ends: cancelled (final), interrupted
by shutdown (resumable) or failed (resumable)."""

import asyncio


class Cancelled(Exception):
    """Import cancelled"""


class Interrupted(Exception):
    """The sidecar is shutting down; the session stays resumable"""


class ImportFailed(Exception):
    """The import cannot go on (archive unusable, disk full); the session stays resumable."""


class StopSignal:
    """Set from outside (cancel, shutdown); a step looks at it between pages, the scanner's thread
    between folders, and whoever waits on `requested` wakes when either comes."""

    def __init__(self) -> None:
        self.cancelled = False
        self.interrupted = False
        self.requested = asyncio.Event()

    def cancel(self) -> None:
        self.cancelled = True
        self.requested.set()

    def interrupt(self) -> None:
        self.interrupted = True
        self.requested.set()

    @property
    def is_set(self) -> bool:
        return self.cancelled or self.interrupted

    def check(self) -> None:
        """Raise Cancelled or Interrupted if the import was told to stop (a cancel wins)."""
        if self.cancelled:
            raise Cancelled()
        if self.interrupted:
            raise Interrupted()
