"""Windows of files: they cover every file once, in order, never separate linked files, and grow."""

import random

from sidecar.pipeline.windows import Cutter, FileLinks, Window, cut


def _files(n: int, size: int = 1, links: dict[int, int] | None = None) -> list[FileLinks]:
    links = links or {}
    return [FileLinks(i, size, (links.get(i), None, None)) for i in range(1, n + 1)]


def _covered(windows: list[Window]) -> list[int]:
    return [i for w in windows for i in range(w.first, w.last + 1)]


def test_windows_cover_every_file_once_in_order_double_up_to_the_cap_and_taper_at_the_end() -> None:
    windows = cut(_files(1000), first_files=10, max_files=80)
    assert _covered(windows) == list(range(1, 1001))
    sizes = [w.last - w.first + 1 for w in windows]
    assert sizes[:5] == [10, 20, 40, 80, 80]
    assert max(sizes) == 80
    # A quarter of what is left, at most: the last windows shrink back to the first size.
    assert sizes[-4:] == sorted(sizes[-4:], reverse=True) and sizes[-1] <= 10, sizes


def test_bytes_close_a_window_as_files_do() -> None:
    windows = cut(_files(10, size=100), first_files=1000, first_bytes=250, max_bytes=1000)
    # 250 bytes, then 500 but at most a quarter of the 700 left (never under 250), and so on.
    assert [(w.first, w.last) for w in windows] == [(1, 3), (4, 6), (7, 9), (10, 10)]


def test_no_window_separates_a_file_from_what_it_links_to_either_way() -> None:
    # 4 names its parent 12 (a sidecar before its parent); 20 names 15 (after it).
    windows = cut(_files(30, links={4: 12, 20: 15}), first_files=2, max_files=2)
    for low, high in ((4, 12), (15, 20)):
        holding = [w for w in windows if w.first <= low <= w.last]
        assert holding and holding[0].first <= high <= holding[0].last, windows
    assert _covered(windows) == list(range(1, 31))


def test_random_links_within_folders_are_never_cut() -> None:
    rng = random.Random(7)
    files: list[FileLinks] = []
    file_id = 0
    for _ in range(200):  # folders of 1-30 files, links only within a folder, as the scan makes them
        first = file_id + 1
        count = rng.randint(1, 30)
        for _ in range(count):
            file_id += 1
            other = rng.randint(first, first + count - 1) if rng.random() < 0.3 else None
            files.append(FileLinks(file_id, rng.randint(0, 1000), (other, None, None)))
    windows = cut(files, first_files=3, max_files=50)
    assert _covered(windows) == [f.file_id for f in files]
    window_of = {i: n for n, w in enumerate(windows) for i in range(w.first, w.last + 1)}
    for f in files:
        for other in f.linked:
            if other is not None:
                assert window_of[other] == window_of[f.file_id]


def test_no_files_no_windows() -> None:
    assert cut([]) == []


def test_a_group_too_big_for_its_window_is_read_right_after_the_first() -> None:
    # A camera's card: photos, then two clips bigger than their windows may be (a file is never
    # split): read at the end, their copy and re-read would follow the card's last read.
    sizes = [3] * 20 + [100, 100]
    files = [FileLinks(i, size, (None, None, None)) for i, size in enumerate(sizes, start=1)]
    windows = cut(files, first_files=4, max_files=8, first_bytes=12, max_bytes=48)
    assert sorted(_covered(windows)) == list(range(1, 23))
    assert windows[:3] == [Window(1, 4), Window(21, 21), Window(22, 22)], windows
    assert _covered(windows[3:]) == list(range(5, 21)), "the rest keeps its order"
    # Files that only just pass a window's size are no such group: the order stays.
    windows = cut(_files(50, size=5), first_files=100, first_bytes=12, max_bytes=48)
    assert _covered(windows) == list(range(1, 51))


def test_the_window_read_last_leaves_about_a_quarter_of_it_alone_so_little_follows_the_last_read() -> None:
    windows = cut(_files(40, size=10), first_files=100, first_bytes=40, max_bytes=100)
    assert _covered(windows) == list(range(1, 41))
    # Tapered, the last window would be 38-40 (30 bytes): its last quarter or more goes alone.
    assert windows[-2:] == [Window(38, 39), Window(40, 40)]
    # Never across a link: 40 names 39, so the split comes before 39; 40 names 38, no split at all.
    linked = cut(_files(40, size=10, links={40: 39}), first_files=100, first_bytes=40, max_bytes=100)
    assert linked[-2:] == [Window(38, 38), Window(39, 40)]
    linked = cut(_files(40, size=10, links={40: 38}), first_files=100, first_bytes=40, max_bytes=100)
    assert linked[-2:] == [Window(34, 37), Window(38, 40)]
    # A last window of a quarter of the first window's bytes or less stays whole.
    small = cut(_files(40, size=1), first_files=100, first_bytes=40, max_bytes=100)
    assert small == [Window(1, 30), Window(31, 40)]


def test_windows_cut_while_files_still_come_are_full_and_the_rest_is_cut_once_all_are_known() -> None:
    rng = random.Random(11)
    limits = {"first_files": 4, "first_bytes": 200, "max_files": 64, "max_bytes": 3000}
    for _ in range(50):
        folders: list[list[FileLinks]] = []
        file_id = 0
        for _ in range(rng.randint(1, 40)):
            first, count = file_id + 1, rng.randint(1, 60)
            folder = []
            for _ in range(count):
                file_id += 1
                other = rng.randint(first, first + count - 1) if rng.random() < 0.2 else None
                size = rng.choice([rng.randint(0, 50), rng.randint(0, 5000)])
                folder.append(FileLinks(file_id, size, (other, None, None)))
            folders.append(folder)
        everything = [f for folder in folders for f in folder]
        cutter = Cutter(**limits)
        early: list[Window] = []
        for folder in folders:
            cutter.add(folder)
            while rng.random() < 0.7 and (window := cutter.next()) is not None:  # a step wants one
                early.append(window)
            assert not early or early[-1].last <= folder[-1].file_id  # only files that came
        windows = early + cutter.finish()
        assert sorted(_covered(windows)) == [f.file_id for f in everything]
        assert _covered(early) == [f.file_id for f in everything][: len(_covered(early))], "in order"
        window_of = {i: n for n, w in enumerate(windows) for i in range(w.first, w.last + 1)}
        for f in everything:
            assert all(window_of[other] == window_of[f.file_id] for other in f.linked if other is not None)
        size_of = {f.file_id: f.size for f in everything}
        for n, window in enumerate(early):  # full: as many files or bytes as the n-th window holds
            ids = range(window.first, window.last + 1)
            assert len(ids) >= min(4 << n, 64) or sum(size_of[i] for i in ids) >= min(200 << n, 3000)
        if not early:
            assert windows == cut(everything, **limits)


def test_a_scan_gives_windows_out_before_it_ends_and_a_resume_cuts_on_at_its_sizes() -> None:
    cutter = Cutter(first_files=4, max_files=16)
    cutter.add(_files(50))
    given = list(iter(cutter.next, None))
    assert given == [Window(1, 4), Window(5, 12), Window(13, 28), Window(29, 44)]  # 45-50 fill none
    # A resume: the windows journalled, then the rest cut on from their sizes.
    resumed = Cutter(first_files=4, max_files=16, given=len(given))
    resumed.add(_files(100)[44:])
    assert resumed.next() == Window(45, 60)
    rest = [Window(45, 60), *resumed.finish()]
    assert _covered(given + rest) == list(range(1, 101))
