"""How an import reports outward without knowing the wire: an injected sink of domain events."""

from typing import Protocol

from sidecar.pipeline.outcome import ImportOutcome, ProgressSnapshot


class ImportEvents(Protocol):
    def progress(self, snapshot: ProgressSnapshot) -> None:
        """The latest progress of an import; an undelivered earlier one may be replaced by it."""

    def completed(self, outcome: ImportOutcome) -> None:
        """An import or a resume ended, whatever its status."""
