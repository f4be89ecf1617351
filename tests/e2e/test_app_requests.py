"""`import:v2:start` as both generations of the app really send it (issue 15), straight over the
pipe (bridge/test/bridge-import-requests.test.js sends the same objects through the bridge).

- First generation, bizzlechizzle/au-archive @38845de, electron/preload/preload.cjs importV2.start:
  `{paths, locid (UUID), loc12, address_state, type, slocnam}`.
- Later generation, bizzlechizzle/abandoned-archive @dfc4679: src/pages/LocationDetail.svelte
  (`importFilePaths`: `{paths, locid, loc12, address_state, category, slocnam, subid, auth_imp,
  is_contributed, contribution_source}`, its locid a 16-hex BLAKE3 id) and src/pages/Imports.svelte
  (the same with `type` and `subid: null`). Its own handler (electron/main/ipc-handlers/import-v2.ts)
  validated with zod, which ignores keys it does not know.
"""

from pathlib import Path
from typing import Any

import pytest

from tests.support.archive import add_location, add_sublocation, rows, write
from tests.support.client import RpcError, SidecarPaths, SidecarProcess

LATER_LOCID = "9f86d081884c7d65"
LATER_SUBID = "2c26b46b68ffc68f"


def media_rows(db: Path) -> list[tuple[Any, ...]]:
    return rows(
        db,
        "SELECT imgnamo, locid, subid, auth_imp, is_contributed, contribution_source FROM imgs"
        " ORDER BY imgnamo",
    )


async def test_the_first_generation_s_request_imports_with_the_importing_user_as_author(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths, tmp_path: Path
) -> None:
    db = sidecar_paths.db
    location = add_location(db)
    card = write(tmp_path / "card" / "IMG_0001.JPG", 4096).parent
    request = {**location.params, "paths": [str(card)]}  # exactly the six keys of the first app
    result = await sidecar.request("import:v2:start", [request])
    assert result["status"] == "completed"
    assert media_rows(db) == [("IMG_0001.JPG", location.locid, None, "alice", 0, None)]


async def test_the_later_generation_s_request_with_a_sub_location_and_a_contributor(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths, tmp_path: Path
) -> None:
    db = sidecar_paths.db
    add_location(db, locid=LATER_LOCID, type_=None)
    add_sublocation(db, LATER_LOCID, LATER_SUBID)
    card = tmp_path / "card"
    for i in range(3):
        write(card / f"IMG_{i:04d}.JPG", 4096, seed=i)
    # LocationDetail.svelte's object after JSON.parse(JSON.stringify(...)): loc12 undefined is dropped.
    request = {
        "paths": [str(card / f"IMG_{i:04d}.JPG") for i in range(3)],
        "locid": LATER_LOCID,
        "address_state": "NY",
        "category": "Factory",
        "slocnam": "Boiler House",
        "subid": LATER_SUBID,
        "auth_imp": "bob",
        "is_contributed": 1,
        "contribution_source": "Flickr: bob's 2011 visit",
    }
    result = await sidecar.request("import:v2:start", [request])
    assert result["status"] == "completed" and result["finalizationResult"]["totalFinalized"] == 3
    assert [r[1:] for r in media_rows(db)] == [
        (LATER_LOCID, LATER_SUBID, "bob", 1, "Flickr: bob's 2011 visit")
    ] * 3
    # The category named the folder, as `type` does (the row has none of its own).
    [(imgloc,)] = rows(db, "SELECT imgloc FROM imgs LIMIT 1")
    assert "/NY-factory/" in imgloc and f"org-img-{LATER_LOCID[:12]}" in imgloc


async def test_keys_the_sidecar_does_not_know_are_ignored_and_loc12_comes_from_the_row(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths, tmp_path: Path
) -> None:
    db = sidecar_paths.db
    location = add_location(db)
    photo = write(tmp_path / "IMG_0001.JPG", 4096)
    request = {
        "paths": [str(photo)],
        "locid": location.locid,
        "address_state": None,
        "type": None,
        "subid": None,  # Imports.svelte: the Imports page has no sub-location picker
        "auth_imp": None,
        "is_contributed": 0,
        "contribution_source": None,
        "importedFrom": "Imports page",
        "options": {"dryRun": False},
    }
    result = await sidecar.request("import:v2:start", [request])
    assert result["status"] == "completed"
    [(imgloc, author)] = rows(db, "SELECT imgloc, auth_imp FROM imgs")
    assert f"old-factory-{location.loc12}" in imgloc and author == "alice"


async def test_a_sub_location_of_another_location_is_refused_before_anything_is_touched(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths, tmp_path: Path
) -> None:
    db = sidecar_paths.db
    location = add_location(db)
    other = add_location(db, locnam="Mill")
    add_sublocation(db, other.locid, LATER_SUBID)
    request = {**location.params, "paths": [str(write(tmp_path / "IMG_0001.JPG", 10))], "subid": LATER_SUBID}
    with pytest.raises(RpcError) as error:
        await sidecar.request("import:v2:start", [request])
    assert error.value.code == -32602
    assert error.value.data["issues"] == [
        {"path": "/0/subid", "message": f"not a sub-location of location {location.locid}: {LATER_SUBID}"}
    ]
    assert rows(db, "SELECT count(*) FROM import_sessions") == [(0,)]


async def test_twelve_thousand_paths_import(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths, tmp_path: Path
) -> None:
    """The later app passes a folder's expanded file list (the limit was 10 000)."""
    db = sidecar_paths.db
    location = add_location(db)
    paths = [
        str(write(tmp_path / "card" / f"{i // 1000:02d}" / f"IMG_{i:05d}.JPG", 64, seed=i))
        for i in range(12_000)
    ]
    result = await sidecar.request("import:v2:start", [{**location.params, "paths": paths}], timeout=300)
    assert result["status"] == "completed"
    assert result["finalizationResult"]["totalFinalized"] == 12_000
    assert rows(db, "SELECT count(*) FROM imgs") == [(12_000,)]
