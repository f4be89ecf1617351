"""Turns one JSON-RPC line into a response. It knows no method names: handlers come from `api/`.

This is the only module that imports jsonrpcserver, and the only place exceptions become wire
errors: params are checked against `protocol/` before a handler runs, domain errors keep their
code and `data.kind`, and anything unexpected becomes -32603 with an incident id while the
traceback goes to stderr.
"""

import uuid
import warnings
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from sidecar.errors import SidecarError
from sidecar.log import get_logger
from sidecar.rpc.contract import Contract

with warnings.catch_warnings():
    # jsonrpcserver 5.0.9 uses importlib.resources.read_text, deprecated since 3.11.
    warnings.simplefilter("ignore", DeprecationWarning)
    from jsonrpcserver import Error, InvalidParams, Success
    from jsonrpcserver.async_main import dispatch_to_serializable

Handler = Callable[..., Awaitable[Any]]

PARSE_ERROR = -32700
INTERNAL_ERROR = -32603

log = get_logger(__name__)


def error_frame(code: int, message: str, data: Any = None, request_id: Any = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return orjson.dumps({"jsonrpc": "2.0", "error": error, "id": request_id})


def _loads(line: str | bytes) -> Any:
    return orjson.loads(line)


class Dispatcher:
    def __init__(self, contract: Contract, handlers: Mapping[str, Handler]) -> None:
        unschemed = sorted(set(handlers) - contract.methods)
        if unschemed:
            raise ValueError(f"methods without a schema in protocol/: {unschemed}")
        self._contract = contract
        self._methods = {name: self._guarded(name, fn) for name, fn in handlers.items()}

    @property
    def method_names(self) -> frozenset[str]:
        return frozenset(self._methods)

    async def dispatch(self, line: bytes) -> bytes | None:
        """The response frame (without newline) for a request or batch line; None when all were
        notifications."""
        response = await dispatch_to_serializable(line, methods=self._methods, deserializer=_loads)
        return None if response is None else orjson.dumps(response)

    def _guarded(self, name: str, handler: Handler) -> Callable[..., Awaitable[Any]]:
        async def call(*params: Any, **named: Any) -> Any:
            if named:
                return InvalidParams(
                    {"issues": [{"path": "", "message": "params must be a positional array"}]}
                )
            issues = self._contract.params_issues(name, list(params))
            if issues:
                return InvalidParams({"issues": issues})
            try:
                return Success(await handler(*params))
            except SidecarError as exc:
                return Error(exc.code, exc.message, exc.data)
            except Exception:
                incident = uuid.uuid4().hex[:12]
                log.exception(
                    "request failed",
                    extra={"action": "rpc.internal_error", "method": name, "incident": incident},
                )
                return Error(INTERNAL_ERROR, "Internal error", {"incident": incident})

        return call
