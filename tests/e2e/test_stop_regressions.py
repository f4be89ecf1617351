"""The losses users met when the app stopped an import (issue 11), each replayed as it was reported,
through the real process: the app quitting or asking for shutdown while the import hashes, a cancel
while it hashes, more than a thousand missing inputs, and kills while it copies."""

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.support.archive import add_location, assert_archive_invariant, org_files, rows, stat_key, write
from tests.support.client import RpcError, SidecarPaths, SidecarProcess, Spawn


def photos(folder: Path, count: int = 40, size: int = 8 << 20) -> Path:
    for i in range(count):
        write(folder / f"IMG_{i:04d}.jpg", size, seed=i)
    return folder


async def stop(client: SidecarProcess, how: str) -> None:
    if how == "stdin-eof":
        await client.close_stdin()
    else:
        assert await client.request("sidecar:shutdown") == {"ok": True}
    assert await client.wait_exit(10) == 0


@pytest.mark.parametrize("how", ["stdin-eof", "sidecar:shutdown"])
async def test_app_quitting_while_hashing_then_resume_archives_every_photo(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path, how: str
) -> None:
    """Reported: the resume said `completed`, 0 imported, 40 duplicates, and nothing was archived."""
    client = await spawn_sidecar(sidecar_paths.args())
    location = add_location(sidecar_paths.db)
    start = asyncio.create_task(
        client.request("import:v2:start", location.start_params(photos(tmp_path / "card")))
    )
    hashing = await client.notification("import:v2:progress", lambda p: p["status"] == "hashing")
    await stop(client, how)
    with pytest.raises(RpcError):
        await start  # shutting down: the import is resumable, not ended

    client = await spawn_sidecar(sidecar_paths.args())
    result = await client.request("import:v2:resume", [hashing["sessionId"]], timeout=120)
    assert result["status"] == "completed"
    assert result["hashResult"]["totalDuplicates"] == 0
    assert result["finalizationResult"]["totalFinalized"] == 40
    complete = await client.notification(
        "import:v2:complete", lambda c: c["sessionId"] == hashing["sessionId"]
    )
    assert (complete["totalImported"], complete["totalDuplicates"]) == (40, 0)
    assert rows(sidecar_paths.db, "SELECT count(*) FROM imgs") == [(40,)]
    assert len(org_files(sidecar_paths.archive)) == 40
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)


async def test_cancel_while_hashing_counts_no_photo_as_a_duplicate(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths, tmp_path: Path
) -> None:
    """Reported: the cancelled result said all 40 photos were duplicates."""
    location = add_location(sidecar_paths.db)
    start = asyncio.create_task(
        sidecar.request("import:v2:start", location.start_params(photos(tmp_path / "card")))
    )
    hashing = await sidecar.notification("import:v2:progress", lambda p: p["status"] == "hashing")
    assert await sidecar.request("import:v2:cancel", [hashing["sessionId"]]) == {"cancelled": True}
    result = await start
    assert result["status"] == "cancelled"
    assert result["hashResult"]["totalDuplicates"] == 0
    complete = await sidecar.notification("import:v2:complete")
    assert complete["totalDuplicates"] == 0
    assert org_files(sidecar_paths.archive) == []


async def test_every_missing_input_is_counted_past_the_first_thousand(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths, tmp_path: Path
) -> None:
    """Reported: progress said 1005 errors, `import:v2:complete.totalErrors` said 1000 (the count
    was re-read from the result's first 1000 errors)."""
    location = add_location(sidecar_paths.db)
    missing = [str(tmp_path / "gone" / f"IMG_{i:04d}.jpg") for i in range(1005)]
    real = write(tmp_path / "card" / "IMG_9999.jpg", 4096)
    [params] = location.start_params(real)
    params["paths"] = [*missing, str(real)]
    result = await sidecar.request("import:v2:start", [params])
    assert result["status"] == "completed"
    assert len(result["errors"]) == 1000 and result["errorsTruncated"] is True
    assert result["finalizationResult"]["totalFinalized"] == 1
    complete = await sidecar.notification("import:v2:complete")
    assert complete["totalErrors"] == 1005
    last = sidecar.of("import:v2:progress")[-1]
    assert last["errorsFound"] == 1005


async def test_kills_while_copying_never_copy_an_archived_file_again(
    spawn_sidecar: Spawn, sidecar_paths: SidecarPaths, tmp_path: Path
) -> None:
    """Reported: after three kills while copying, a resume copied about a third of the files that were
    already in the archive again. A copy in place with the right content is kept, whatever the
    journal had recorded of it when the kill came."""
    args = [*sidecar_paths.args(), "--hash-workers", "1"]
    client = await spawn_sidecar(args)
    location = add_location(sidecar_paths.db)
    source = photos(tmp_path / "card", 120, 4 << 20)
    session: str | None = None
    in_archive: dict[Path, tuple[int, int]] = {}
    for kill in range(3):
        if kill:
            client = await spawn_sidecar(args)
        if session is None:
            call = client.request("import:v2:start", location.start_params(source), timeout=120)
        else:
            call = client.request("import:v2:resume", [session], timeout=120)
        running = asyncio.create_task(call)
        before = len(org_files(sidecar_paths.archive))

        def copied_more(_: Any, before: int = before) -> bool:
            return len(org_files(sidecar_paths.archive)) >= before + 2

        # The steps overlap: copies are made while the card is still read (status hashing).
        copying = await client.notification(
            "import:v2:progress",
            lambda p: p["status"] in ("hashing", "copying") and copied_more(p),
            timeout=120,
        )
        session = copying["sessionId"]
        await client.kill()
        running.cancel()
        for path in org_files(sidecar_paths.archive):
            in_archive.setdefault(path, stat_key(path))
    assert session is not None and 0 < len(in_archive) < 120

    client = await spawn_sidecar(args)
    result = await client.request("import:v2:resume", [session], timeout=120)
    assert result["status"] == "completed"
    assert result["finalizationResult"]["totalFinalized"] == 120
    again = [p.name for p, key in in_archive.items() if stat_key(p) != key]
    assert again == [], f"{len(again)} of {len(in_archive)} archived files were copied again"
    assert_archive_invariant(sidecar_paths.db, sidecar_paths.archive)
