"""Bad input on the wire: each gets its standard error and the process keeps serving."""

from typing import Any

import orjson
import pytest

from sidecar.rpc.framing import MAX_MESSAGE_BYTES
from tests.support.client import RpcError, SidecarProcess


async def _still_serving(sidecar: SidecarProcess) -> None:
    assert (await sidecar.request("sidecar:info"))["pid"] == sidecar.process.pid


def _null_id_errors(sidecar: SidecarProcess, code: int) -> list[dict[str, Any]]:
    return [
        f
        for f in sidecar.frames
        if isinstance(f, dict) and f.get("id", 0) is None and f["error"]["code"] == code
    ]


@pytest.mark.parametrize(
    "garbage",
    [
        b"not json",
        b'{"jsonrpc":"2.0",',
        b"\xff\xfe\x00 invalid utf-8",
        b'{"a": NaN}',
        b"[" * 5000 + b"]" * 5000,
    ],
)
async def test_malformed_lines_get_a_parse_error_with_null_id(sidecar: SidecarProcess, garbage: bytes):
    await sidecar.send_line(garbage)
    await sidecar.wait_for(lambda: _null_id_errors(sidecar, -32700))
    await _still_serving(sidecar)


async def test_an_over_long_line_gets_a_parse_error_and_the_stream_goes_on(sidecar: SidecarProcess):
    huge = b'{"jsonrpc":"2.0","method":"sidecar:info","id":"huge","pad":"' + b"x" * MAX_MESSAGE_BYTES + b'"}'
    await sidecar.send_line(huge)
    error = await sidecar.wait_for(lambda: _null_id_errors(sidecar, -32700))
    assert "exceeds" in error[0]["error"]["data"]
    await _still_serving(sidecar)
    assert not any(isinstance(f, dict) and f.get("id") == "huge" for f in sidecar.frames)


@pytest.mark.parametrize(
    "message",
    [
        {"method": "sidecar:info", "id": 7},  # no jsonrpc member
        {"jsonrpc": "2.0", "method": "sidecar:info", "params": None, "id": 7},
        {"jsonrpc": "2.0", "method": 42, "id": 7},
        {"jsonrpc": "2.0", "method": "sidecar:info", "id": 7, "extra": True},
        [],
        42,
    ],
)
async def test_invalid_requests_get_invalid_request(sidecar: SidecarProcess, message):
    await sidecar.send(message)
    await sidecar.wait_for(lambda: _null_id_errors(sidecar, -32600))
    await _still_serving(sidecar)


async def test_unknown_method(sidecar: SidecarProcess):
    with pytest.raises(RpcError) as error:
        await sidecar.request("import:v3:start", [])
    assert error.value.code == -32601
    await _still_serving(sidecar)


async def test_wrong_params_name_every_issue(sidecar: SidecarProcess):
    with pytest.raises(RpcError) as error:
        await sidecar.request("sidecar:info", [1, 2])
    assert error.value.code == -32602
    assert error.value.message == "Invalid params"
    issues = error.value.data["issues"]
    assert issues and all(set(i) == {"path", "message"} for i in issues)


async def test_params_by_name_are_refused(sidecar: SidecarProcess):
    with pytest.raises(RpcError) as error:
        await sidecar.request("sidecar:info", {"x": 1})  # type: ignore[arg-type]
    assert error.value.code == -32602


async def test_omitted_params_mean_an_empty_array(sidecar: SidecarProcess):
    response = await sidecar.request_raw("sidecar:info")
    assert "result" in response


async def test_a_notification_gets_no_response(sidecar: SidecarProcess):
    await sidecar.send({"jsonrpc": "2.0", "method": "sidecar:info"})
    await sidecar.send({"jsonrpc": "2.0", "method": "no:such"})
    await _still_serving(sidecar)
    replies = [f for f in sidecar.frames if isinstance(f, dict) and "id" in f]
    assert len(replies) == 1  # only the _still_serving call


async def test_a_batch_answers_every_request(sidecar: SidecarProcess):
    await sidecar.send(
        [
            {"jsonrpc": "2.0", "method": "sidecar:info", "id": "a"},
            {"jsonrpc": "2.0", "method": "sidecar:info"},
            {"jsonrpc": "2.0", "method": "nope", "id": "b"},
            {"jsonrpc": "2.0", "method": "sidecar:info", "params": ["x"], "id": "c"},
        ]
    )
    batch = await sidecar.next_frame_matching(lambda f: isinstance(f, list))
    by_id = {r["id"]: r for r in batch}
    assert by_id.keys() == {"a", "b", "c"}
    assert by_id["a"]["result"]["pid"] == sidecar.process.pid
    assert by_id["b"]["error"]["code"] == -32601
    assert by_id["c"]["error"]["code"] == -32602


async def test_duplicate_ids_are_each_answered(sidecar: SidecarProcess):
    line = orjson.dumps({"jsonrpc": "2.0", "method": "sidecar:info", "id": 99})
    await sidecar.send_line(line + b"\n" + line)

    def answers() -> list[dict[str, Any]]:
        return [f for f in sidecar.frames if isinstance(f, dict) and f.get("id") == 99]

    await sidecar.wait_for(lambda: len(answers()) == 2)
