"""Crash torture (SPEC §6 "Invariant", §10): a real import of a few hundred files, SIGKILLed at
seeded random moments of every step and of the background jobs, then restarted and resumed, and
checked for anything lost, duplicated, half-written or run twice.

Kill points. A kill point is (phase, fraction): phase is a step (`scanning` … `finalizing`) or
`jobs` (the import has completed, its background jobs run), and fraction says how far into it.
Here each step takes 40-200 ms, so progress notifications (at most one per 100 ms) would land
every kill at a step's start. The kill is placed by what the sidecar does to the file system
instead, watched with inotify: it fires on the k-th event of the step (k = fraction × the step's
count) — a source folder listed, then a journal commit (scan; counted from the start, as the walk
can end before its notification is read), a source file opened (hash, copy), an archived file
opened (validate), a write to the database's WAL (finalize: before, inside or after its
transactions) — counted from the step's first progress notification. The steps overlap over
windows of files, so when copy or validate becomes the front step (its status) the earlier windows
are through it: k is then a fraction of what that notification says is left. For `jobs` it fires on the
k-th `asset:*` notification after `import:v2:complete`. The SIGKILL goes to the process group
(pool workers, exiftool, ffmpeg die with it) from the event's callback, within a millisecond.
Each kill records where it landed (the session's status in the database) and the round asserts it
was the planned phase, or, for copy, validate and finalize (the front step only for the last
windows, as the steps overlap), a later one when the step ended before its k-th event.

Rounds. A round is a fresh database and archive importing the same sources (made once per
module), killed once, or killed again in a later phase while the resume runs; then restarted,
resumed to completion and left until no job is pending or processing, then checked. A round
costs 7-10 s here (0.6 s of import, 5-6 s of jobs, the checks). One long session killed again
and again would be cheaper but could not be checked between kills (the invariant holds once an
import or a resume has ended), and every kill after the first would hit a half-redone session.
CI runs `test_crash_and_resume`: six rounds, one per phase, two of them killed twice, a fixed
seed, about 30 s (and the kill during a cancel's cleanup at the end); then six more with
`--read-once always` (a network source: each file read once, hashed while it is staged on the
archive's disk, the staged copy linked in by the copy step, whose kills are placed by the staged
files it opens). `scripts/test-full` runs the `slow` set: `test_crash_and_resume_full`, 24 rounds
and about 30 kill points, plus 12 read-once rounds (`TORTURE_ROUNDS` and `TORTURE_SEED` change
them); a round's test id names its seed, mode and kill points, and `-s` prints where each kill
landed.
"""

import asyncio
import contextlib
import hashlib
import os
import random
import shutil
import signal
from collections import Counter
from collections.abc import Callable, Iterator
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
    org_files,
    rows,
    stat_key,
    write,
)
from tests.support.client import SidecarPaths, SidecarProcess, Spawn, jobs_settled
from tests.support.inotify import IN_DELETE, IN_ISDIR, IN_MODIFY, IN_OPEN, Inotify
from tests.support.media import make_jpeg, make_video

STEPS = ("scanning", "hashing", "copying", "validating", "finalizing")
PHASES = (*STEPS, "jobs")
# Fractions are drawn below these, so a step's k-th event comes before the step ends.
MAX_FRACTION = {
    "scanning": 0.8,
    "hashing": 0.9,
    "copying": 0.9,
    "validating": 0.9,
    "finalizing": 0.9,
    "jobs": 0.95,
}
# What fraction 1.0 of `finalizing` means: its transactions write the WAL 30-80 times (measured),
# the media rows' commit in the second half. inotify merges the writes the test has not read yet, so
# a loaded machine sees far fewer: CI runs beside other work saw fewer than 5, and kills meant for
# finalizing landed after the import. Counting 4 keeps them inside the step, at a coarser spread.
FINALIZE_WAL_WRITES = 4
CHAINED = 0.3  # the share of rounds killed a second time, in a later phase, while resuming
CI_SEED = 20251205
CI_ROUNDS = 6
FULL_SEED = int(os.environ.get("TORTURE_SEED", "6"))
FULL_ROUNDS = int(os.environ.get("TORTURE_ROUNDS", "24"))
ROUND_TIMEOUT_S = 110
TEMP_MARKERS = (".aus-tmp", ".tmp-", ".tmp.mp4")


# --- the sources: one camera card, made once ---------------------------------------------------


@dataclass(frozen=True)
class Card:
    root: Path
    folders: tuple[Path, ...]  # every folder under root, root included
    files: tuple[Path, ...]  # every file the scan imports
    hashes: dict[str, set[str]]  # media kind (MEDIA's keys) -> the hashes that must be archived
    sidecars: int

    @property
    def media_files(self) -> int:
        return sum(len(h) for h in self.hashes.values())

    def expected_jobs(self) -> dict[str, int]:
        images, videos = len(self.hashes["img"]), len(self.hashes["vid"])
        return {
            "exiftool": self.media_files,
            "thumbnail": images + videos,
            "ffprobe": videos,
            "video-proxy": videos,
            "live-photo": 1,
            "bagit": 1,
            "location-stats": 1,
            "gps-enrichment": 1,
        }

    def asset_events(self) -> int:
        """asset:metadata-complete, asset:thumbnail-ready and asset:proxy-ready of one import."""
        jobs = self.expected_jobs()
        return jobs["exiftool"] + jobs["thumbnail"] + jobs["video-proxy"]


def make_card(root: Path) -> Card:
    """200 small real JPEGs in 20 folders (the jobs do real work, quickly), six 12 MiB documents of
    random bytes (copy and validate take a while), two short videos, a duplicate, an .xmp sidecar.

    The documents' folder sorts first, so every byte step starts with a big file: the kill switch
    is armed by the step's notification before the step is a few files in."""
    for i in range(200):
        make_jpeg(root / "DCIM" / f"{100 + i // 10}CARD" / f"IMG_{i:04d}.JPG", 96 + i % 9, 72, seed=i)
    for i in range(6):
        write(root / "00_scans" / f"scan_{i}.txt", 12 << 20, seed=i)
    make_video(root / "video" / "MVI_0001.MP4", 160, 120, seconds=1.0, seed=1)
    make_video(root / "video" / "MVI_0002.MOV", 160, 120, seconds=1.0, rotate=90, seed=2)
    first = root / "DCIM" / "100CARD" / "IMG_0000.JPG"
    shutil.copyfile(first, root / "DCIM" / "119CARD" / "COPY_0000.JPG")
    (root / "DCIM" / "100CARD" / "IMG_0001.xmp").write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>')
    files = tuple(sorted(p for p in root.rglob("*") if p.is_file()))
    for file in files:  # on disk, so each round can drop them from the page cache
        with open(file, "rb+") as handle:
            os.fsync(handle.fileno())
    kinds = {".jpg": "img", ".mp4": "vid", ".mov": "vid", ".txt": "doc"}
    hashes: dict[str, set[str]] = {kind: set() for kind in MEDIA}
    for file in files:
        kind = kinds.get(file.suffix.lower())
        if kind is not None:
            hashes[kind].add(hash16(file))
    folders = (root, *sorted(p for p in root.rglob("*") if p.is_dir()))
    return Card(root, folders, files, hashes, sidecars=1)


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Card:
    return make_card(tmp_path_factory.mktemp("torture") / "card")


def drop_page_cache(files: tuple[Path, ...]) -> None:
    """So the hash step reads the medium, as an import from a card does."""
    for file in files:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


# --- the plan: seeded rounds of kill points -------------------------------------------------------


@dataclass(frozen=True)
class KillPoint:
    phase: str
    fraction: float

    def __str__(self) -> str:
        return f"{self.phase}@{self.fraction:.2f}"


@dataclass(frozen=True)
class Round:
    seed: int
    index: int
    points: tuple[KillPoint, ...]
    read_once: bool = False  # `--read-once always`: as for a network share, hash while staging

    def __str__(self) -> str:
        mode = "-read-once" if self.read_once else ""
        return f"seed{self.seed}{mode}-r{self.index:02d}-" + "+".join(map(str, self.points))


def plan(seed: int, count: int, read_once: bool = False) -> list[Round]:
    """`count` rounds; their first kill points go through the phases in shuffled blocks of six
    (every phase equally often), some rounds get a second one in a later phase."""
    rng = random.Random(seed)
    phases: list[str] = []
    while len(phases) < count:
        block = list(PHASES)
        rng.shuffle(block)
        phases += block
    rounds = []
    for index, phase in enumerate(phases[:count]):
        points = [KillPoint(phase, _fraction(rng, phase))]
        later = PHASES[PHASES.index(phase) + 1 :]
        if later and rng.random() < CHAINED:
            second = rng.choice(later)
            points.append(KillPoint(second, _fraction(rng, second)))
        rounds.append(Round(seed, index, tuple(points), read_once))
    return rounds


def _fraction(rng: random.Random, phase: str) -> float:
    """Uniform, but squared for `jobs`: a fifth of its kills come in the first 3 %, while the
    location's bag is written."""
    fraction = rng.uniform(0, 1)
    return round(MAX_FRACTION[phase] * (fraction**2 if phase == "jobs" else fraction), 2)


# --- one kill ---------------------------------------------------------------------------------------


@dataclass
class Kill:
    """Where a kill landed: the session's status in the database when it died (`jobs` once the
    import completed), the jobs it interrupted, and what it must not disturb: copies already made
    (a resume validates them where they are; it never copies a validated file again)."""

    point: KillPoint
    landed: str
    journal: dict[str, int]  # the session's files per journal state
    interrupted: list[str]
    kept: dict[Path, tuple[int, int]]

    def __str__(self) -> str:
        files = ", ".join(f"{n} {state}" for state, n in sorted(self.journal.items())) or "no files yet"
        jobs = f", interrupting {'/'.join(sorted(self.interrupted))}" if self.interrupted else ""
        return f"{self.point} landed in {self.landed} ({files}){jobs}"


def step_rank(status: str) -> int:
    return STEPS.index(status) if status in STEPS else len(STEPS)


class KillSwitch:
    """SIGKILL to the sidecar's process group on the k-th event of the armed phase."""

    def __init__(self, client: SidecarProcess) -> None:
        self.client = client
        self.fired = False
        self._remaining = 0
        self._match: Callable[[Path, str, int], bool] | None = None
        self.inotify = Inotify(self._event)

    def fire(self) -> None:
        if not self.fired:
            self.fired = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.client.process.pid, signal.SIGKILL)

    def arm(self, events: int, match: Callable[[Path, str, int], bool]) -> None:
        if events <= 0:
            self.fire()
            return
        self._remaining, self._match = events, match

    def _event(self, folder: Path, name: str, mask: int) -> None:
        if self._match is None or self.fired or not self._match(folder, name, mask):
            return
        self._remaining -= 1
        if self._remaining <= 0:
            self.fire()


def _source_folder_listed(_: Path, name: str, mask: int) -> bool:
    return not name and bool(mask & IN_ISDIR)


def _file_opened(_: Path, name: str, mask: int) -> bool:
    return bool(name) and not mask & IN_ISDIR


async def kill_at(
    client: SidecarProcess,
    point: KillPoint,
    card: Card,
    paths: SidecarPaths,
    session: str | None,
    read_once: bool,
) -> None:
    """Return once the sidecar is dead, killed at `point` (or where the phase ran out, or when the
    import ended before its phase came)."""
    switch = KillSwitch(client)
    rank = PHASES.index(point.phase)

    def ended() -> bool:
        return any(session in (None, p["sessionId"]) for p in client.of("import:v2:complete"))

    def later_step() -> bool:
        return ended() or any(step_rank(p["status"]) > rank for p in client.of("import:v2:progress"))

    try:
        if point.phase == "scanning":
            # The walk can be over before its notification is read: count from the start (the first
            # folder listed means the session is scanning).
            events = max(1, round(point.fraction * _phase_events("scanning", card)))
            switch.arm(events, _watch_scan(switch.inotify, card, paths))
            await client.wait_for(lambda: switch.fired or later_step(), timeout=60)
        elif point.phase == "jobs":
            await client.wait_for(ended, timeout=60)
            events = round(point.fraction * card.asset_events())
            assets = ("asset:metadata-complete", "asset:thumbnail-ready", "asset:proxy-ready")

            def reached() -> bool:
                return sum(m in assets for m, _ in client.notifications) >= events

            waits = {
                asyncio.create_task(client.wait_for(reached, 60)),
                # After an earlier kill some jobs are done already: their events never come again.
                asyncio.create_task(jobs_settled(client, 60)),
            }
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
            next(iter(done)).result()  # a timeout is a failure, not a kill point
        else:
            started = await client.notification(
                "import:v2:progress", lambda p: step_rank(p["status"]) >= rank, timeout=60
            )
            if started["status"] == point.phase:
                match = _watch(switch.inotify, point.phase, paths, card, read_once)
                events = _phase_events(point.phase, card)
                if point.phase in ("copying", "validating"):
                    # The steps overlap: once a step is the front one (its status), the earlier windows
                    # are through it already and only what its progress says is left comes.
                    events = min(events, started["filesTotal"] - started["filesProcessed"])
                switch.arm(round(point.fraction * events), match)
                await client.wait_for(lambda: switch.fired or later_step(), timeout=60)
        switch.fire()
        await client.kill()
    finally:
        switch.inotify.close()


def _watch_scan(inotify: Inotify, card: Card, paths: SidecarPaths) -> Callable[[Path, str, int], bool]:
    """The scan's events: each source folder listed, then each write to the WAL (the journal rows
    of each folder) once the walk has begun."""
    for folder in card.folders:
        inotify.watch(folder, IN_OPEN)
    inotify.watch(paths.db.parent, IN_MODIFY)
    wal = f"{paths.db.name}-wal"
    walking = False

    def match(folder: Path, name: str, mask: int) -> bool:
        nonlocal walking
        if folder == paths.db.parent:
            return walking and name == wal
        walking = walking or _source_folder_listed(folder, name, mask)
        return _source_folder_listed(folder, name, mask)

    return match


def _watch(
    inotify: Inotify, phase: str, paths: SidecarPaths, card: Card, read_once: bool
) -> Callable[[Path, str, int], bool]:
    if phase == "copying" and read_once:
        # The copy links in what hashing staged: each staged file is opened, the sources are not.
        for folder in (paths.archive / ".aus-staging").glob("*"):
            inotify.watch(folder, IN_OPEN)
        return _file_opened
    if phase in ("hashing", "copying"):
        for folder in card.folders:
            inotify.watch(folder, IN_OPEN)
        return _file_opened
    if phase == "validating":
        for folder in paths.archive.glob("locations/*/*/org-*"):
            inotify.watch(folder, IN_OPEN)
        return _file_opened
    assert phase == "finalizing"
    inotify.watch(paths.db.parent, IN_MODIFY)
    wal = f"{paths.db.name}-wal"
    return lambda _, name, __: name == wal


def _phase_events(phase: str, card: Card) -> int:
    return {
        # Every folder listed, then the journal rows of the first half of them (one commit each;
        # inotify merges writes it has not handed out yet, so the WAL's are counted sparingly).
        "scanning": len(card.folders) + len(card.folders) // 2,
        "hashing": len(card.files),
        "copying": len(card.files) - 1,  # the duplicate is not copied
        "validating": len(card.files) - 1,
        "finalizing": FINALIZE_WAL_WRITES,
    }[phase]


def what_a_kill_left(paths: SidecarPaths, point: KillPoint, session: str) -> Kill:
    [(status,)] = rows(paths.db, "SELECT status FROM import_sessions WHERE session_id = ?", (session,))
    copies = rows(
        paths.db,
        "SELECT target FROM aus_import_files WHERE session_id = ? AND target IS NOT NULL"
        " AND state IN ('copied', 'validated', 'finalized')",
        (session,),
    )
    journal = rows(
        paths.db,
        "SELECT state, count(*) FROM aus_import_files WHERE session_id = ? GROUP BY state",
        (session,),
    )
    interrupted = [q for (q,) in rows(paths.db, "SELECT queue FROM jobs WHERE status = 'processing'")]
    # Also what a killed copy page had renamed into place: a resume keeps a target that already
    # has the right content (SPEC §6), it does not write it again.
    kept = {p: stat_key(p) for p in [*org_files(paths.archive), *(Path(t) for (t,) in copies)]}
    return Kill(point, "jobs" if status == "completed" else status, dict(journal), interrupted, kept)


# --- a round ------------------------------------------------------------------------------------


async def torture_round(spawn_sidecar: Spawn, tmp_path: Path, card: Card, plan_: Round) -> list[Kill]:
    paths = SidecarPaths(db=tmp_path / "au-archive.db", archive=tmp_path / "archive")
    paths.archive.mkdir()
    args = [*paths.args(), "--hash-workers", "1", "--read-once", "always" if plan_.read_once else "never"]
    client = await spawn_sidecar(args)
    location = add_location(paths.db)
    drop_page_cache(card.files)
    kills: list[Kill] = []

    request: asyncio.Task[Any] | None = asyncio.create_task(
        client.request("import:v2:start", location.start_params(card.root), 120)
    )
    session: str | None = None
    for point in plan_.points:
        await kill_at(client, point, card, paths, session, plan_.read_once)
        if request is not None:
            request.cancel()
        if session is None:
            [(session,)] = rows(paths.db, "SELECT session_id FROM import_sessions")
        kills.append(what_a_kill_left(paths, point, session))
        client = await spawn_sidecar(args)
        if session not in [s["sessionId"] for s in await client.request("import:v2:resumable")]:
            request = None  # completed before the kill: nothing to resume, its jobs go on
            break
        request = asyncio.create_task(client.request("import:v2:resume", [session], 120))
    if request is not None:
        result = await request
        assert result["status"] == "completed", result
        assert (await client.notification("import:v2:complete"))["status"] == "completed"
    await jobs_settled(client)

    for kill in kills:
        print(f"{plan_}: {kill}")  # shown with -s, and when the round fails
    assert session is not None
    assert_survived(paths, location, card, session, kills)
    for kill in kills:
        # The steps overlap, so copy, validate and finalize are the front step (their status) only for
        # the last windows, often a fraction of a second: a kill meant for them may find the step
        # done and land later (the round still checks what it left). So may a kill meant for the
        # scan, whose walk of a card takes tens of milliseconds: on a loaded machine this process
        # reads the event and sends the kill after it (seen: scanning@0.55 landed in hashing).
        # Kills while the card is read land in their pages of earlier windows; the stop torture
        # places them at every commit, the scan's too, exactly.
        planned, landed = kill.point.phase, kill.landed
        ran_out = planned in ("scanning", "copying", "validating", "finalizing") and step_rank(
            landed
        ) > step_rank(planned)
        assert landed == planned or ran_out, f"{plan_}: the kill at {kill.point} landed in {landed}"
    return kills


def assert_survived(
    paths: SidecarPaths, location: LocationFixture, card: Card, session: str, kills: list[Kill]
) -> None:
    db, archive = paths.db, paths.archive
    # The import: completed once, every file archived once, nothing of the kill left over.
    assert rows(db, "SELECT status, can_resume FROM import_sessions") == [("completed", 0)]
    assert_archive_invariant(db, archive)
    for kind, (table, hash_col, _) in MEDIA.items():
        archived = [h for (h,) in rows(db, f"SELECT {hash_col} FROM {table}")]
        assert len(archived) == len(set(archived)), f"duplicate {table} rows"
        assert set(archived) == card.hashes[kind], f"{table}: lost or extra files"
    [(import_id,)] = rows(db, "SELECT import_id FROM aus_import_sessions WHERE session_id = ?", (session,))
    counts = (len(card.hashes["img"]), len(card.hashes["vid"]), len(card.hashes["doc"]), 0)
    assert rows(db, "SELECT import_id, img_count, vid_count, doc_count, map_count FROM imports") == [
        (import_id, *counts)
    ], "one imports row with the import's counts"
    assert len(org_files(archive)) == card.media_files + card.sidecars
    for path, key in (item for kill in kills for item in kill.kept.items()):
        assert stat_key(path) == key, f"{path} was copied before a kill and copied again after it"
    leftovers = [p for p in archive.rglob("*") if any(m in p.name for m in TEMP_MARKERS)]
    assert not leftovers, f"temp files left: {leftovers}"
    assert not (archive / ".aus-staging").exists() or not any((archive / ".aus-staging").iterdir())

    # The jobs: each queued exactly once and completed, none dead.
    by_queue = rows(db, "SELECT queue, status, count(*) FROM jobs GROUP BY queue, status")
    assert {q: n for q, s, n in by_queue if s == "completed"} == card.expected_jobs(), by_queue
    assert all(s == "completed" for _, s, _ in by_queue), by_queue
    assert rows(db, "SELECT count(*) FROM job_dead_letter") == [(0,)]
    for table, prefix in (("imgs", "img"), ("vids", "vid"), ("docs", "doc")):
        assert rows(db, f"SELECT {prefix}loc FROM {table} WHERE meta_exiftool IS NULL") == [], table
    assert rows(db, "SELECT vidloc FROM vids WHERE meta_ffmpeg IS NULL") == []
    # Each output exactly once: the thumbnails the rows name and nothing else; one proxy per video.
    thumbs: set[Path] = set()
    for table in ("imgs", "vids"):
        for sm, lg, preview in rows(db, f"SELECT thumb_path_sm, thumb_path_lg, preview_path FROM {table}"):
            assert sm and lg and preview, f"{table}: a row without its thumbnails"
            thumbs |= {Path(sm), Path(lg), Path(preview)}
    on_disk = {p for p in (archive / ".thumbnails").rglob("*") if p.is_file()}
    assert on_disk == thumbs, f"thumbnails without a row: {on_disk - thumbs}, missing: {thumbs - on_disk}"
    proxies = rows(db, "SELECT vidhash, proxy_path FROM video_proxies")
    assert {h for h, _ in proxies} == card.hashes["vid"] and len(proxies) == len(card.hashes["vid"])
    hidden = {p for p in archive.glob("locations/*/*/org-vid-*/.*")}
    assert hidden == {Path(p) for _, p in proxies}, hidden
    # The bag lists every archived file once, with its checksum.
    assert rows(db, "SELECT bag_status FROM locs WHERE locid = ?", (location.locid,)) == [("valid",)]
    [bag] = archive.glob(f"locations/*/*/org-doc-{location.loc12}/_archive")
    listed = dict(_manifest(bag / "manifest-sha256.txt"))
    assert sorted(listed) == sorted(org_files(archive)), "the bag's payload is not the archive's"
    for file, digest in listed.items():
        assert hashlib.sha256(file.read_bytes()).hexdigest() == digest, f"bag checksum of {file}"
    # The database itself.
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    assert rows(db, "PRAGMA foreign_key_check") == []


def _manifest(manifest: Path) -> Iterator[tuple[Path, str]]:
    for line in manifest.read_text().splitlines():
        digest, relative = line.split(maxsplit=1)
        yield (manifest.parent / relative).resolve(), digest


# --- the tests ------------------------------------------------------------------------------------

CI_PLAN = [*plan(CI_SEED, CI_ROUNDS), *plan(CI_SEED + 1, CI_ROUNDS, read_once=True)]
FULL_PLAN = [*plan(FULL_SEED, FULL_ROUNDS), *plan(FULL_SEED + 1, FULL_ROUNDS // 2, read_once=True)]


@pytest.mark.timeout(ROUND_TIMEOUT_S)
@pytest.mark.parametrize("plan_", CI_PLAN, ids=str)
async def test_crash_and_resume(spawn_sidecar: Spawn, tmp_path: Path, card: Card, plan_: Round) -> None:
    await torture_round(spawn_sidecar, tmp_path, card, plan_)


@pytest.mark.slow
@pytest.mark.timeout(ROUND_TIMEOUT_S)
@pytest.mark.parametrize("plan_", FULL_PLAN, ids=str)
async def test_crash_and_resume_full(spawn_sidecar: Spawn, tmp_path: Path, card: Card, plan_: Round) -> None:
    await torture_round(spawn_sidecar, tmp_path, card, plan_)


def test_the_plans_cover_every_phase() -> None:
    """The CI subset kills once in every phase (and again in some); the full set at least 20 times,
    each phase as often as the others."""
    for read_once in (False, True):
        ci = [r for r in CI_PLAN if r.read_once is read_once]
        assert sorted(r.points[0].phase for r in ci) == sorted(PHASES)
    full = [r for r in FULL_PLAN if not r.read_once]
    first = Counter(r.points[0].phase for r in full)
    assert set(first) == set(PHASES) and min(first.values()) == FULL_ROUNDS // len(PHASES)
    assert sum(len(r.points) for r in full) >= 20 or FULL_ROUNDS < 20
    assert plan(FULL_SEED, FULL_ROUNDS) == full  # seeded: the same rounds every time


async def test_a_kill_while_a_cancel_removes_its_copies_leaves_no_copy_without_its_row(
    spawn_sidecar: Spawn, tmp_path: Path, card: Card
) -> None:
    """Cancelled while the card is read and earlier windows are copied and validated, killed at the
    first copy the cancel removes: the session is either cancelled with only its committed files
    left, or resumable, and then its resume archives every file (a cancel recorded before its
    copies were gone left them without rows for good)."""
    paths = SidecarPaths(db=tmp_path / "au-archive.db", archive=tmp_path / "archive")
    paths.archive.mkdir()
    args = [*paths.args(), "--hash-workers", "1"]
    client = await spawn_sidecar(args)
    location = add_location(paths.db)
    drop_page_cache(card.files)
    start = asyncio.create_task(client.request("import:v2:start", location.start_params(card.root), 120))
    copying = await client.notification(
        "import:v2:progress", lambda p: p["status"] in ("hashing", "copying") and p["percent"] > 45
    )
    session = copying["sessionId"]
    switch = KillSwitch(client)
    try:
        for folder in paths.archive.glob("locations/*/*/org-*"):
            switch.inotify.watch(folder, IN_DELETE)
        switch.arm(1, lambda _, name, __: not name.startswith("."))  # a copy, not a temp file
        cancel = asyncio.create_task(client.request("import:v2:cancel", [session]))
        await client.wait_for(lambda: switch.fired or client.of("import:v2:complete"), timeout=30)
        switch.fire()
        await client.kill()
    finally:
        switch.inotify.close()
    for request in (start, cancel):
        request.cancel()
    assert len(org_files(paths.archive)) < card.media_files + card.sidecars, "the kill came before the cancel"

    client = await spawn_sidecar(args)
    if session in [s["sessionId"] for s in await client.request("import:v2:resumable")]:
        result = await client.request("import:v2:resume", [session], 120)
        assert result["status"] == "completed" and result["errors"] == [], result
        for kind, (table, hash_col, _) in MEDIA.items():
            assert {h for (h,) in rows(paths.db, f"SELECT {hash_col} FROM {table}")} == card.hashes[kind]
    else:
        assert rows(paths.db, "SELECT status FROM import_sessions") == [("cancelled",)]
        archived = sum(
            rows(paths.db, f"SELECT count(*) FROM {table}")[0][0] for table, _, _ in MEDIA.values()
        )
        assert len(org_files(paths.archive)) <= archived + card.sidecars, "a cancel left copies without rows"
    assert_archive_invariant(paths.db, paths.archive)
