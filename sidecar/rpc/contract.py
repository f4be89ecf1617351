"""The wire contract in `protocol/`, loaded once: which methods and notifications exist, and every
problem with a params array, a result or a notification, each named by its JSON Pointer.
It knows the schema files, never the handlers."""

import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

OPENRPC_URI = "https://au-archive.invalid/protocol/openrpc.json"
# jsonschema puts the offending value's repr into messages; a hostile 16 MiB value must not echo back.
_MAX_REPR = 80
_MAX_MESSAGE = 300
_MAX_ISSUES = 100
_LIMITS = {"maxLength": "characters", "maxItems": "items", "maxProperties": "properties"}


def protocol_dir() -> Path:
    if getattr(sys, "frozen", False):
        return Path(sys._MEIPASS) / "protocol"  # type: ignore[attr-defined]
    return Path(__file__).resolve().parents[2] / "protocol"


class Contract:
    def __init__(
        self,
        params: Mapping[str, Any],
        results: Mapping[str, Any],
        notifications: Mapping[str, Any],
        summaries: Mapping[str, str],
    ) -> None:
        self._params = dict(params)
        self._results = dict(results)
        self._notifications = dict(notifications)
        self._summaries = dict(summaries)
        self.methods = frozenset(self._params)
        self.notifications = frozenset(self._notifications)

    @classmethod
    def load(cls, root: Path | None = None) -> "Contract":
        root = protocol_dir() if root is None else root
        document = json.loads((root / "openrpc.json").read_text(encoding="utf-8"))
        resources: list[tuple[str, Resource[Any]]] = []
        for path in sorted((root / "schemas").glob("*.json")):
            schema = json.loads(path.read_text(encoding="utf-8"))
            if not str(schema.get("$id", "")).endswith(f"/protocol/schemas/{path.name}"):
                raise ValueError(f"{path}: $id {schema.get('$id')!r} does not match its file name")
            resources.append((schema["$id"], DRAFT202012.create_resource(schema)))
        registry: Registry[Any] = Registry().with_resources(resources)
        resolver = registry.resolver(base_uri=OPENRPC_URI)

        def validator(ref: dict[str, str]) -> Any:
            return Draft202012Validator(resolver.lookup(ref["$ref"]).contents, registry=registry)

        params, results, summaries = {}, {}, {}
        for method in document["methods"]:
            name = method["name"]
            params[name] = validator(method["x-paramsSchema"])
            results[name] = validator(method["result"]["schema"])
            shapes = [
                _shape(p["name"], resolver.lookup(p["schema"]["$ref"]).contents, p.get("required", False))
                for p in method["params"]
            ]
            summaries[name] = f"{name} [{', '.join(shapes)}] — {method['summary']}"
        notifications = {n["name"]: validator(n["params"]) for n in document["x-notifications"]}
        return cls(params, results, notifications, summaries)

    def params_issues(self, method: str, params: list[Any]) -> list[dict[str, str]]:
        return _issues(self._params[method], params)

    def result_issues(self, method: str, result: Any) -> list[dict[str, str]]:
        return _issues(self._results[method], result)

    def notification_issues(self, method: str, params: Any) -> list[dict[str, str]]:
        return _issues(self._notifications[method], params)

    def summary(self, method: str) -> str:
        return self._summaries[method]


def _shape(name: str, schema: Any, required: bool) -> str:
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if isinstance(properties, dict):
        needed = set(schema.get("required", ()))
        name = "{" + ", ".join(k if k in needed else f"{k}?" for k in properties) + "}"
    return name if required else f"{name}?"


def _issues(validator: Any, instance: Any) -> list[dict[str, str]]:
    errors = [leaf for error in validator.iter_errors(instance) for leaf in _explain(error)]
    # `items: false` already says how many extra params there are; `maxItems` would repeat it.
    extra_items = {tuple(e.absolute_path) for e in errors if e.validator == "items"}
    found = sorted(
        {
            (_order(e.absolute_path), _pointer(e.absolute_path), _message(e))
            for e in errors
            if not (e.validator == "maxItems" and tuple(e.absolute_path) in extra_items)
        }
    )
    issues = [{"path": path, "message": message} for _, path, message in found[:_MAX_ISSUES]]
    if len(found) > _MAX_ISSUES:
        # A 10 000-path request with every path bad must not produce a 10 000-entry answer.
        omitted = len(found) - _MAX_ISSUES + 1
        issues[-1] = {"path": issues[-1]["path"], "message": f"…and {omitted} more problems from here on"}
    return issues


def _order(path: Iterable[str | int]) -> tuple[tuple[int, int, str], ...]:
    """Sorts `/paths/2` before `/paths/10`."""
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in path)


def _explain(error: ValidationError) -> Iterator[ValidationError]:
    """The errors worth reporting for one failure: for oneOf/anyOf, those of the only branch whose
    type fits the instance (e.g. the object branch of `Thing | null`), else the best match."""
    if not error.context:
        yield error
        return
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    fitting = [
        subs
        for subs in branches.values()
        if not any(e.validator == "type" and not e.relative_path for e in subs)
    ]
    if len(fitting) == 1:
        for sub in fitting[0]:
            yield from _explain(sub)
    else:
        yield from _explain(best_match(_flatten(fitting) or error.context))


def _flatten(groups: Iterable[list[ValidationError]]) -> list[ValidationError]:
    return [e for group in groups for e in group]


def _pointer(path: Iterable[str | int]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _message(error: ValidationError) -> str:
    message: str = error.message
    shown = repr(error.instance)
    if len(shown) > _MAX_REPR and message.startswith(shown):
        message = f"{shown[: _MAX_REPR - 20]}…{shown[-12:]}{message[len(shown) :]}"
    if error.validator in _LIMITS:
        message += f" (at most {error.validator_value} {_LIMITS[error.validator]})"
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"
