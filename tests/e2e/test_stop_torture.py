"""Stop torture, checked by outcome (SPEC §6 "Invariant"): every way the app stops the sidecar —
stdin closed, `sidecar:shutdown`, SIGTERM, `import:v2:cancel`, kill -9 — at a seeded moment of
every step, before, inside or after a page commit; then the sidecar is restarted and the import
resumed (for a cancel: imported afresh). The archive, the rows, the jobs and every count must end
exactly as an uninterrupted import of the same card left them.

The moment is exact: the sidecar runs with `AUS_FAILPOINTS=<step>.commit.<when>=<nth>` and pauses
there (sidecar/pipeline/failpoints.py) until the stop arrives; a kill needs no release. Pages hold
8 files (`--page-files 8`), so every step spans several pages and a page is in flight when the
step stops. CI runs a seeded sample covering each stop kind and each step (`test_stop_and_resume`);
`scripts/test-full` runs the whole matrix (`test_stop_and_resume_full`).
"""

import asyncio
import random
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.archive import (
    MEDIA,
    LocationFixture,
    add_location,
    assert_archive_invariant,
    hash16,
    rows,
    stat_key,
    write,
)
from tests.support.client import RpcError, SidecarPaths, SidecarProcess, Spawn
from tests.support.media import make_jpeg

KINDS = ("stdin-eof", "shutdown", "sigterm", "cancel", "kill")
STEPS = ("scan", "hash", "copy", "validate", "finalize")
WHEN = ("before", "inside", "after")
PAGE_FILES = 8
LOCID = "0f3c2a9e-5b7d-4e61-8a2f-9c4d1e7b3a60"
CI_SEED = 20261203
CI_CASES = 12
# Commits each step makes of this card (scan: one per folder; the others: one per page): the nth
# commit a stop lands on is drawn below these.
COMMITS = {"scan": 3, "hash": 5, "copy": 5, "validate": 5, "finalize": 5}


@dataclass(frozen=True)
class Card:
    root: Path
    inputs: tuple[str, ...]  # what the import is given: the card and a path that does not exist


def make_card(root: Path) -> Card:
    """47 real JPEGs in three folders (two with an .xmp sidecar), two duplicates of them under other
    names, a file of an unknown type and an AppleDouble file (both skipped: never imported)."""
    for i in range(47):
        make_jpeg(root / "DCIM" / f"{100 + i // 20}CARD" / f"IMG_{i:04d}.JPG", 48 + i % 5, 32, seed=i)
    (root / "DCIM" / "100CARD" / "IMG_0003.xmp").write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>')
    (root / "DCIM" / "101CARD" / "IMG_0021.JPG.xmp").write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>')
    shutil.copyfile(root / "DCIM" / "100CARD" / "IMG_0000.JPG", root / "DCIM" / "102CARD" / "COPY_0000.JPG")
    shutil.copyfile(root / "DCIM" / "101CARD" / "IMG_0025.JPG", root / "DCIM" / "102CARD" / "COPY_0025.JPG")
    write(root / "DCIM" / "102CARD" / "notes.xyz", 100)
    write(root / "DCIM" / "100CARD" / "._IMG_0001.JPG", 4096)
    return Card(root, (str(root), str(root.parent / "gone" / "IMG_9999.JPG")))


@dataclass(frozen=True)
class Case:
    kind: str
    step: str
    when: str
    nth: int

    @property
    def failpoint(self) -> str:
        return f"{self.step}.commit.{self.when}"

    def __str__(self) -> str:
        return f"{self.kind}-{self.failpoint}={self.nth}"


def every_case(seed: int) -> list[Case]:
    rng = random.Random(seed)
    return [
        Case(kind, step, when, rng.randint(1, COMMITS[step] - 1))
        for kind in KINDS
        for step in STEPS
        for when in WHEN
    ]


def ci_sample(seed: int, count: int) -> list[Case]:
    """`count` cases in which every stop kind and every step appear."""
    rng = random.Random(seed)
    cases = every_case(seed)
    while True:
        sample = rng.sample(cases, count)
        if {c.kind for c in sample} == set(KINDS) and {c.step for c in sample} == set(STEPS):
            return sample


# --- what an import left behind -----------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    archive: dict[str, str]  # archive-relative path -> hash, of everything the import archived
    rows: dict[str, set[tuple[Any, ...]]]  # media table -> (hash, archive-relative path, name, source)
    jobs: dict[str, int]  # queue -> jobs queued
    counts: dict[str, int]
    skipped: tuple[tuple[str, str], ...]  # (source path, reason), as the result lists them


def outcome(paths: SidecarPaths, result: dict[str, Any], complete: dict[str, Any]) -> Outcome:
    db, archive = paths.db, paths.archive
    files = {
        str(p.relative_to(archive)): hash16(p)
        for p in archive.glob("locations/*/*/org-*/*")
        if p.is_file() and not p.name.startswith(".") and "_archive" not in p.parts
    }
    media_rows = {
        table: {
            (h, str(Path(loc).relative_to(archive)), name, source)
            for h, loc, name, source in rows(
                db, f"SELECT {hash_col}, {loc_col}, {table[:3]}namo, {table[:3]}loco FROM {table}"
            )
        }
        for table, hash_col, loc_col in MEDIA.values()
    }
    jobs = dict(rows(db, "SELECT queue, count(*) FROM jobs GROUP BY queue"))
    skipped = tuple((s["path"], s["reason"]) for s in result["skipped"])
    return Outcome(files, media_rows, jobs, counts(result, complete), skipped)


def counts(result: dict[str, Any], complete: dict[str, Any]) -> dict[str, int]:
    return {
        "files": result["scanResult"]["totalFiles"],
        "bytes": result["scanResult"]["totalBytes"],
        "skipped": result["scanResult"]["skipped"],
        "duplicates": result["hashResult"]["totalDuplicates"],
        "hash errors": result["hashResult"]["totalErrors"],
        "copy errors": result["copyResult"]["totalErrors"],
        "invalid": result["validationResult"]["totalInvalid"],
        "finalized": result["finalizationResult"]["totalFinalized"],
        "finalize errors": result["finalizationResult"]["totalErrors"],
        "errors listed": len(result["errors"]),
        "complete: imported": complete["totalImported"],
        "complete: duplicates": complete["totalDuplicates"],
        "complete: errors": complete["totalErrors"],
    }


def assert_same_files(actual: Outcome, expected: Outcome) -> None:
    missing = expected.archive.keys() - actual.archive.keys()
    extra = actual.archive.keys() - expected.archive.keys()
    assert not missing and not extra, f"archive: missing {sorted(missing)}, extra {sorted(extra)}"
    assert actual.archive == expected.archive, "archived files with other contents"
    for table, expected_rows in expected.rows.items():
        assert actual.rows[table] == expected_rows, (
            f"{table}: missing {expected_rows - actual.rows[table]},"
            f" extra {actual.rows[table] - expected_rows}"
        )


def archived_now(archive: Path) -> dict[Path, tuple[int, int]]:
    return {
        p: stat_key(p)
        for p in archive.glob("locations/*/*/org-*/*")
        if p.is_file() and not p.name.startswith(".") and "_archive" not in p.parts
    }


def assert_nothing_left_over(archive: Path) -> None:
    """Beyond the archive invariant (no temp file of the import): no staged copy."""
    staging = archive / ".aus-staging"
    assert not staging.exists() or not any(staging.iterdir()), "staged copies left"


# --- running imports ---------------------------------------------------------------------------


def sidecar_args(paths: SidecarPaths) -> list[str]:
    return [*paths.args(), "--page-files", str(PAGE_FILES), "--hash-workers", "2"]


async def imported(
    client: SidecarProcess, location: LocationFixture, card: Card
) -> tuple[dict[str, Any], dict[str, Any]]:
    [params] = location.start_params()
    result = await client.request("import:v2:start", [{**params, "paths": list(card.inputs)}], timeout=120)
    complete = await client.notification(
        "import:v2:complete", lambda c: c["sessionId"] == result["sessionId"]
    )
    return result, complete


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Card:
    return make_card(tmp_path_factory.mktemp("stops") / "card")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, card: Card) -> Outcome:
    """The card imported once without a stop: what every stopped import must end as."""

    async def run() -> Outcome:
        root = tmp_path_factory.mktemp("uninterrupted")
        (root / "archive").mkdir()
        paths = SidecarPaths(root / "au-archive.db", root / "archive")
        client = await SidecarProcess.spawn(sidecar_args(paths))
        try:
            await client.notification("sidecar:ready")
            location = add_location(paths.db, locid=LOCID)
            result, complete = await imported(client, location, card)
            assert result["status"] == "completed", result
            return outcome(paths, result, complete)
        finally:
            await client.kill()

    done = asyncio.run(run())
    # The card as designed: nothing about it may make the comparison vacuous.
    assert (
        done.counts["duplicates"] == 2
        and done.counts["skipped"] == 2  # notes.xyz and the AppleDouble file, each named with its reason
        and len(done.skipped) == 2
        and done.counts["complete: errors"] == 1
    )
    assert sum(len(r) for r in done.rows.values()) == 47 and len(done.archive) == 49  # + two sidecars
    return done


async def stop(client: SidecarProcess, kind: str, session: str) -> None:
    if kind == "kill":
        await client.kill()
    elif kind == "stdin-eof":
        await client.close_stdin()
    elif kind == "shutdown":
        assert await client.request("sidecar:shutdown") == {"ok": True}
    elif kind == "sigterm":
        client.signal(signal.SIGTERM)
    elif kind == "cancel":
        assert await client.request("import:v2:cancel", [session]) == {"cancelled": True}
        return
    if kind != "kill":
        assert await client.wait_exit(10) == 0


async def stop_and_resume(
    spawn_sidecar: Spawn, tmp_path: Path, card: Card, expected: Outcome, case: Case
) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    paths = SidecarPaths(tmp_path / "au-archive.db", archive)
    client = await spawn_sidecar(sidecar_args(paths), env={"AUS_FAILPOINTS": f"{case.failpoint}={case.nth}"})
    location = add_location(paths.db, locid=LOCID)
    [params] = location.start_params()
    start = asyncio.create_task(
        client.request("import:v2:start", [{**params, "paths": list(card.inputs)}], timeout=120)
    )
    await client.logged("failpoint.reached")
    [(session,)] = rows(paths.db, "SELECT session_id FROM import_sessions")
    copied_before_stop = archived_now(archive)
    await stop(client, case.kind, session)

    if case.kind == "cancel":
        cancelled = await start
        assert cancelled["status"] == "cancelled"
        # Never a false duplicate: at most the card's own two, whatever the moment.
        assert cancelled["hashResult"]["totalDuplicates"] <= expected.counts["duplicates"]
        finalized_before = cancelled["finalizationResult"]["totalFinalized"]
        assert_archive_invariant(paths.db, archive)
        assert await client.request("import:v2:resumable") == []
        result, complete = await imported(client, location, card)
        # Afresh: what the cancelled import had already committed is now a duplicate, and only that.
        again = outcome(paths, result, complete)
        shifted = dict(expected.counts)
        for key in ("finalized", "complete: imported"):
            shifted[key] -= finalized_before
        for key in ("duplicates", "complete: duplicates"):
            shifted[key] += finalized_before
        assert again.counts == shifted
        assert_same_files(again, expected)
        return

    if case.kind == "kill":
        start.cancel()
    else:
        with pytest.raises(RpcError) as error:
            await start
        assert error.value.data["kind"] == "shutting_down"
    client = await spawn_sidecar(sidecar_args(paths))
    [resumable] = await client.request("import:v2:resumable")
    assert resumable["sessionId"] == session
    result = await client.request("import:v2:resume", [session], timeout=120)
    complete = await client.notification("import:v2:complete", lambda c: c["sessionId"] == session)
    assert result["status"] == "completed", result
    resumed = outcome(paths, result, complete)
    assert resumed.counts == expected.counts
    assert_same_files(resumed, expected)
    assert resumed.jobs == expected.jobs, "jobs queued twice or lost"
    recopied = [p.name for p, key in copied_before_stop.items() if stat_key(p) != key]
    assert recopied == [], f"copied again after the stop: {recopied}"
    assert_archive_invariant(paths.db, archive)
    assert_nothing_left_over(archive)
    assert rows(paths.db, "SELECT count(*) FROM imports") == [(1,)]


@pytest.mark.parametrize("case", ci_sample(CI_SEED, CI_CASES), ids=str)
async def test_stop_and_resume(
    spawn_sidecar: Spawn, tmp_path: Path, card: Card, uninterrupted: Outcome, case: Case
) -> None:
    await stop_and_resume(spawn_sidecar, tmp_path, card, uninterrupted, case)


@pytest.mark.slow
@pytest.mark.parametrize("case", every_case(CI_SEED), ids=str)
async def test_stop_and_resume_full(
    spawn_sidecar: Spawn, tmp_path: Path, card: Card, uninterrupted: Outcome, case: Case
) -> None:
    await stop_and_resume(spawn_sidecar, tmp_path, card, uninterrupted, case)


def test_the_sample_covers_every_stop_kind_and_step() -> None:
    sample = ci_sample(CI_SEED, CI_CASES)
    assert {c.kind for c in sample} == set(KINDS) and {c.step for c in sample} == set(STEPS)
    assert len(every_case(CI_SEED)) == len(KINDS) * len(STEPS) * len(WHEN)
