"""The server and dispatcher in-process, over real OS pipes, with handlers made up for the test."""

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from sidecar.errors import LocationNotFound
from sidecar.rpc.dispatcher import Dispatcher
from sidecar.rpc.server import JsonRpcServer
from sidecar.rpc.stdio import ProtocolStreams


class AcceptingContract:
    """Accepts any params: these tests are about transport and error conversion, not schemas."""

    methods = frozenset({"slow", "fast", "missing", "broken", "echo"})

    def params_issues(self, method: str, params: list[Any]) -> list[dict[str, str]]:
        return [] if params != ["bad"] else [{"path": "/0", "message": "bad is bad"}]


@dataclass
class Wire:
    send: int
    received: asyncio.Queue[dict[str, Any] | list[Any]]
    server: JsonRpcServer
    serving: asyncio.Task[None]

    def write(self, data: bytes) -> None:
        os.write(self.send, data)

    async def next(self) -> Any:
        async with asyncio.timeout(5):
            return await self.received.get()


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "slow"

    async def fast() -> str:
        return "fast"

    async def missing() -> None:
        raise LocationNotFound(locid="x")

    async def broken() -> None:
        raise RuntimeError("secret /home/user/path")

    handlers = {"slow": slow, "fast": fast, "missing": missing, "broken": broken, "echo": _echo}
    dispatcher = Dispatcher(AcceptingContract(), handlers)  # type: ignore[arg-type]
    in_read, in_write = os.pipe()
    out_read, out_write = os.pipe()
    server = JsonRpcServer(ProtocolStreams(in_read, out_write))
    serving = asyncio.create_task(server.serve(dispatcher))
    received: asyncio.Queue[Any] = asyncio.Queue()
    reader = asyncio.create_task(_read_frames(out_read, received))
    yield Wire(in_write, received, server, serving)
    release.set()
    os.close(in_write)  # EOF: serve() returns
    async with asyncio.timeout(5):
        await serving
    await server.close(grace_s=1)
    os.close(out_write)
    await reader
    os.close(out_read)


async def _echo(*args: Any) -> list[Any]:
    return list(args)


async def _read_frames(fd: int, received: asyncio.Queue[Any]) -> None:
    buffer = b""
    while chunk := await asyncio.to_thread(os.read, fd, 65536):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            await received.put(orjson.loads(line))


def test_a_method_without_a_schema_cannot_be_registered():
    async def handler() -> None: ...

    with pytest.raises(ValueError, match="unschemed"):
        Dispatcher(AcceptingContract(), {"unschemed": handler})  # type: ignore[arg-type]


async def test_a_slow_request_does_not_delay_a_fast_one(wire: Wire):
    wire.write(b'{"jsonrpc":"2.0","method":"slow","id":1}\n{"jsonrpc":"2.0","method":"fast","id":2}\n')
    first = await wire.next()
    assert first == {"jsonrpc": "2.0", "result": "fast", "id": 2}


async def test_domain_errors_keep_code_message_and_kind(wire: Wire):
    wire.write(b'{"jsonrpc":"2.0","method":"missing","id":"a"}\n')
    response = await wire.next()
    assert response["id"] == "a"
    assert response["error"] == {
        "code": 1002,
        "message": "Location not found",
        "data": {"kind": "location_not_found", "locid": "x"},
    }


async def test_unexpected_errors_become_internal_error_without_details(wire: Wire):
    wire.write(b'{"jsonrpc":"2.0","method":"broken","id":3}\n')
    response = await wire.next()
    assert response["error"]["code"] == -32603
    assert response["error"]["message"] == "Internal error"
    assert set(response["error"]["data"]) == {"incident"}
    assert "secret" not in orjson.dumps(response).decode()


async def test_params_issues_become_invalid_params(wire: Wire):
    wire.write(b'{"jsonrpc":"2.0","method":"echo","params":["bad"],"id":4}\n')
    response = await wire.next()
    assert response["error"]["code"] == -32602
    assert response["error"]["data"] == {"issues": [{"path": "/0", "message": "bad is bad"}]}


async def test_params_by_name_are_refused(wire: Wire):
    wire.write(b'{"jsonrpc":"2.0","method":"echo","params":{"a":1},"id":5}\n')
    response = await wire.next()
    assert response["error"]["code"] == -32602
    assert response["error"]["data"]["issues"][0]["message"] == "params must be a positional array"


async def test_a_batch_answers_every_request_and_no_notification(wire: Wire):
    wire.write(
        b'[{"jsonrpc":"2.0","method":"echo","params":[1],"id":1},'
        b'{"jsonrpc":"2.0","method":"echo","params":[2]},'
        b'{"jsonrpc":"2.0","method":"nope","id":2}]\n'
    )
    response = await wire.next()
    assert isinstance(response, list)
    by_id = {r["id"]: r for r in response}
    assert by_id.keys() == {1, 2}
    assert by_id[1]["result"] == [1]
    assert by_id[2]["error"]["code"] == -32601


async def test_progress_notifications_are_latest_wins_and_keep_their_place(wire: Wire):
    # Queue several before the writer can run: only the last of a key survives, in its first slot.
    for percent in (1, 2, 3):
        wire.server.emit("progress", {"percent": percent}, latest_key=("progress", "s1"))
    wire.server.emit("complete", {"done": True})
    first, second = await wire.next(), await wire.next()
    assert first == {"jsonrpc": "2.0", "method": "progress", "params": {"percent": 3}}
    assert second["method"] == "complete"
