"""Reliability of the library index under faults (issue 7): SIGKILL at random points, concurrent
readers and writers, a full disk and a read-only or forbidden index folder.

The tiny bundle (``tiny_world``, trained for one step), the short videos and the indexing child
process that can be killed come from conftest.py and helpers.py. The model is untrained: these
tests check the machinery (nothing lost, nothing doubled, clear errors), not accuracy.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import QUERY, ROOT, IndexChild, check_index, run_index, write_video
from vidseek.index.cache import FeatureCache
from vidseek.index.catalog import Catalog
from vidseek.index.clips import ClipIndex
from vidseek.index.integrity import check as check_integrity
from vidseek.index.lock import current_writer
from vidseek.index.settings import windows


def work_seconds(output: str) -> float:
    """The seconds a finished child spent indexing (after "go"), from its last line."""
    return float(output.strip().splitlines()[-1].split()[1])


def clip_table(index: Path) -> dict[str, np.ndarray]:
    """Catalog path -> clip embeddings (W, E) of every ok video of an index."""
    clips = FeatureCache(index, "clips")
    with Catalog(index, readonly=True) as cat:
        return {v.path: np.asarray(clips.get(v.id), np.float32) for v in cat.videos("ok")}


# ---- killed while indexing ----------------------------------------------------------------------
KILLS = 24  # SIGKILLs that must land while `vidseek index` runs


@pytest.mark.slow
def test_random_sigkills_lose_nothing_and_encode_nothing_twice(tiny_world, tmp_path):
    """SIGKILL `vidseek index` at seeded random moments, at least 24 times, while the library also
    changes (files added, deleted, replaced, touched). After every kill the index passes its
    integrity check and a search sees exactly the ok videos, each clip once, with the embeddings
    of a run nobody killed; a video whose content did not change keeps its id and its cache files
    (it is never encoded again); a last run completes the library."""
    rng = np.random.default_rng(20240607)
    pool = tmp_path / "pool"
    for k in range(18):  # distinct contents, 2-5 s each
        write_video(pool / f"p{k:02d}.mp4", seconds=float(rng.uniform(2, 5)), seed=100 + k)
    reference = tmp_path / "ref"
    code, out = run_index(pool, reference, tiny_world.bundle)
    assert code == 0 and "errors 0" in out, out
    full = work_seconds(out)
    code, out = run_index(pool, reference, tiny_world.bundle)
    assert code == 0 and "indexed 0" in out, out
    fixed = work_seconds(out)  # a run with nothing to encode
    per_video = max(full - fixed, 0.05) / 18
    ref_clips = clip_table(reference)  # content -> clip embeddings, from runs nobody killed

    library, index = tmp_path / "lib", tmp_path / "idx"
    library.mkdir()
    content: dict[str, str] = {}  # library file -> the pool file it holds now
    encoded_from: dict[int, str] = {}  # video id -> the pool file it was encoded from
    serial = iter(range(10**6))

    def pick(names) -> str:
        names = sorted(names)
        return names[int(rng.integers(len(names)))]

    def add() -> None:
        free = set(ref_clips) - set(content.values())
        if free:
            name = f"v{next(serial):03d}.mp4"
            content[name] = pick(free)
            shutil.copyfile(pool / content[name], library / name)

    def delete() -> None:
        if content:
            name = pick(content)
            (library / name).unlink()
            del content[name]

    def replace() -> None:
        free = set(ref_clips) - set(content.values())
        if content and free:
            name = pick(content)
            content[name] = pick(free)
            shutil.copyfile(pool / content[name], library / name)

    def touch() -> None:
        if content:
            later = time.time_ns() + int(rng.integers(1, 10**9))
            os.utime(library / pick(content), ns=(later, later))

    for _ in range(10):
        add()
    kills = cycles = changed_by_killed_run = 0
    child = IndexChild(library, index, tiny_world.bundle)
    while kills < KILLS:
        cycles += 1
        assert cycles < 2 * KILLS, f"only {kills} of {cycles} runs were still running when killed"
        before = ok_videos(index)
        if set(before) == set(content) and all(content[p] == encoded_from[v] for p, v in before.items()):
            delete(), add(), add(), touch(), replace()  # nothing left to do: give the next run work
        elif rng.random() < 0.3:
            [add, delete, replace, touch][int(rng.integers(4))]()
        todo = sum(encoded_from.get(before.get(p)) != c for p, c in content.items())
        stamps = {vid: cache_stamps(index, vid) for vid in before.values()}
        library_now = dict(content)
        child.go()
        time.sleep(float(rng.uniform(0.0, fixed + todo * per_video)))
        killed = child.kill()
        kills += killed
        child = IndexChild(library, index, tiny_world.bundle)  # loads while this run is checked
        if not (index / "catalog.sqlite").exists():
            continue  # killed before it created the catalog
        after = check_index(index)
        clips_now = clip_table(index)
        for path, vid in after.items():
            if vid not in encoded_from:  # a new id: encoded by this run, from the file as it was
                encoded_from[vid] = library_now[path]
            np.testing.assert_allclose(clips_now[path], ref_clips[encoded_from[vid]], atol=2e-3)
        for path, vid in before.items():  # content unchanged: same id, same cache files (not encoded again)
            if library_now.get(path) == encoded_from[vid]:
                assert after.get(path) == vid, f"{path} was encoded again (id {vid} -> {after.get(path)})"
                assert cache_stamps(index, vid) == stamps[vid]
        changed_by_killed_run += killed and (after != before or pending(index) > 0)
    child.kill()

    code, out = run_index(library, index, tiny_world.bundle)  # a last run, not killed, finishes the job
    assert code == 0 and "errors 0" in out, out
    final = check_index(index)
    assert set(final) == set(content) and pending(index) == 0
    for path, vid in final.items():
        assert encoded_from.setdefault(vid, content[path]) == content[path]  # the features of the file as it is
    clips = ClipIndex(index, 8, gpu=False)
    assert clips.load() and clips.video_ids() == set(final.values())  # the saved index is complete...
    n_windows = sum(len(ref_clips[content[p]]) for p in final)
    assert clips.ntotal == n_windows == len(np.unique(clips.ids()))  # ...and holds every clip exactly once
    with Catalog(index, readonly=True) as cat:  # replaced videos' files wait RETAIN_RETIRED_S for searches
        kept = {p.name for vid in [*final.values(), *cat.retired()] for p in cache_files(index, vid)}
    leftovers = sorted({p.name for p in (index / "cache").iterdir()} - kept)
    assert leftovers == [], f"cache files of videos the catalog no longer lists: {leftovers[:5]}"
    code, out = run_index(library, index, tiny_world.bundle)
    assert code == 0 and "indexed 0" in out and "0 changed" in out, out
    print(f"\n{kills} SIGKILLs in {cycles} runs ({changed_by_killed_run} after the run had changed the index), "
          f"{len(encoded_from)} encodings, {len(final)} videos and {n_windows} clips in the end")


def ok_videos(index: Path) -> dict[str, int]:
    """Catalog path -> id of the ok videos (empty before the catalog exists)."""
    if not (index / "catalog.sqlite").exists():
        return {}
    with Catalog(index, readonly=True) as cat:
        return {v.path: v.id for v in cat.videos("ok")}


def pending(index: Path) -> int:
    with Catalog(index, readonly=True) as cat:
        return cat.counts()["pending"]


def cache_stamps(index: Path, vid: int) -> list[tuple[int, int]]:
    """(inode, mtime) of the cache files of a video: they change when it is encoded again."""
    return [(p.stat().st_ino, p.stat().st_mtime_ns) for p in cache_files(index, vid)]


def cache_files(index: Path, vid: int) -> list[Path]:
    return [FeatureCache(index, kind).path(vid) for kind in ("states", "clips")]


# ---- concurrent use ------------------------------------------------------------------------------
READER = """
import sys, time, traceback
from pathlib import Path
import numpy as np
from vidseek.library.searcher import Searcher
index, stop, batch = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
searches = opened = failures = 0
views = set()
while not stop.exists():
    try:
        with Searcher(index) as s:
            opened += 1
            ok = s.videos
            counts = {v: s.settings.n_windows(x.steps) for v, x in ok.items()}
            ids = s.clips.ids()
            assert s.clips.ntotal == len(ids) == len(set(ids.tolist())) == sum(counts.values()), "clips doubled or lost"
            assert set(ids.tolist()) == {(v << 20) + w for v, n in counts.items() for w in range(n)}, "clips differ"
            views.add(tuple(sorted(x.path for x in ok.values())))
            for _ in range(batch):
                moments = s.search(sys.argv[4], top_k=5)
                assert all(m.video in {x.path for x in ok.values()} for m in moments), "a moment of an unknown video"
                searches += 1
    except Exception:
        failures += 1
        print("FAIL", traceback.format_exc().replace(chr(10), " | "), flush=True)
print(f"searches {searches} opened {opened} failures {failures} views {len(views)}", flush=True)
"""


def test_searches_during_updates_never_fail_and_a_second_writer_is_locked_out(tiny_world, tmp_path, invoke):
    """Readers search (a fresh Searcher per query, and one Searcher for 20 queries) while a writer
    adds, replaces and deletes videos; none of their searches fails or sees a clip twice, a clip
    of a video it does not list, or a video without its clips. A second `vidseek index` while
    the first runs gets a clear "is locked" error and changes nothing."""
    library, index = tmp_path / "lib", tmp_path / "idx"
    for k in range(6):
        write_video(library / f"v{k}.mp4", seconds=4 + k % 3, seed=k)
    code, out = run_index(library, index, tiny_world.bundle)
    assert code == 0, out
    stop = tmp_path / "stop"
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(index), str(stop), str(batch), QUERY],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
               for batch in (1, 20)]
    try:
        locked_out = None
        for step in range(6):
            (library / f"v{step}.mp4").unlink()  # deleted
            write_video(library / f"v{(step + 1) % 6}.mp4", seconds=3, seed=50 + step)  # replaced
            write_video(library / f"n{step}.mp4", seconds=5, seed=80 + step)  # added
            write_video(library / f"v{step}.mp4", seconds=4, seed=90 + step)  # added again, new content
            writer = IndexChild(library, index, tiny_world.bundle, slow=0.2)
            writer.go()
            if step == 2:  # a second writer while the first holds the lock
                while f"pid={writer.proc.pid}" not in (index / ".lock").read_text():
                    time.sleep(0.01)
                locked_out = invoke("index", library, "--index", index, "--model", tiny_world.bundle, "--no-progress")
                assert current_writer(index)["pid"] == str(writer.proc.pid)
                r = invoke("doctor", "--index", index)
                assert f"is writing to it now (pid {writer.proc.pid}" in r.output, r.output
            code, out = writer.finish()
            assert code == 0 and "errors 0" in out, out
    finally:
        stop.touch()
        reports = [r.communicate(timeout=120)[0] for r in readers]
    assert locked_out.exit_code == 1 and "is locked" in locked_out.output, locked_out.output
    assert "Traceback" not in locked_out.output
    for report in reports:
        assert "FAIL" not in report, report[-3000:]
        counts = dict(zip(*[iter(report.split()[-8:])] * 2))
        assert int(counts["searches"]) >= 10 and int(counts["views"]) >= 2, report
    final = check_index(index)
    assert sorted(final) == sorted([f"v{k}.mp4" for k in range(6)] + [f"n{k}.mp4" for k in range(6)])
    assert current_writer(index) is None
    print("\n" + "\n".join(r.strip().splitlines()[-1] for r in reports))


# ---- a Searcher kept open across updates, and --rebuild ----------------------------------------
def test_a_searcher_kept_open_across_updates_reads_the_index_again(tiny_world, tmp_path, monkeypatch, invoke):
    """A Searcher opened before a run that replaced one video and deleted another, and then deleted
    their cache files (``RETAIN_RETIRED_S`` is 0 here, as if the run came 10 minutes later), reads
    the index again when it finds those files gone, and answers from the index as it is now."""
    from vidseek.library.searcher import Searcher

    library, index = tmp_path / "lib", tmp_path / "idx"
    for k in range(3):
        write_video(library / f"v{k}.mp4", seconds=5 + k, seed=k)
    code, out = run_index(library, index, tiny_world.bundle)
    assert code == 0, out
    monkeypatch.setattr("vidseek.index.integrity.RETAIN_RETIRED_S", 0.0)
    with Searcher(index) as searcher:
        before = dict(searcher.videos)
        assert {m.video for m in searcher.search(QUERY, top_k=20)} == {"v0.mp4", "v1.mp4", "v2.mp4"}
        write_video(library / "v0.mp4", seconds=7, seed=10)  # replaced: encoded again under a new id
        (library / "v1.mp4").unlink()
        r = invoke("index", library, "--index", index, "--model", tiny_world.bundle, "--no-progress")
        assert r.exit_code == 0 and "1 changed" in r.output and "1 deleted" in r.output, r.output
        assert sum(not FeatureCache(index, "states").has(vid) for vid in before) == 2  # their files are gone
        moments = searcher.search(QUERY, top_k=20)  # would read the deleted files, reads the index again
        now = check_index(index)
        assert {v.path: v.id for v in searcher.videos.values()} == now and searcher.damaged == {}
        assert {m.video for m in moments} == {"v0.mp4", "v2.mp4"}


def test_rebuild_discards_the_index_and_searches_opened_before_keep_working(tiny_world, tmp_path, invoke):
    """Other settings are refused with a message that names --rebuild; with it the index is
    emptied and every video encoded again under fresh ids, while a Searcher opened before still
    answers from the old videos (their rows are retired, their files kept ``RETAIN_RETIRED_S``)."""
    from vidseek.library.searcher import Searcher

    library, index = tmp_path / "lib", tmp_path / "idx"
    for k in range(3):
        write_video(library / f"v{k}.mp4", seconds=6 + k, seed=k)
    code, out = run_index(library, index, tiny_world.bundle)
    assert code == 0, out
    old = check_index(index)
    wider = ["--window", 6, "--stride", 3]
    r = invoke("index", library, "--index", index, "--model", tiny_world.bundle, "--no-progress", *wider)
    assert r.exit_code == 1 and "window_s=4.0" in r.output and "--rebuild" in r.output, r.output
    with Searcher(index) as searcher:
        r = invoke("index", library, "--index", index, "--model", tiny_world.bundle, "--no-progress", "--rebuild", *wider)
        assert r.exit_code == 0 and "3 new, 0 changed" in r.output and "indexed 3" in r.output, r.output
        old_moments = searcher.search(QUERY, top_k=20)
        assert {m.video for m in old_moments} == set(old) and set(searcher.videos) == set(old.values())
    with Catalog(index, readonly=True) as cat:
        assert check_integrity(cat) == [] and cat.settings().window_s == 6
        new = {v.path: v.id for v in cat.videos("ok")}
        assert set(new) == set(old) and min(new.values()) > max(old.values())  # ids are never reused
        assert set(cat.retired()) == set(old.values())
    with Searcher(index) as searcher:
        assert {m.video for m in searcher.search(QUERY, top_k=20)} == set(old)
        assert searcher.clips.ntotal == sum(len(windows(v.steps, 1.0, 6, 3)) for v in searcher.videos.values())


@pytest.mark.parametrize("damage", ["garbage", "newer schema"])
def test_rebuild_replaces_a_catalog_that_cannot_be_read(tiny_world, tmp_path, damage, invoke):
    """A damaged catalog, or one of a newer schema, is refused with a message that says to run
    --rebuild; --rebuild deletes it with every cache file and indexes the library again."""
    import sqlite3

    library, index = tmp_path / "lib", tmp_path / "idx"
    for k in range(3):
        write_video(library / f"v{k}.mp4", seconds=5, seed=k)
    code, out = run_index(library, index, tiny_world.bundle)
    assert code == 0, out
    if damage == "garbage":
        (index / "catalog.sqlite").write_bytes(b"not a catalog " * 512)
    else:
        db = sqlite3.connect(index / "catalog.sqlite")
        db.execute("PRAGMA user_version = 99")
        db.close()
    r = invoke("index", library, "--index", index, "--model", tiny_world.bundle, "--no-progress")
    assert r.exit_code == 1 and "vidseek index --rebuild" in r.output, r.output
    r = invoke("index", library, "--index", index, "--model", tiny_world.bundle, "--no-progress", "--rebuild")
    assert r.exit_code == 0 and "3 new" in r.output and "indexed 3" in r.output, r.output
    final = check_index(index)
    kept = {p.name for vid in final.values() for p in cache_files(index, vid)}
    assert {p.name for p in (index / "cache").iterdir()} == kept  # nothing of the old catalog is left


def test_a_killed_rebuild_leaves_a_sound_index_that_the_next_rebuild_completes(tiny_world, tmp_path):
    """SIGKILL `vidseek index --rebuild` at a few moments: each time the index stays sound (the
    old one, an emptied one or a partly rebuilt one) and searchable; a last --rebuild completes it."""
    from vidseek.library.searcher import Searcher

    library, index = tmp_path / "lib", tmp_path / "idx"
    for k in range(4):
        write_video(library / f"v{k}.mp4", seconds=5 + k, seed=k)
    code, out = run_index(library, index, tiny_world.bundle)
    assert code == 0, out
    landed = 0
    for delay in (0.0, 0.4, 1.2):
        child = IndexChild(library, index, tiny_world.bundle, slow=0.5, extra=["--rebuild", "--window", 6, "--stride", 3])
        child.go()
        time.sleep(delay)
        landed += child.kill()
        with Catalog(index, readonly=True) as cat:
            assert check_integrity(cat) == [] and cat.counts()["error"] == 0
            ok = {v.path for v in cat.videos("ok")}
        with Searcher(index) as searcher:
            assert {m.video for m in searcher.search(QUERY, top_k=20)} <= ok
    assert landed >= 2
    child = IndexChild(library, index, tiny_world.bundle, extra=["--rebuild", "--window", 6, "--stride", 3])
    child.go()
    code, out = child.finish()
    assert code == 0 and "indexed 4" in out and "errors 0" in out, out
    with Catalog(index, readonly=True) as cat:
        assert check_integrity(cat) == [] and sorted(v.path for v in cat.videos("ok")) == [f"v{k}.mp4" for k in range(4)]


# ---- a full disk, a file size limit, a read-only or forbidden folder -----------------------------
def snapshot(index: Path) -> dict[str, tuple[int, str]]:
    """Catalog path -> (id, status) of every row."""
    with Catalog(index, readonly=True) as cat:
        return {v.path: (v.id, v.status) for v in cat.videos()}


def check_kept(index: Path, before: dict[str, tuple[int, str]]) -> None:
    """After a failed run: the index is sound, every video indexed before is still there under the
    same id, and no video was marked as an error because the index could not be written."""
    after = snapshot(index)
    assert all(after.get(path) == row for path, row in before.items() if row[1] == "ok"), (before, after)
    assert all(status != "error" for _, status in after.values()), after
    check_index(index)


def grow(library: Path, indexed: dict[str, tuple[int, str]]) -> dict[str, tuple[int, str]]:
    """New work for an indexed library: four new videos, one replaced, one deleted. Returns the rows
    of `indexed` whose files stay as they were (a failed run must keep them)."""
    for k in range(4):
        write_video(library / f"new{k}.mp4", seconds=8 + 20 * k, seed=40 + k)
    write_video(library / "a1.mp4", seconds=6, seed=60)
    (library / "a2.mp4").unlink()
    return {path: row for path, row in indexed.items() if path not in ("a1.mp4", "a2.mp4")}


def small_library(folder: Path) -> Path:
    for k in range(4):
        write_video(folder / f"a{k}.mp4", seconds=5, seed=k)
    return folder


def limit_file_size(limit: int):
    """preexec for a child whose writes past `limit` bytes of any file fail with EFBIG."""
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_file_size_limit_gives_a_clear_error_and_keeps_the_index(tiny_world, tmp_path):
    """RLIMIT_FSIZE makes every write past the limit fail with EFBIG, as on a full disk; the limits
    are chosen so that the catalog fails on opening and in the middle of the run."""
    library, built = small_library(tmp_path / "lib"), tmp_path / "built"
    code, out = run_index(library, built, tiny_world.bundle)
    assert code == 0, out
    before = grow(library, snapshot(built))
    messages = []
    for limit in (0, 32768, 65536):
        index = tmp_path / f"idx{limit}"
        shutil.copytree(built, index)
        code, out = run_index(library, index, tiny_world.bundle, preexec=limit_file_size(limit))
        assert code == 1 and "Traceback" not in out, out
        message = out.strip().splitlines()[-2]
        assert "disk I/O error" in message and "file size limit" in message and "re-run" in message, message
        messages.append(message.split(" in /")[0])
        check_kept(index, before)
        code, out = run_index(library, index, tiny_world.bundle)  # with room again, the run completes
        assert code == 0 and "errors 0" in out, out
        assert all(snapshot(index)[p] == row for p, row in before.items())  # not encoded again
        check_index(index)
    assert any("cannot open the catalog" in m for m in messages) and any("cannot record" in m for m in messages)


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "2m"):
    """A tmpfs of `size` mounted at `folder` (a real file system that fills up); skips the test
    where mounting is not allowed (it needs root with CAP_SYS_ADMIN)."""
    folder.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a real full disk needs a small tmpfs, which only root may mount")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def failed_step(output: str) -> str:
    """The step a failed `vidseek index` names: "cannot open the catalog", "could not write
    states.npy", "cannot record new0.mp4 as pending" ..."""
    message = output.strip().splitlines()[-2].split("ClickException: ", 1)[1]
    if message.startswith("could not write "):
        return "could not write " + Path(message.split()[3].rstrip(":")).name.split(".", 1)[1]
    return message.split(" in /")[0]


@pytest.mark.slow
def test_full_disk_at_every_step_gives_a_clear_error_and_keeps_the_index(tiny_world, tmp_path):
    """On a small tmpfs, leave 0, 4, 8 ... KiB free and index: the disk fills up at each step of a
    run in turn (opening the catalog, saving the clip index, recording a video, writing each of its
    cache files). Each time the run stops saying the disk is full and what to do, the index stays
    sound with every video indexed before, and once there is room the next run completes it."""
    library, built = small_library(tmp_path / "lib"), tmp_path / "built"
    code, out = run_index(library, built, tiny_world.bundle)
    assert code == 0, out
    before = grow(library, snapshot(built))
    failed_at = {}
    with small_disk(tmp_path / "disk") as disk:
        index, ballast = disk / "idx", disk / "ballast"
        child = IndexChild(library, index, tiny_world.bundle)
        for free_pages in range(24):
            shutil.rmtree(index, ignore_errors=True)
            shutil.copytree(built, index)
            st = os.statvfs(disk)
            ballast.write_bytes(b"\0" * ((st.f_bavail - free_pages) * st.f_frsize))
            child.go()
            code, out = child.finish()
            child = IndexChild(library, index, tiny_world.bundle)  # loads while this run is checked
            ballast.unlink()
            if code == 0:
                break
            assert "Traceback" not in out and ("the disk is full: free some space" in out
                                               or "No space left on device (ENOSPC)" in out), out
            failed_at[free_pages] = failed_step(out)
            check_kept(index, before)
        child.kill()
        code, out = run_index(library, index, tiny_world.bundle)
        assert code == 0 and "errors 0" in out, out
        check_index(index)
    steps = set(failed_at.values())
    for step in ("could not write faiss", "cannot record new0.mp4 as pending", "could not write states.npy",
                 "could not write clips.npy", "cannot record new0.mp4 as indexed"):
        assert step in steps, (step, failed_at)
    print(f"\nfull disk at {len(failed_at)} points: {sorted(steps)}")


def unprivileged():
    """preexec for a child on which file permissions bite: none for a normal user. Root ignores
    permissions through its capabilities CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so root's child
    drops them from its bounding set (they stay dropped across exec) and stays uid 0 otherwise."""
    if os.geteuid() != 0:
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: the child after fork should only make calls

    def preexec() -> None:
        for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")
    return preexec


def permissions_bite(folder: Path) -> bool:
    """Whether a child started with ``unprivileged()`` is refused a write into a read-only folder."""
    locked = folder / "read-only"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        r = subprocess.run([sys.executable, "-c", f"open({str(locked / 'x')!r}, 'w')"], capture_output=True,
                           text=True, preexec_fn=unprivileged())
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        locked.chmod(0o755)
    return "PermissionError" in r.stderr


@pytest.mark.parametrize("forbid", ["index folder", "cache folder", "catalog file"])
def test_read_only_index_gives_a_clear_error_and_keeps_the_index(tiny_world, tmp_path, forbid):
    """Make part of the index read-only (for a process that cannot override that): the run stops
    with a message naming the problem and the fix, no video is marked as an error, the index stays
    sound, and once writable again the next run completes the library without encoding twice."""
    if not permissions_bite(tmp_path):
        pytest.skip("this process cannot start a child that file permissions apply to (root without CAP_SETPCAP)")
    library, index = small_library(tmp_path / "lib"), tmp_path / "idx"
    code, out = run_index(library, index, tiny_world.bundle)
    assert code == 0, out
    before = grow(library, snapshot(index))
    target = {"index folder": index, "cache folder": index / "cache", "catalog file": index / "catalog.sqlite"}[forbid]
    mode = target.stat().st_mode
    target.chmod(0o555 if target.is_dir() else 0o444)
    try:
        code, out = run_index(library, index, tiny_world.bundle, preexec=unprivileged())
    finally:
        target.chmod(mode)
    assert code == 1 and "Traceback" not in out, out
    message = out.strip().splitlines()[-2]
    expected = {  # what the run could not write, why, and what to do
        "index folder": r"(could not write .*idx/|cannot .* in .*idx/catalog.sqlite).*(Permission denied|read-only)"
                        r".*make (the index folder|it) writable",
        "cache folder": r"could not write .*idx/cache/.*Permission denied \(EACCES\).*make the index folder writable",
        "catalog file": r"cannot .* in .*catalog.sqlite: attempt to write a readonly database.*make it writable"}
    assert re.search(expected[forbid], message), message
    check_kept(index, before)
    code, out = run_index(library, index, tiny_world.bundle, preexec=unprivileged())
    assert code == 0 and "errors 0" in out, out
    assert all(snapshot(index)[p] == row for p, row in before.items())  # not encoded again
    check_index(index)
