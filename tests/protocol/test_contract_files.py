"""The files in protocol/: well-formed, complete, resolvable, and strict where the wire needs it."""

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from sidecar import PROTOCOL_VERSION, errors
from sidecar.rpc.contract import OPENRPC_URI, Contract, protocol_dir
from tests.support.jobs import APP_QUEUES

# SPEC §3.2 and §3.3, as the spec lists them.
SPEC_METHODS = {
    "import:v2:start",
    "import:v2:cancel",
    "import:v2:status",
    "import:v2:resumable",
    "import:v2:resume",
    "jobs:status",
    "jobs:deadLetter",
    "jobs:retry",
    "jobs:acknowledge",
    "jobs:clearCompleted",
    "sidecar:info",
    "sidecar:shutdown",
}
SPEC_NOTIFICATIONS = {
    "import:v2:progress",
    "import:v2:complete",
    "jobs:progress",
    "asset:thumbnail-ready",
    "asset:metadata-complete",
    "asset:proxy-ready",
    "jobs:deadLetter",
    "location:gps-enriched",  # the later app's (SPEC §3.3)
    "sidecar:ready",
}
QUEUES = APP_QUEUES

ROOT = protocol_dir()
SCHEMA_FILES = sorted((ROOT / "schemas").glob("*.json"))
OPENRPC = json.loads((ROOT / "openrpc.json").read_text(encoding="utf-8"))
CONTRACT = Contract.load()

LOCID = "3f2b8c1e-9a4d-4e6f-8b2a-1c5d7e9f0a3b"
SESSION = "b7e4c2a1-5d3f-4a8e-9c6b-2f1e0d9c8b7a"
JOB = "0c9d8e7f-6a5b-4c3d-9e2f-1a0b9c8d7e6f"
HASH = "a3f5c8e1d2b47960"
STARTED = "2025-12-05T23:04:57.123Z"
ENDED = "2025-12-05T23:17:11.640Z"


def stem(name: str) -> str:
    return name.replace(":", ".")


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def registry() -> Registry[Any]:
    return Registry().with_resources(
        (load(p)["$id"], DRAFT202012.create_resource(load(p))) for p in SCHEMA_FILES
    )


def paths(issues: list[dict[str, str]]) -> list[str]:
    return [issue["path"] for issue in issues]


# --- the files ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_file_is_valid_draft_2020_12_with_id_title_and_description(path: Path) -> None:
    schema = load(path)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://au-archive.invalid/protocol/schemas/{path.name}"
    assert schema["title"].strip()
    assert schema["description"].strip()


def test_file_names_follow_the_convention() -> None:
    expected = {"defs.json"}
    expected |= {f"{stem(m)}.{kind}.json" for m in SPEC_METHODS for kind in ("params", "result")}
    expected |= {f"{stem(n)}.notification.json" for n in SPEC_NOTIFICATIONS}
    assert {p.name for p in SCHEMA_FILES} == expected


def test_openrpc_lists_exactly_the_spec_methods_and_notifications() -> None:
    methods = [m["name"] for m in OPENRPC["methods"]]
    notifications = [n["name"] for n in OPENRPC["x-notifications"]]
    assert len(methods) == len(set(methods))
    assert len(notifications) == len(set(notifications))
    assert set(methods) == SPEC_METHODS == CONTRACT.methods
    assert set(notifications) == SPEC_NOTIFICATIONS == CONTRACT.notifications


def test_openrpc_document_header() -> None:
    assert OPENRPC["openrpc"] == "1.3.2"
    assert OPENRPC["info"]["title"] == "AU Archive sidecar"
    assert OPENRPC["info"]["version"] == PROTOCOL_VERSION == "1.0.0"


@pytest.mark.parametrize("method", OPENRPC["methods"], ids=lambda m: m["name"])
def test_method_entry_points_at_its_files_and_matches_the_params_array(method: dict[str, Any]) -> None:
    name = method["name"]
    assert method["paramStructure"] == "by-position"
    assert method["summary"].strip() and method["description"].strip()
    assert method["result"]["schema"] == {"$ref": f"schemas/{stem(name)}.result.json"}
    assert method["x-paramsSchema"] == {"$ref": f"schemas/{stem(name)}.params.json"}
    array = load(ROOT / "schemas" / f"{stem(name)}.params.json")
    assert array["type"] == "array"
    assert array["items"] is False
    assert array["maxItems"] == len(array.get("prefixItems", [])) == len(method["params"])
    required = [p["required"] for p in method["params"]]
    assert array["minItems"] == sum(required)
    assert required == sorted(required, reverse=True), "an optional param precedes a required one"
    for index, param in enumerate(method["params"]):
        assert param["name"] and param["summary"]
        assert param["schema"] == {"$ref": f"schemas/{stem(name)}.params.json#/prefixItems/{index}"}


def test_notification_entries_point_at_their_files() -> None:
    for entry in OPENRPC["x-notifications"]:
        assert entry["summary"].strip()
        assert entry["params"] == {"$ref": f"schemas/{stem(entry['name'])}.notification.json"}


def test_every_ref_resolves() -> None:
    reg = registry()
    followed = 0
    for ref in refs(OPENRPC):
        reg.resolver(base_uri=OPENRPC_URI).lookup(ref)
        followed += 1
    for path in SCHEMA_FILES:
        schema = load(path)
        for ref in refs(schema):
            assert not ref.startswith("http"), f"{path.name}: use a relative ref, not {ref}"
            reg.resolver(base_uri=schema["$id"]).lookup(ref)
            followed += 1
    assert followed > 100


def test_x_errors_document_every_code() -> None:
    table = {e["code"]: e for e in OPENRPC["x-errors"]}
    assert set(table) == {-32700, -32600, -32601, -32602, -32603, *range(1001, 1011)}
    assert all(e["kind"] and e["message"] and e["description"] for e in table.values())
    assert table[1001]["message"] == "Archive folder not configured. Please set it in Settings."
    kinds = {
        1002: "location_not_found",
        1003: "session_not_found",
        1004: "session_not_resumable",
        1005: "shutting_down",
        1006: "schema_too_old",
        1007: "own_schema_too_new",
        1008: "database_busy",
        1009: "database_full",
        1010: "later_app_database",
    }
    assert {code: table[code]["kind"] for code in kinds} == kinds


def test_x_errors_cover_every_domain_error_class() -> None:
    table = {e["code"]: e["kind"] for e in OPENRPC["x-errors"]}
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.SidecarError)]
    for cls in classes:
        if cls is not errors.SidecarError:
            assert table.get(cls.code) == cls.kind, cls.__name__


def test_load_rejects_a_schema_whose_id_does_not_match_its_file(tmp_path: Path) -> None:
    shutil.copytree(ROOT, tmp_path / "protocol")
    moved = tmp_path / "protocol" / "schemas" / "jobs.retry.result.json"
    moved.rename(moved.with_name("jobs.retried.result.json"))
    with pytest.raises(ValueError, match=r"jobs\.retried\.result\.json"):
        Contract.load(tmp_path / "protocol")


def test_unknown_method_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        CONTRACT.params_issues("import:v2:nope", [])
    with pytest.raises(KeyError):
        CONTRACT.result_issues("import:v2:progress", {})
    with pytest.raises(KeyError):
        CONTRACT.notification_issues("import:v2:start", {})


def test_summary_is_one_line_with_the_params_shape() -> None:
    assert CONTRACT.summary("import:v2:start").startswith(
        "import:v2:start [{paths, locid, loc12?, address_state?, type?, slocnam?, category?, subid?,"
        " auth_imp?, is_contributed?, contribution_source?}] — "
    )
    assert CONTRACT.summary("jobs:deadLetter").startswith("jobs:deadLetter [queue?] — ")
    assert CONTRACT.summary("jobs:retry").startswith("jobs:retry [{deadLetterId}] — ")
    assert CONTRACT.summary("sidecar:info").startswith("sidecar:info [] — ")
    assert all("\n" not in CONTRACT.summary(m) for m in CONTRACT.methods)


# --- params -----------------------------------------------------------------------------------

START: dict[str, Any] = {
    "paths": ["/Volumes/EOS_DIGITAL/DCIM/100CANON", "/Users/ana/Desktop/scan 0042.tif"],
    "locid": LOCID,
    "loc12": "7FQ2M9KD3XWA",
    "address_state": "NY",
    "type": "Hospital",
    "slocnam": "Main Building",
}

VALID_PARAMS: dict[str, list[list[Any]]] = {
    "import:v2:start": [
        [START],
        [{"paths": ["C:\\Users\\ana\\Pictures"], "locid": LOCID, "loc12": "A1"}],
        # The later app: a 16-hex locid, no loc12, category, attribution, keys the sidecar ignores.
        [
            {
                "paths": ["/Volumes/SD/DCIM"],
                "locid": "9f86d081884c7d65",
                "address_state": "NY",
                "category": "Factory",
                "slocnam": None,
                "subid": "2c26b46b68ffc68f",
                "auth_imp": "ana",
                "is_contributed": 1,
                "contribution_source": "Flickr",
                "somethingNew": {"any": "thing"},
            }
        ],
        [{**START, "subid": None, "is_contributed": True, "auth_imp": None}],
    ],
    "import:v2:cancel": [[SESSION]],
    "import:v2:status": [[]],
    "import:v2:resumable": [[]],
    "import:v2:resume": [[SESSION]],
    "jobs:status": [[]],
    "jobs:deadLetter": [[], [None], ["video-proxy"]],
    "jobs:retry": [[{"deadLetterId": 42}]],
    "jobs:acknowledge": [[[3, 4, 5]], [[]]],
    "jobs:clearCompleted": [[], [None], [0], [86_400_000], [1.5]],
    "sidecar:info": [[]],
    "sidecar:shutdown": [[]],
}


def test_every_method_has_valid_params_examples() -> None:
    assert set(VALID_PARAMS) == CONTRACT.methods


@pytest.mark.parametrize(
    ("method", "params"), [(m, p) for m, examples in VALID_PARAMS.items() for p in examples]
)
def test_valid_params_are_accepted(method: str, params: list[Any]) -> None:
    assert CONTRACT.params_issues(method, params) == []


INVALID_PARAMS: list[tuple[str, list[Any], list[tuple[str, str]]]] = [
    (
        "import:v2:start",
        [{**{k: v for k, v in START.items() if k != "locid"}, "paths": ["/ok", "/bad\x00name"]}],
        [("/0", "'locid' is a required property"), ("/0/paths/1", "does not match")],
    ),
    ("import:v2:start", [{**START, "subid": "loc-1"}], [("/0/subid", "does not match")]),
    (
        "import:v2:start",
        [{**START, "is_contributed": 2}],
        [("/0/is_contributed", "greater than the maximum of 1")],
    ),
    ("import:v2:start", [{**START, "category": 5}], [("/0/category", "5 is not of type 'string', 'null'")]),
    ("import:v2:start", [{**START, "paths": []}], [("/0/paths", "should be non-empty")]),
    ("import:v2:start", [{**START, "paths": ["/a", ""]}], [("/0/paths/1", "should be non-empty")]),
    ("import:v2:start", [{**START, "loc12": "../../etc"}], [("/0/loc12", "does not match")]),
    ("import:v2:start", [{**START, "locid": "42"}], [("/0/locid", "does not match")]),
    ("import:v2:start", [{**START, "type": 7}], [("/0/type", "7 is not of type 'string', 'null'")]),
    ("import:v2:start", [{**START, "slocnam": "x" * 257}], [("/0/slocnam", "at most 256 characters")]),
    ("import:v2:start", [], [("", "should be non-empty")]),
    ("import:v2:start", [START, START], [("", "Expected at most 1 item but found 1 extra")]),
    ("import:v2:start", ["/Volumes/SD"], [("/0", "'/Volumes/SD' is not of type 'object'")]),
    ("import:v2:cancel", [], [("", "should be non-empty")]),
    ("import:v2:cancel", [""], [("/0", "should be non-empty")]),
    ("import:v2:resume", [{"sessionId": SESSION}], [("/0", "is not of type 'string'")]),
    ("import:v2:status", [SESSION], [("", "Expected at most 0 items but found 1 extra")]),
    ("jobs:deadLetter", ["import:exiftool"], [("/0", "'import:exiftool' is not one of")]),
    ("jobs:retry", [{"deadLetterId": "7"}], [("/0/deadLetterId", "'7' is not of type 'integer'")]),
    ("jobs:retry", [{"deadLetterId": 0}], [("/0/deadLetterId", "0 is less than the minimum of 1")]),
    (
        "jobs:retry",
        [{"id": 7}],
        [("/0", "'deadLetterId' is a required property"), ("/0", "('id' was unexpected)")],
    ),
    ("jobs:acknowledge", [["x"]], [("/0/0", "'x' is not of type 'integer'")]),
    (
        "jobs:acknowledge",
        [[1, 2.5, True]],
        [("/0/1", "not of type 'integer'"), ("/0/2", "not of type 'integer'")],
    ),
    ("jobs:acknowledge", [7], [("/0", "7 is not of type 'array'")]),
    ("jobs:clearCompleted", [-5], [("/0", "-5 is less than the minimum of 0")]),
    ("jobs:clearCompleted", ["1d"], [("/0", "'1d' is not of type 'number', 'null'")]),
    ("jobs:clearCompleted", [1000, 2000], [("", "Expected at most 1 item but found 1 extra")]),
    ("sidecar:shutdown", [True], [("", "Expected at most 0 items")]),
]


@pytest.mark.parametrize(("method", "params", "expected"), INVALID_PARAMS)
def test_invalid_params_report_every_problem_at_its_pointer(
    method: str, params: list[Any], expected: list[tuple[str, str]]
) -> None:
    issues = CONTRACT.params_issues(method, params)
    assert paths(issues) == [path for path, _ in expected], issues
    for issue, (_, fragment) in zip(issues, expected, strict=True):
        assert fragment in issue["message"], issues


def test_every_method_has_an_invalid_params_example() -> None:
    assert {method for method, _, _ in INVALID_PARAMS} >= CONTRACT.methods - {
        "import:v2:resumable",
        "jobs:status",
        "sidecar:info",
    }


def test_issues_sort_numerically_and_stay_bounded_for_a_hostile_request() -> None:
    hostile = {**START, "paths": ["x" * 5000] * 10_001}
    issues = CONTRACT.params_issues("import:v2:start", [hostile])
    assert len(issues) == 100
    assert paths(issues)[:3] == ["/0/paths/0", "/0/paths/1", "/0/paths/2"]
    assert paths(issues)[9:11] == ["/0/paths/9", "/0/paths/10"]  # numeric order, not text order
    assert issues[-1]["message"] == "…and 9902 more problems from here on"
    assert max(len(issue["message"]) for issue in issues) <= 300


# --- results ----------------------------------------------------------------------------------

IMPORT_RESULT: dict[str, Any] = {
    "sessionId": SESSION,
    "status": "completed",
    "scanResult": {"totalFiles": 1204, "totalBytes": 8_123_456_789, "skipped": 3},
    "hashResult": {"totalDuplicates": 17, "totalErrors": 0},
    "copyResult": {"totalBytes": 8_000_000_000, "totalErrors": 1, "strategy": "reflink"},
    "validationResult": {"totalInvalid": 0, "fromMedium": True},
    "finalizationResult": {"totalFinalized": 1186, "totalErrors": 0, "jobsQueued": 4200},
    "errors": [
        {"path": "/Volumes/EOS_DIGITAL/DCIM/100CANON/IMG_0042.CR2", "step": "copy", "message": "EIO: read"}
    ],
    "skipped": [
        {
            "path": "/Volumes/EOS_DIGITAL/._IMG_0001.JPG",
            "reason": "AppleDouble file (macOS metadata of another file, not media)",
        },
        {
            "path": "/Volumes/EOS_DIGITAL/.Trashes",
            "reason": "system folder (left by macOS or Windows, not media)",
        },
        {"path": "/Volumes/EOS_DIGITAL/DCIM/100CANON/IMG_0042.LNK", "reason": "unknown extension (.lnk)"},
    ],
    "startedAt": STARTED,
    "completedAt": ENDED,
    "totalDurationMs": 734_517,
}
FAILED_IMPORT = {
    "sessionId": SESSION,
    "status": "failed",
    "errors": [],
    "skipped": [],
    "error": "Location not found",
    "startedAt": STARTED,
    "totalDurationMs": 12.5,
}
PROGRESS: dict[str, Any] = {
    "sessionId": SESSION,
    "status": "copying",
    "step": 3,
    "totalSteps": 5,
    "percent": 57.25,
    "currentFile": "IMG_0042.CR2",
    "filesProcessed": 512,
    "filesTotal": 1204,
    "bytesProcessed": 3_456_789_012,
    "bytesTotal": 8_123_456_789,
    "duplicatesFound": 17,
    "errorsFound": 1,
    "estimatedRemainingMs": 41_250,
}
DEAD: dict[str, Any] = {
    "id": 9,
    "jobId": JOB,
    "originalJobId": JOB,
    "queue": "video-proxy",
    "payload": {"hash": HASH, "mediaType": "video", "archivePath": "/archive/x.mov"},
    "error": "ffmpeg exited with code 1",
    "attempts": 3,
    "failedAt": ENDED,
    "acknowledged": False,
}
STATS = {"pending": 4, "processing": 2, "completed": 1180, "failed": 0, "dead": 1}
INFO: dict[str, Any] = {
    "name": "au-sidecar",
    "version": "0.1.0",
    "protocolVersion": "1.0.0",
    "pid": 48213,
    "python": "3.11.7",
    "dbPath": "/Users/ana/Library/Application Support/au-archive/au-archive.db",
    "archivePath": "/Volumes/Archive",
    "hashWorkers": 2,
    "tools": {
        "exiftool": {"path": "/Applications/AU Archive.app/Contents/Resources/exiftool", "version": "12.76"},
        "ffprobe": None,
        "ffmpeg": {"path": "/opt/homebrew/bin/ffmpeg", "version": "7.1"},
    },
}

VALID_RESULTS: dict[str, list[Any]] = {
    "import:v2:start": [IMPORT_RESULT, FAILED_IMPORT],
    "import:v2:cancel": [{"cancelled": True}, {"cancelled": False, "reason": "No active import found"}],
    "import:v2:status": [
        {"sessionId": None, "status": "idle", "progress": None, "queued": []},
        {"sessionId": SESSION, "status": "copying", "progress": PROGRESS, "queued": [LOCID]},
    ],
    "import:v2:resumable": [
        [],
        [
            {
                "sessionId": SESSION,
                "locid": LOCID,
                "status": "copying",
                "lastStep": 3,
                "startedAt": STARTED,
                "totalFiles": 1204,
                "processedFiles": 512,
            }
        ],
    ],
    "import:v2:resume": [{**IMPORT_RESULT, "status": "cancelled", "error": "Import cancelled"}],
    "jobs:status": [{queue: STATS for queue in QUEUES}],
    "jobs:deadLetter": [[], [DEAD, {**DEAD, "id": 8, "error": None, "attempts": None, "acknowledged": True}]],
    "jobs:retry": [{"success": True, "newJobId": JOB}, {"success": False, "newJobId": None}],
    "jobs:acknowledge": [{"acknowledged": 2}],
    "jobs:clearCompleted": [{"cleared": 0}],
    "sidecar:info": [
        INFO,
        {**INFO, "archivePath": None, "tools": dict.fromkeys(("exiftool", "ffprobe", "ffmpeg"))},
    ],
    "sidecar:shutdown": [{"ok": True}],
}


def without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


DRIFTED_RESULTS: list[tuple[str, Any, list[str]]] = [
    # Dates are the app's ISO format with ms and Z: not Date.toString(), not seconds, not epoch ms.
    ("import:v2:start", {**IMPORT_RESULT, "startedAt": "Fri Dec 05 2025 23:04:57 GMT+0000"}, ["/startedAt"]),
    ("import:v2:start", {**IMPORT_RESULT, "completedAt": "2025-12-05T23:17:11Z"}, ["/completedAt"]),
    ("import:v2:start", {**IMPORT_RESULT, "startedAt": 1764975897123}, ["/startedAt"]),
    # Per-file arrays must never travel (a 100 000-file import would be a 50 MB message).
    (
        "import:v2:start",
        {**IMPORT_RESULT, "scanResult": {**IMPORT_RESULT["scanResult"], "files": []}},
        ["/scanResult"],
    ),
    ("import:v2:start", without(IMPORT_RESULT, "errors"), [""]),
    (
        "import:v2:start",
        {**IMPORT_RESULT, "errors": [{"path": "/a", "step": "move", "message": "x"}]},
        ["/errors/0/step"],
    ),
    (
        "import:v2:start",
        {**IMPORT_RESULT, "errors": [{"path": "/a", "step": "copy", "message": "x"}] * 1001},
        ["/errors"],
    ),
    (
        "import:v2:start",
        {**IMPORT_RESULT, "copyResult": {"totalBytes": -1, "totalErrors": 0}},
        ["/copyResult/totalBytes"],
    ),
    ("import:v2:resume", {**IMPORT_RESULT, "status": "done"}, ["/status"]),
    ("import:v2:cancel", {"cancelled": True, "reason": "x"}, [""]),
    ("import:v2:cancel", {"cancelled": False}, [""]),
    ("import:v2:status", {"sessionId": None, "status": "idle"}, ["", ""]),
    (
        "import:v2:status",
        {"sessionId": None, "status": "idle", "progress": {**PROGRESS, "step": 6}, "queued": []},
        ["/progress/step"],
    ),
    (
        "import:v2:resumable",
        [{**VALID_RESULTS["import:v2:resumable"][1][0], "startedAt": "2025-12-05 23:04:57"}],
        ["/0/startedAt"],
    ),
    ("jobs:status", {**{q: STATS for q in QUEUES}, "thumbnail": without(STATS, "dead")}, ["/thumbnail"]),
    ("jobs:status", {f"import:{q}": STATS for q in QUEUES}, [""] * 9),
    ("jobs:deadLetter", [without(DEAD, "originalJobId")], ["/0"]),
    ("jobs:deadLetter", [{**DEAD, "acknowledged": 0}], ["/0/acknowledged"]),
    ("jobs:deadLetter", [DEAD] * 101, [""]),
    ("jobs:retry", {"success": True}, [""]),
    ("jobs:acknowledge", {"acknowledged": -1}, ["/acknowledged"]),
    ("jobs:clearCompleted", {"cleared": 1, "extra": True}, [""]),
    (
        "sidecar:info",
        {**INFO, "tools": {**INFO["tools"], "ffprobe": {"path": "/usr/bin/ffprobe"}}},
        ["/tools/ffprobe"],
    ),
    ("sidecar:info", {**INFO, "hashWorkers": 0}, ["/hashWorkers"]),
    ("sidecar:shutdown", {"ok": False}, ["/ok"]),
]


def test_every_method_has_result_examples() -> None:
    assert set(VALID_RESULTS) == CONTRACT.methods
    assert {method for method, _, _ in DRIFTED_RESULTS} == CONTRACT.methods


@pytest.mark.parametrize(
    ("method", "result"), [(m, r) for m, examples in VALID_RESULTS.items() for r in examples]
)
def test_valid_results_are_accepted(method: str, result: Any) -> None:
    assert CONTRACT.result_issues(method, result) == []


@pytest.mark.parametrize(("method", "result", "expected"), DRIFTED_RESULTS)
def test_drifted_results_are_rejected_at_their_pointer(method: str, result: Any, expected: list[str]) -> None:
    issues = CONTRACT.result_issues(method, result)
    assert paths(issues) == expected, issues
    assert all(issue["message"] for issue in issues)


def test_nullable_object_reports_the_object_branch_not_the_null_branch() -> None:
    drifted = {**INFO, "tools": {**INFO["tools"], "ffprobe": {"path": "/usr/bin/ffprobe"}}}
    assert CONTRACT.result_issues("sidecar:info", drifted) == [
        {"path": "/tools/ffprobe", "message": "'version' is a required property"}
    ]


# --- notifications ----------------------------------------------------------------------------

VALID_NOTIFICATIONS: dict[str, list[Any]] = {
    "import:v2:progress": [PROGRESS, {**PROGRESS, "status": "scanning", "step": 1, "currentFile": ""}],
    "import:v2:complete": [
        {
            "sessionId": SESSION,
            "status": "completed",
            "totalImported": 1186,
            "totalDuplicates": 17,
            "totalErrors": 1,
            "totalDurationMs": 734_517,
            "jobsQueued": 4200,
        }
    ],
    "jobs:progress": [
        {"queue": "video-proxy", "jobId": JOB, "progress": 42.5, "message": "Transcoding"},
        {"queue": "video-proxy", "jobId": JOB, "progress": 100},
    ],
    "asset:thumbnail-ready": [
        {
            "hash": HASH,
            "mediaType": "image",
            "paths": {
                "sm": f"/Volumes/Archive/.thumbnails/a3/{HASH}_400.jpg",
                "lg": f"/Volumes/Archive/.thumbnails/a3/{HASH}_800.jpg",
                "preview": f"/Volumes/Archive/.thumbnails/a3/{HASH}_1920.jpg",
            },
        }
    ],
    "asset:metadata-complete": [
        {
            "hash": HASH,
            "mediaType": "image",
            "metadata": {"width": 6000, "height": 4000, "dateTaken": STARTED, "cameraMake": "Canon"},
        }
    ],
    "asset:proxy-ready": [{"hash": HASH, "proxyPath": f"/Volumes/Archive/locations/x/.{HASH}.proxy.mp4"}],
    "jobs:deadLetter": [{**DEAD, "timestamp": ENDED}],
    "location:gps-enriched": [{"locid": LOCID, "lat": 42.8864, "lng": -78.8784, "source": "image"}],
    "sidecar:ready": [{"version": "0.1.0", "protocolVersion": "1.0.0", "pid": 48213}],
}

DRIFTED_NOTIFICATIONS: list[tuple[str, Any, list[str]]] = [
    ("import:v2:progress", {**PROGRESS, "percent": 100.5}, ["/percent"]),
    ("import:v2:progress", {**PROGRESS, "totalSteps": 6}, ["/totalSteps"]),
    ("import:v2:progress", without(PROGRESS, "estimatedRemainingMs"), [""]),
    ("import:v2:progress", {**PROGRESS, "filesProcessed": 1.5}, ["/filesProcessed"]),
    ("import:v2:progress", {**PROGRESS, "currentFile": None}, ["/currentFile"]),  # always a string
    (
        "import:v2:complete",
        {**VALID_NOTIFICATIONS["import:v2:complete"][0], "totalImported": -1},
        ["/totalImported"],
    ),
    ("jobs:progress", {"queue": "import:video-proxy", "jobId": JOB, "progress": 5}, ["/queue"]),
    (
        "asset:thumbnail-ready",
        {"hash": "A3F5C8E1D2B47960", "mediaType": "image", "paths": {"sm": "a", "lg": "b"}},
        ["/hash"],
    ),
    ("asset:thumbnail-ready", {"hash": HASH, "paths": {"sm": "a", "lg": "b"}}, [""]),
    (
        "asset:metadata-complete",
        {"hash": HASH, "mediaType": "image", "metadata": {f"Tag{i}": i for i in range(65)}},
        ["/metadata"],
    ),
    ("asset:proxy-ready", {"hash": HASH, "proxyPath": "/a.mp4", "type": "proxy"}, [""]),
    (
        "jobs:deadLetter",
        {**DEAD, "timestamp": ENDED, "failedAt": "2025-12-05T23:17:11.640+00:00"},
        ["/failedAt"],
    ),
    ("jobs:deadLetter", DEAD, [""]),  # without the later app's timestamp
    ("location:gps-enriched", {"locid": LOCID, "lat": 91, "lng": 0, "source": "image"}, ["/lat"]),
    ("sidecar:ready", {"version": "0.1.0", "protocolVersion": "1", "pid": 1}, ["/protocolVersion"]),
]


def test_every_notification_has_examples() -> None:
    assert set(VALID_NOTIFICATIONS) == CONTRACT.notifications
    assert {name for name, _, _ in DRIFTED_NOTIFICATIONS} == CONTRACT.notifications


@pytest.mark.parametrize(
    ("name", "params"), [(n, p) for n, examples in VALID_NOTIFICATIONS.items() for p in examples]
)
def test_valid_notifications_are_accepted(name: str, params: Any) -> None:
    assert CONTRACT.notification_issues(name, params) == []


@pytest.mark.parametrize(("name", "params", "expected"), DRIFTED_NOTIFICATIONS)
def test_drifted_notifications_are_rejected_at_their_pointer(
    name: str, params: Any, expected: list[str]
) -> None:
    issues = CONTRACT.notification_issues(name, params)
    assert paths(issues) == expected, issues
    assert all(issue["message"] for issue in issues)
