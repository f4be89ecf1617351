"""Domain errors: what a client can act on. The dispatcher is the one place they become wire errors.

Each error's message defaults to its class docstring; `data.kind` is a stable machine-readable name.
Codes are >= 1000, outside JSON-RPC's reserved range.
"""

from typing import Any, ClassVar


class PermanentFailure(Exception):
    """A failure another try cannot change (a tool that is not installed, a file that is not a
    video): a job failing with it goes dead at once. Any other exception is worth retrying."""


class SidecarError(Exception):
    """Sidecar error."""

    code: ClassVar[int] = 1000
    kind: ClassVar[str] = "sidecar_error"

    def __init__(self, message: str | None = None, **data: Any) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.data: dict[str, Any] = {"kind": self.kind, **data}
        super().__init__(self.message)


class InvalidParams(SidecarError):
    """Invalid params"""

    code = -32602
    kind = "invalid_params"

    def __init__(self, issues: list[dict[str, str]]) -> None:
        super().__init__(None, issues=issues)


class ArchiveNotConfigured(SidecarError):
    """Archive folder not configured. Please set it in Settings."""

    code = 1001
    kind = "archive_not_configured"


class LocationNotFound(SidecarError):
    """Location not found"""

    code = 1002
    kind = "location_not_found"


class SessionNotFound(SidecarError):
    """Session not found"""

    code = 1003
    kind = "session_not_found"


class SessionNotResumable(SidecarError):
    """Session cannot be resumed"""

    code = 1004
    kind = "session_not_resumable"


class ShuttingDown(SidecarError):
    """The sidecar is shutting down and accepts no new work"""

    code = 1005
    kind = "shutting_down"


class OwnSchemaTooNew(SidecarError):
    """The sidecar's tables were written by a newer sidecar"""

    code = 1007
    kind = "own_schema_too_new"

    def __init__(self, found: int, supported: int) -> None:
        super().__init__(
            f"The sidecar's tables were written by a newer sidecar (own schema v{found} > v{supported})",
            found=found,
            supported=supported,
        )


class SchemaTooOld(SidecarError):
    """Database schema too old: open it once with a current AU Archive to migrate it"""

    code = 1006
    kind = "schema_too_old"


class DatabaseBusy(SidecarError):
    """Database locked by another process for longer than the busy timeout"""

    code = 1008
    kind = "database_busy"

    def __init__(self, db_path: str, busy_timeout_s: float) -> None:
        super().__init__(
            f"Database locked by another process for more than {busy_timeout_s:g} s ({db_path})",
            dbPath=db_path,
        )


class DatabaseFull(SidecarError):
    """Disk full: the database cannot grow"""

    code = 1009
    kind = "database_full"

    def __init__(self, db_path: str) -> None:
        super().__init__(f"Disk full: the database cannot grow ({db_path})", dbPath=db_path)


class LaterAppDatabase(SidecarError):
    """This database belongs to a later generation of AU Archive"""

    code = 1010
    kind = "later_app_database"

    def __init__(self, differences: list[str]) -> None:
        super().__init__(
            "This database belongs to a later generation of AU Archive ("
            + "; ".join(differences)
            + "), whose"
            " archive layout differs too; this sidecar serves the first generation's database",
            differences=differences,
        )
