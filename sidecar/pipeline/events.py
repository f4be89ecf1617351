"""How the domain reports outward without knowing the wire: an injected sink of named events."""

from collections.abc import Hashable
from typing import Any, Protocol


class EventSink(Protocol):
    def emit(self, event: str, payload: dict[str, Any], latest_key: Hashable | None = None) -> None:
        """Deliver an event. With `latest_key`, an undelivered event with the same key may be
        replaced by this one (progress is latest-wins, never queued)."""
