"""The served methods and protocol/ agree: nothing served without a schema (the dispatcher refuses
to register one), and every schema'd method served unless listed in tests/support/contract_status.py."""

import sqlite3
from contextlib import closing

import pytest

from tests.support.client import CONTRACT, RpcError, SidecarPaths, SidecarProcess, Spawn
from tests.support.contract_status import NOT_YET_EMITTED, NOT_YET_IMPLEMENTED

METHOD_NOT_FOUND = -32601


def test_the_whole_contract_is_implemented():
    """The not-yet lists held contract entries only until their code landed; all of it has."""
    assert not NOT_YET_IMPLEMENTED, f"listed as not implemented: {sorted(NOT_YET_IMPLEMENTED)}"
    assert not NOT_YET_EMITTED, f"listed as not emitted: {sorted(NOT_YET_EMITTED)}"


@pytest.mark.parametrize("method", sorted(CONTRACT.methods))
async def test_each_schema_method_is_served_unless_listed(sidecar: SidecarProcess, method: str):
    # Too many params: a served method answers -32602 without doing anything.
    with pytest.raises(RpcError) as error:
        await sidecar.request(method, [None] * 5)
    if method in NOT_YET_IMPLEMENTED:
        assert error.value.code == METHOD_NOT_FOUND, f"{method} is served: remove it from the list"
    else:
        assert error.value.code == -32602
        assert error.value.data["issues"], error.value.data


async def test_a_refused_database_still_serves_info_and_says_why(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths
):
    with closing(sqlite3.connect(sidecar_paths.db)) as db:
        db.execute("CREATE TABLE locs (locid TEXT PRIMARY KEY)")  # an app database far too old
    client = await spawn_sidecar(sidecar_paths.args())
    info = await client.request("sidecar:info")
    assert info["dbPath"] == str(sidecar_paths.db)
    for method in ("import:v2:status", "jobs:status"):
        with pytest.raises(RpcError) as error:
            await client.request(method)
        assert (error.value.code, error.value.data["kind"]) == (1006, "schema_too_old")
        assert "locs.loc12" in error.value.data["missing"] and "locs.loc12" in error.value.message
    refused = [r for r in client.stderr_json() if r.get("action") == "db.refused"]
    assert refused and "locs.loc12" in refused[0]["error"]
    with closing(sqlite3.connect(sidecar_paths.db)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"locs"}, "no DDL may run on a refused app database"
