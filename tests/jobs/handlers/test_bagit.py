"""The bagit handler over real files, a real SQLite file and real tools: `sha256sum -c` run in the
bag, the reference `bagit` library on the bag rebased onto `data/`, incremental runs, losses, a
run stopped between two tag files, hostile locations; and once through a real import."""

import asyncio
import dataclasses
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import tracemalloc
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bagit as bagit_library
import pytest

from sidecar import __version__, fs
from sidecar.errors import PermanentFailure
from sidecar.jobs.handlers import bagit as module
from sidecar.jobs.handlers.bagit import (
    BAG_INFO,
    BAGIT_TXT,
    MANIFEST,
    TAGMANIFEST,
    BagItJobError,
    BagReport,
    Stopped,
    bagit,
    parse_manifest,
    render_manifest,
    sha256_file,
)
from sidecar.jobs.store import Queue
from tests.support.archive import LocationFixture, add_location, add_media_row, hash16, is_iso, rows, write
from tests.support.client import SidecarPaths, SidecarProcess
from tests.support.jobs import ContextMaker, RecordedEvents
from tests.support.processes import lowered, this_thread

KIND = {"image": "img", "video": "vid", "document": "doc", "map": "map"}
TAG_FILES = (MANIFEST, BAGIT_TXT, BAG_INFO, TAGMANIFEST)


class Location:
    """A location's folder in the archive, with helpers to archive files as an import would."""

    def __init__(self, db_path: Path, archive: Path, fixture: LocationFixture, folder: Path) -> None:
        self.db_path = db_path
        self.fixture = fixture
        self.folder = folder
        self.bag = folder / f"org-doc-{fixture.loc12}" / "_archive"

    def org(self, kind: str) -> Path:
        return self.folder / f"org-{kind}-{self.fixture.loc12}"

    def add(self, media_type: str, ext: str, data: bytes | int, seed: int = 0) -> Path:
        """A file archived under its content name, with its media row."""
        staged = write(self.folder.parent / "staging" / f"{seed}-{media_type}{ext}", data, seed)
        target = self.org(KIND[media_type]) / f"{hash16(staged)}{ext}"
        target.parent.mkdir(parents=True, exist_ok=True)
        staged.rename(target)
        add_media_row(self.db_path, media_type, target, self.fixture.locid)
        return target

    def add_sidecar(self, target: Path, data: bytes, state: str = "finalized") -> Path:
        """A sidecar file in the archive and its import-journal row."""
        write(target, data)
        session = f"session-{target.name}"
        with closing(sqlite3.connect(self.db_path, isolation_level=None)) as db:
            db.execute(
                "INSERT INTO import_sessions (session_id, locid, status, source_paths, started_at)"
                " VALUES (?, ?, 'completed', '[]', '2025-01-01T00:00:00.000Z')",
                (session, self.fixture.locid),
            )
            db.execute(
                "INSERT INTO aus_import_files (session_id, file_id, source, size, media_type, extension,"
                " state, hash, target) VALUES (?, 1, ?, ?, 'sidecar', ?, ?, ?, ?)",
                (session, b"/src/x", len(data), target.suffix, state, target.stem, str(target)),
            )
        return target

    def manifest(self) -> dict[str, str]:
        """path -> sha256 as the bag lists them."""
        lines = (self.bag / MANIFEST).read_text().splitlines()
        return {path: digest for digest, path in (line.split("  ", 1) for line in lines)}

    def tags(self) -> dict[str, bytes]:
        return {name: (self.bag / name).read_bytes() for name in TAG_FILES if (self.bag / name).exists()}

    def status(self) -> tuple[Any, ...]:
        [row] = rows(
            self.db_path,
            "SELECT bag_status, bag_last_verified, bag_last_error FROM locs WHERE locid = ?",
            (self.fixture.locid,),
        )
        return row


@pytest.fixture
def place(db_path: Path, archive: Path, location: LocationFixture) -> Location:
    folder = archive / "locations" / "NY-factory" / f"old-factory-{location.loc12}"
    return Location(db_path, archive, location, folder)


async def run(make_context: ContextMaker, locid: str) -> dict[str, Any]:
    result = await bagit(make_context(Queue.BAGIT, {"locid": locid, "sessionId": "s-1"}))
    assert result is not None
    return result


def sha256sum_check(bag: Path, manifest: str = MANIFEST) -> subprocess.CompletedProcess[str]:
    """`sha256sum -c` (or macOS's `shasum -a 256 -c`) run inside the bag folder."""
    command = ["sha256sum", "-c"] if shutil.which("sha256sum") else ["shasum", "-a", "256", "-c"]
    return subprocess.run(
        [*command, manifest], cwd=bag, capture_output=True, text=True, check=False, timeout=60
    )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".aus-tmp")]


def rfc_view(place: Location, view: Path) -> Path:
    """The bag as RFC 8493 wants it: the payload hard-linked under `data/` at its path in the
    location folder, bagit.txt and bag-info.txt byte for byte, the manifest's paths rebased onto
    `data/` (checksums untouched), and the tagmanifest's lines kept except the rewritten manifest's."""
    view.mkdir()
    manifest_lines = []
    for path, digest in place.manifest().items():
        relative = (place.bag / path).resolve().relative_to(place.folder.resolve())
        (view / "data" / relative).parent.mkdir(parents=True, exist_ok=True)
        os.link(place.bag / path, view / "data" / relative)
        manifest_lines.append(f"{digest}  data/{relative.as_posix()}\n")
    (view / MANIFEST).write_text("".join(manifest_lines))
    for name in (BAGIT_TXT, BAG_INFO):
        shutil.copyfile(place.bag / name, view / name)
    tag_lines = [
        line
        if not line.endswith(f"  {MANIFEST}")
        else f"{sha256((view / MANIFEST).read_bytes())}  {MANIFEST}"
        for line in (place.bag / TAGMANIFEST).read_text().splitlines()
    ]
    (view / TAGMANIFEST).write_text("\n".join(tag_lines) + "\n")
    return view


def full_location(place: Location) -> dict[str, Path]:
    """One file of each kind, sidecars beside a parent and in org-misc, and what must stay out."""
    files = {
        "image": place.add("image", ".jpg", 40_000, seed=1),
        "video": place.add("video", ".mp4", 120_000, seed=2),
        "document": place.add("document", ".pdf", 9_000, seed=3),
        "map": place.add("map", ".gpx", 2_000, seed=4),
    }
    image = files["image"]
    files["xmp"] = place.add_sidecar(image.with_suffix(".xmp"), b"<x:xmpmeta/>")
    files["orphan"] = place.add_sidecar(place.org("misc") / "0123456789abcdef.srt", b"1\n00:00 --> 00:01\n")
    # Not archived data: a proxy, a temp file, a file still being copied (no row yet), a sidecar
    # another import has not finalized yet.
    video = files["video"]
    write(video.parent / f".{video.stem}.proxy.mp4", 500)
    write(image.parent / f".{image.name}.0badc0de.aus-tmp", 10)
    write(place.org("img") / "fedcba9876543210.jpg", 300)
    place.add_sidecar(place.org("misc") / "aaaaaaaaaaaaaaaa.json", b"{}", state="copied")
    return files


@pytest.mark.skipif(sys.platform != "linux", reason="a niceness per thread is Linux's")
async def test_the_hashing_runs_at_background_priority(
    place: Location, make_context: ContextMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hashing a location's new files leaves the cores to an import running at the same time."""
    place.add("image", ".jpg", 40_000, seed=1)
    hashed_at: list[int] = []
    real_update = module.update_bag

    def update_bag(*args: Any) -> BagReport:
        hashed_at.append(this_thread())
        return real_update(*args)

    monkeypatch.setattr(module, "update_bag", update_bag)
    result = await run(make_context, place.fixture.locid)
    assert (result["status"], result["added"]) == ("valid", 1)
    assert hashed_at == [lowered(this_thread())]


async def test_the_bag_lists_every_archived_file_and_sha256sum_verifies_it(
    place: Location, make_context: ContextMaker
):
    files = full_location(place)
    # The import's own temp file is its business (its sweep removes it); the bag never lists it.
    for path in temp_files(place.folder):
        path.unlink()

    result = await run(make_context, place.fixture.locid)

    payload = sorted(files.values())
    total = sum(p.stat().st_size for p in payload)
    assert result == {
        "locid": place.fixture.locid,
        "status": "valid",
        "files": 6,
        "bytes": total,
        "added": 6,
        "removed": 0,
        "written": [MANIFEST, BAGIT_TXT, BAG_INFO, TAGMANIFEST],
        "bagPath": str(place.bag),
        "error": None,
    }
    loc12 = place.fixture.loc12
    assert place.manifest() == {
        os.path.relpath(p, place.bag): sha256(p.read_bytes()) for p in payload
    }  # paths relative to _archive/, as the app's service writes them
    assert f"../{files['document'].name}" in place.manifest()
    assert f"../../org-img-{loc12}/{files['image'].name}" in place.manifest()

    check = sha256sum_check(place.bag)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == 6

    assert (place.bag / BAGIT_TXT).read_text() == "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
    info = (place.bag / BAG_INFO).read_text()
    assert f"Payload-Oxum: {total}.6\n" in info
    assert f"Bagging-Date: {datetime.now(UTC).date().isoformat()}\n" in info
    assert f"External-Identifier: {loc12}\n" in info and "External-Description: Old Factory\n" in info
    assert (place.bag / TAGMANIFEST).read_text() == "".join(
        f"{sha256((place.bag / name).read_bytes())}  {name}\n" for name in sorted(TAG_FILES[:3])
    )

    status, verified, error = place.status()
    assert (status, error) == ("valid", None) and is_iso(verified)
    assert temp_files(place.folder) == []


async def test_the_reference_bagit_library_validates_the_bag_rebased_onto_data(
    place: Location, make_context: ContextMaker, tmp_path: Path
):
    full_location(place)
    await run(make_context, place.fixture.locid)

    # In place, the library refuses the layout itself: the payload is outside the bag folder.
    with pytest.raises(bagit_library.BagError, match="unsafe"):
        bagit_library.Bag(str(place.bag))

    view = bagit_library.Bag(str(rfc_view(place, tmp_path / "view")))
    view.validate()  # every checksum, completeness both ways, Payload-Oxum, tag checksums
    view.validate(fast=True)  # Payload-Oxum alone
    assert view.version_info == (1, 0) and view.encoding == "UTF-8"
    assert view.info["External-Identifier"] == place.fixture.loc12
    assert len(view.payload_entries()) == 6
    assert set(view.entries) >= {BAGIT_TXT, BAG_INFO, MANIFEST}  # tag files checked too

    # And the check is real: one changed byte in the payload fails it.
    victim = next(p for p in (tmp_path / "view" / "data").rglob("*.pdf"))
    data = bytearray(victim.read_bytes())
    data[0] ^= 1
    victim.write_bytes(bytes(data))
    with pytest.raises(bagit_library.BagValidationError):
        view.validate()


async def test_a_later_import_hashes_only_its_new_files(place: Location, make_context: ContextMaker):
    old = place.add("image", ".jpg", 30_000, seed=1)
    kept = place.add("document", ".pdf", 5_000, seed=2)
    first = await run(make_context, place.fixture.locid)
    assert (first["files"], first["added"]) == (2, 2)
    listed = place.manifest()

    # The old file changes behind our back (same size): an incremental run must not read it again.
    old.write_bytes(bytes(30_000))
    new = place.add("video", ".mp4", 70_000, seed=3)
    second = await run(make_context, place.fixture.locid)

    assert (second["status"], second["files"], second["added"], second["removed"]) == ("valid", 3, 1, 0)
    assert second["bytes"] == 30_000 + 5_000 + 70_000
    manifest = place.manifest()
    assert {k: manifest[k] for k in listed} == listed  # old entries kept as they were
    assert manifest[os.path.relpath(new, place.bag)] == sha256(new.read_bytes())
    # So the stale checksum is still there for a fixity check to find, and only there.
    check = sha256sum_check(place.bag)
    assert check.returncode != 0
    failed = [line for line in check.stdout.splitlines() if "FAILED" in line]
    assert failed == [f"{os.path.relpath(old, place.bag)}: FAILED"]
    assert kept.exists()


async def test_a_run_with_nothing_new_writes_nothing(place: Location, make_context: ContextMaker):
    place.add("image", ".jpg", 1_000, seed=1)
    await run(make_context, place.fixture.locid)
    before = {name: (place.bag / name).stat() for name in TAG_FILES}

    again = await run(make_context, place.fixture.locid)

    assert (again["status"], again["added"], again["written"]) == ("valid", 0, [])
    after = {name: (place.bag / name).stat() for name in TAG_FILES}
    assert {n: (s.st_ino, s.st_mtime_ns) for n, s in before.items()} == {
        n: (s.st_ino, s.st_mtime_ns) for n, s in after.items()
    }


async def test_a_missing_file_makes_the_bag_invalid_and_leaves_it_for_a_restore(
    place: Location, make_context: ContextMaker
):
    lost = place.add("image", ".jpg", 20_000, seed=1)
    place.add("document", ".pdf", 4_000, seed=2)
    await run(make_context, place.fixture.locid)
    bag_before = place.tags()
    content = lost.read_bytes()
    lost.unlink()
    place.add("map", ".gpx", 1_000, seed=3)

    result = await run(make_context, place.fixture.locid)

    shown = f"org-img-{place.fixture.loc12}/{lost.name}"
    assert result["status"] == "invalid" and result["written"] == []
    assert result["error"] == f"1 archived file(s) missing: {shown}; the bag was left as it was"
    status, verified, error = place.status()
    assert (status, error) == ("invalid", result["error"]) and is_iso(verified)
    assert place.tags() == bag_before  # the lost file's checksum stays to verify a restore against

    lost.write_bytes(content)  # restored
    restored = await run(make_context, place.fixture.locid)
    assert (restored["status"], restored["files"], restored["added"], restored["error"]) == (
        "valid",
        3,
        1,
        None,
    )
    assert place.status()[0::2] == ("valid", None)
    assert sha256sum_check(place.bag).returncode == 0


async def test_a_file_whose_row_was_deleted_leaves_the_bag(place: Location, make_context: ContextMaker):
    gone = place.add("image", ".jpg", 2_000, seed=1)
    place.add_sidecar(gone.with_suffix(".xmp"), b"<x/>")  # follows its parent out of the bag
    place.add("document", ".pdf", 3_000, seed=2)
    assert (await run(make_context, place.fixture.locid))["files"] == 3
    with closing(sqlite3.connect(place.db_path, isolation_level=None)) as db:
        db.execute("DELETE FROM imgs WHERE imgloc = ?", (str(gone),))
    gone.unlink()

    result = await run(make_context, place.fixture.locid)

    assert (result["status"], result["files"], result["removed"], result["added"]) == ("valid", 1, 2, 0)
    assert sha256sum_check(place.bag).returncode == 0


@pytest.mark.parametrize(
    ("first_run", "stopped_before"),
    [
        *((True, name) for name in TAG_FILES),  # a new bag: every tag file is written
        *((False, name) for name in (MANIFEST, BAG_INFO, TAGMANIFEST)),  # bagit.txt never changes
    ],
)
async def test_a_run_killed_between_tag_files_leaves_each_whole_and_a_rerun_completes_the_bag(
    place: Location,
    make_context: ContextMaker,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    first_run: bool,
    stopped_before: str,
):
    place.add("image", ".jpg", 8_000, seed=1)
    if not first_run:
        await run(make_context, place.fixture.locid)
    old = place.tags()
    place.add("video", ".mp4", 16_000, seed=2)

    real_publish = fs.publish

    def killed_at(temp: str | Path, final: str | Path) -> None:
        if Path(final).name == stopped_before:
            # As a kill during this file's write would leave it: a half-written temp file.
            os.truncate(temp, Path(temp).stat().st_size // 2)
            raise KeyboardInterrupt("killed")
        real_publish(temp, final)

    monkeypatch.setattr(fs, "publish", killed_at)
    with pytest.raises(KeyboardInterrupt):
        await run(make_context, place.fixture.locid)
    monkeypatch.setattr(fs, "publish", real_publish)
    assert temp_files(place.bag), "the killed run must leave its temp file for the rerun to sweep"
    killed = place.tags()

    result = await run(make_context, place.fixture.locid)

    # Meanwhile each tag file was whole: the old one (or none) from the one it stopped at on, the
    # new one before; the manifest listed only files that were there with those checksums.
    new = place.tags()
    stop = TAG_FILES.index(stopped_before)
    for name in TAG_FILES[:stop]:
        assert killed[name] == new[name], name
    for name in TAG_FILES[stop:]:
        assert killed.get(name) == old.get(name), name
    if MANIFEST in killed:
        (place.bag / "killed-manifest.txt").write_bytes(killed[MANIFEST])
        check = sha256sum_check(place.bag, "killed-manifest.txt")
        (place.bag / "killed-manifest.txt").unlink()
        assert check.returncode == 0, check.stdout
    # The rerun completed the bag, removed the temp file and did not hash again what the killed
    # run had already recorded.
    assert result["status"] == "valid" and temp_files(place.bag) == []
    assert result["added"] == ((2 if first_run else 1) if stopped_before == MANIFEST else 0)
    assert sha256sum_check(place.bag).returncode == 0
    bagit_library.Bag(str(rfc_view(place, tmp_path / "view"))).validate()


async def test_hashing_stops_when_the_job_is_stopped(tmp_path: Path):
    path = write(tmp_path / "big.bin", 3 << 20)
    stop = threading.Event()
    assert sha256_file(str(path), stop) == (sha256(path.read_bytes()), 3 << 20)
    stop.set()
    with pytest.raises(Stopped):
        sha256_file(str(path), stop)


async def test_progress_is_reported_while_hashing(
    place: Location, make_context: ContextMaker, events: RecordedEvents, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(module, "PROGRESS_INTERVAL_S", 0.0)
    place.add("image", ".jpg", 1_000, seed=1)
    place.add("image", ".png", 1_000, seed=2)
    await run(make_context, place.fixture.locid)
    progress = events.of("jobs:progress")
    assert progress and all(p["queue"] == "bagit" for p in progress)
    assert [p["progress"] for p in progress] == sorted(p["progress"] for p in progress)


async def test_a_hostile_location_stays_inside_the_archive(
    db_path: Path, archive: Path, make_context: ContextMaker, tmp_path: Path
):
    hostile = add_location(db_path, locnam="../../x", slocnam="../../../../etc/..", type_="../..", state="/.")
    outside_before = sorted(p for p in tmp_path.iterdir() if p != archive)

    result = await run(make_context, hostile.locid)

    bag = Path(result["bagPath"])
    assert bag.resolve().is_relative_to(archive.resolve())
    assert (
        bag
        == archive
        / "locations"
        / "XX-unknown"
        / f"etc-{hostile.loc12}"
        / f"org-doc-{hostile.loc12}"
        / "_archive"
    )
    assert (bag / MANIFEST).read_text() == "" and result["status"] == "valid"
    assert sorted(p for p in tmp_path.iterdir() if p != archive) == outside_before

    # A folder of the location linked out of the archive: refused, nothing written there.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(bag.parent)
    bag.parent.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(BagItJobError, match="unsafe location folder: path escapes the archive"):
        await run(make_context, hostile.locid)
    assert list(elsewhere.iterdir()) == []


async def test_files_outside_the_location_folder_are_never_listed(
    place: Location, make_context: ContextMaker, tmp_path: Path
):
    inside = place.add("image", ".jpg", 1_000, seed=1)
    secret = write(tmp_path / "secret.jpg", 100)
    add_media_row(place.db_path, "image", secret, place.fixture.locid)  # a row pointing elsewhere
    link = place.org("img") / "1111111111111111.jpg"
    link.symlink_to(secret)  # a link inside pointing outside
    add_media_row(place.db_path, "document", link, place.fixture.locid)

    result = await run(make_context, place.fixture.locid)

    assert (result["status"], result["files"]) == ("incomplete", 1)
    assert "2 file(s) of the location lie outside its folder" in result["error"]
    assert str(secret) in result["error"] and str(link) in result["error"]
    assert list(place.manifest()) == [os.path.relpath(inside, place.bag)]
    assert place.status()[0::2] == ("incomplete", result["error"])


async def test_an_unknown_location_or_no_archive_is_a_clear_error(
    place: Location, make_context: ContextMaker, db_path: Path
):
    with pytest.raises(BagItJobError, match=r"bagit: location 'nope' not found") as error:
        await run(make_context, "nope")
    assert isinstance(error.value, PermanentFailure)
    context = make_context(Queue.BAGIT, {"locid": place.fixture.locid})
    with pytest.raises(RuntimeError, match="no archive folder is set"):
        await bagit(dataclasses.replace(context, archive_root=None))
    with pytest.raises(BagItJobError, match="names no locid"):
        await bagit(make_context(Queue.BAGIT, {}))

    with closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        db.execute("UPDATE locs SET loc12 = '../evil' WHERE locid = ?", (place.fixture.locid,))
    with pytest.raises(BagItJobError, match="unsafe location folder"):
        await run(make_context, place.fixture.locid)
    assert place.status()[0] == "invalid"


# -- through a real import ------------------------------------------------------------------------


def bag_results(db_path: Path) -> list[dict[str, Any]]:
    return [
        json.loads(result)
        for (result,) in rows(
            db_path, "SELECT result FROM jobs WHERE queue = 'bagit' AND status = 'completed' ORDER BY rowid"
        )
    ]


async def bag_jobs_done(sidecar: SidecarProcess, count: int) -> None:
    # No event says "job done" (the app has none): ask again at once after each answer; the
    # scheduler is woken by the import's commit, so there is no polling interval to wait out.
    async with asyncio.timeout(30):
        while (await sidecar.request("jobs:status"))["bagit"]["completed"] < count:
            pass


async def test_imports_keep_the_bag_current(
    sidecar: SidecarProcess, sidecar_paths: SidecarPaths, tmp_path: Path
):
    fixture = add_location(sidecar_paths.db)
    folder = sidecar_paths.archive / "locations" / "NY-factory" / f"old-factory-{fixture.loc12}"
    place = Location(sidecar_paths.db, sidecar_paths.archive, fixture, folder)
    card = tmp_path / "card"
    write(card / "IMG_0001.JPG", 40_000)
    write(card / "IMG_0001.xmp", b"<x:xmpmeta/>")  # beside its parent
    write(card / "CLIP_0001.MP4", 100_000)
    write(card / "permit.pdf", 9_000)
    write(card / "route.gpx", 2_000)
    write(card / "flight.srt", b"1\n00:00:00,000 --> 00:00:01,000\n")  # no parent: org-misc
    await sidecar.request("import:v2:start", fixture.start_params(card))
    await bag_jobs_done(sidecar, 1)

    [first] = bag_results(sidecar_paths.db)
    archived = [p for p in folder.glob("org-*/*") if p.is_file()]
    assert len(archived) == 6
    assert (first["status"], first["files"], first["added"]) == ("valid", 6, 6)
    assert first["bytes"] == sum(p.stat().st_size for p in archived)
    assert sorted(place.manifest()) == sorted(os.path.relpath(p, place.bag) for p in archived)
    assert sha256sum_check(place.bag).returncode == 0
    assert place.status()[0::2] == ("valid", None)

    more = tmp_path / "more"
    write(more / "IMG_0002.JPG", 30_000)
    shutil.copyfile(card / "permit.pdf", more / "permit-again.pdf")  # a duplicate: not archived again
    await sidecar.request("import:v2:start", fixture.start_params(more))
    await bag_jobs_done(sidecar, 2)

    second = bag_results(sidecar_paths.db)[1]
    assert (second["status"], second["files"], second["added"]) == ("valid", 7, 1)
    assert sha256sum_check(place.bag).returncode == 0
    bagit_library.Bag(str(rfc_view(place, tmp_path / "view"))).validate()
    assert temp_files(sidecar_paths.archive) == []


async def test_a_bag_the_apps_service_wrote_is_taken_over(place: Location, make_context: ContextMaker):
    image = place.add("image", ".jpg", 5_000, seed=1)
    place.bag.mkdir(parents=True)
    # The app writes location metadata into bag-info.txt, and since the BLAKE3 migration its
    # manifest holds the 16-hex file hashes under a SHA-256 name.
    (place.bag / BAG_INFO).write_text(
        "Source-Organization: Abandoned Archive\nBagging-Date: 2020-01-01\nExternal-Identifier: X\n"
        "Location-City: Buffalo\nGPS-Latitude: 42.886400\nInternal-Sender-Description: first line\n"
        "  folded second line\nPayload-Oxum: 1.1\nBag-Count: 1 of 1\n"
    )
    (place.bag / MANIFEST).write_text(f"{image.stem}  {os.path.relpath(image, place.bag)}\n")
    (place.bag / f".{MANIFEST}.tmp").write_text("not ours: left alone")

    result = await run(make_context, place.fixture.locid)

    assert (result["status"], result["added"], result["removed"]) == ("valid", 1, 0)
    assert place.manifest() == {os.path.relpath(image, place.bag): sha256(image.read_bytes())}
    today = datetime.now(UTC).date().isoformat()
    assert (place.bag / BAG_INFO).read_text() == (
        f"Source-Organization: Abandoned Archive\nBagging-Date: {today}\nExternal-Identifier: X\n"
        "Location-City: Buffalo\nGPS-Latitude: 42.886400\nInternal-Sender-Description: first line\n"
        "  folded second line\nPayload-Oxum: 5000.1\nBag-Count: 1 of 1\n"
        f"External-Description: Old Factory\nInternal-Sender-Identifier: {place.fixture.locid}\n"
        f"Bag-Software-Agent: au-archive import sidecar {__version__}\n"
    )
    assert (place.bag / f".{MANIFEST}.tmp").exists()


def test_manifest_paths_are_percent_encoded_as_rfc_8493_says():
    digest = "ab" * 32
    odd = "../x%y\nz\r.jpg"
    text = render_manifest({odd: digest})
    assert text == f"{digest}  ../x%25y%0Az%0D.jpg\n"
    assert parse_manifest(text) == {odd: digest}
    assert parse_manifest(f"{digest.upper()} *a.jpg\nnot a line\n{'0' * 16}  b.jpg\n") == {"a.jpg": digest}


async def test_a_manifest_in_another_order_is_reused_not_rehashed_and_rewritten_sorted(
    place: Location, make_context: ContextMaker
):
    files = [place.add("image", ".jpg", 3_000, seed=i) for i in range(3)]
    await run(make_context, place.fixture.locid)
    gone = f"{'0' * 64}  ../../org-img-{place.fixture.loc12}/0000000000000000.jpg\n"
    listed = (place.bag / MANIFEST).read_text().splitlines(keepends=True)
    (place.bag / MANIFEST).write_text("".join(reversed([*listed, gone])))  # as another writer might
    files[0].write_bytes(bytes(3_000))  # changed behind our back: reused, so never read again

    result = await run(make_context, place.fixture.locid)

    assert (result["files"], result["added"], result["removed"]) == (3, 0, 1)
    assert MANIFEST in result["written"]
    assert (place.bag / MANIFEST).read_text() == "".join(listed)  # as first written: sorted by path


async def test_rows_are_read_page_by_page(
    place: Location, make_context: ContextMaker, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(module, "_PAGE_ROWS", 2)
    files = [place.add("image", ".jpg", 100, seed=i) for i in range(5)]
    files += [place.add("document", ".pdf", 100, seed=10 + i) for i in range(2)]

    result = await run(make_context, place.fixture.locid)

    assert (result["files"], result["added"]) == (7, 7)
    assert sorted(place.manifest()) == sorted(os.path.relpath(p, place.bag) for p in files)


def test_updating_a_bag_holds_a_short_string_per_file_not_tables_of_paths(tmp_path: Path):
    """The payload is merged with the old manifest and written line by line (a 100 000-file location
    must not cost the sidecar 100 MB): the peak is a sorted list of entries and their sizes."""
    folder = tmp_path / "loc"
    org = folder / "org-img-ABC123"
    org.mkdir(parents=True)
    names = [f"{i:016x}.jpg" for i in range(5_000)]
    for name in names:
        (org / name).write_bytes(name.encode())
    request = module.BagRequest(
        folder,
        folder / "org-doc-ABC123" / "_archive",
        [f"{org.name}/{n}" for n in names],
        [],
        [],
        "2025-01-01",
    )
    for expected_added in (5_000, 0):  # a new bag, then a run with every checksum known
        tracemalloc.start()
        try:
            report = module.update_bag(request)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (report.status, report.files, report.added) == ("valid", 5_000, expected_added)
        assert peak < 400 * len(names), f"{peak / len(names):.0f} bytes per file"


async def test_an_org_folder_linked_out_of_the_location_is_never_listed(
    place: Location, make_context: ContextMaker, tmp_path: Path
):
    """Rows under the location folder are placed without resolving each file: the org folder itself
    must be checked, or a folder linked elsewhere would put outside files in the bag."""
    inside = place.add("image", ".jpg", 1_000, seed=1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    place.org("map").symlink_to(elsewhere, target_is_directory=True)
    linked_in = place.add("map", ".gpx", 500, seed=2)  # stored as <location>/org-map-…/<hash>.gpx

    result = await run(make_context, place.fixture.locid)

    assert (result["status"], result["files"]) == ("incomplete", 1)
    assert str(linked_in) in result["error"]
    assert list(place.manifest()) == [os.path.relpath(inside, place.bag)]
