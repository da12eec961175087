"""Paths that work: results carry the file's own path, --video takes any path to an indexed file,
`info --videos` lists the library, deleted or changed files are not returned, and a moved library
is recognised by content."""

from __future__ import annotations

import json
import os
import shutil
import warnings

import pytest

from helpers import QUERY, check_index, invoke, write_video
from vidseek.library.api import Index
from vidseek.library.searcher import NotIndexed, StaleVideoWarning


@pytest.fixture
def indexed(tiny_world, tmp_path):
    lib, index = tmp_path / "lib", tmp_path / "idx"
    for k in range(3):
        write_video(lib / "sub" / f"v{k}.mp4", seconds=8, seed=k)
    r = invoke("index", lib, "--index", index, "--model", tiny_world.bundle, "--no-progress")
    assert r.exit_code == 0, r.output
    return lib, index, tiny_world.bundle


def test_results_carry_the_absolute_path(indexed):
    lib, index, _ = indexed
    with Index(index) as idx:
        moments = idx.search(QUERY, top_k=5)
    assert moments and all(m.path == str(lib.resolve() / m.video) and os.path.isfile(m.path) for m in moments)
    r = invoke("search", QUERY, "--index", index, "--json", "--top-k", 2)
    assert all(json.loads(line)["path"].startswith(str(lib.resolve())) for line in r.stdout.splitlines())


def test_video_accepts_absolute_working_directory_and_library_paths(indexed, monkeypatch):
    lib, index, _ = indexed
    monkeypatch.chdir(lib.parent)
    for given in ("sub/v1.mp4", str(lib.resolve() / "sub" / "v1.mp4"), "lib/sub/v1.mp4", "./lib/sub/../sub/v1.mp4"):
        with Index(index) as idx:
            assert {m.video for m in idx.search(QUERY, video=given)} == {"sub/v1.mp4"}, given
        r = invoke("search", QUERY, "--index", index, "--video", given, "--json")
        assert r.exit_code == 0 and {json.loads(x)["video"] for x in r.stdout.splitlines()} == {"sub/v1.mp4"}, given
    with Index(index) as idx, pytest.raises(NotIndexed, match="info --videos"):
        idx.search(QUERY, video="elsewhere/v1.mp4")


def test_info_lists_the_indexed_videos(indexed):
    _, index, _ = indexed
    r = invoke("info", "--index", index, "--videos")
    assert r.exit_code == 0 and all(f"sub/v{k}.mp4" in r.stdout for k in range(3)), r.output
    assert "8.0  sub/v0.mp4" in r.stdout
    data = json.loads(invoke("info", "--index", index, "--videos", "--json").stdout)
    assert [(v["path"], v["status"], v["duration"]) for v in data["videos"]] == [
        (f"sub/v{k}.mp4", "ok", 8.0) for k in range(3)]


def test_deleted_or_changed_files_are_not_returned(indexed):
    lib, index, _ = indexed
    (lib / "sub" / "v0.mp4").unlink()
    write_video(lib / "sub" / "v1.mp4", seconds=9, seed=7)  # changed since it was indexed
    with Index(index) as idx, warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        moments = idx.search(QUERY, top_k=10)
    assert moments and {m.video for m in moments} == {"sub/v2.mp4"}
    [warning] = [w for w in seen if issubclass(w.category, StaleVideoWarning)]
    assert "'sub/v0.mp4' (deleted)" in str(warning.message) and "'sub/v1.mp4' (changed)" in str(warning.message)
    r = invoke("search", QUERY, "--index", index)
    assert r.exit_code == 0 and "deleted or changed since indexing" in r.stderr and "vidseek index" in r.stderr


def test_a_moved_library_is_recognised_by_content(indexed, tmp_path):
    lib, index, bundle = indexed
    before = check_index(index)
    moved = tmp_path / "elsewhere" / "library"
    moved.parent.mkdir()
    shutil.copytree(lib, moved)  # a copy: new mtimes, same content
    shutil.rmtree(lib)
    r = invoke("index", moved, "--index", index, "--model", bundle, "--no-progress")
    assert r.exit_code == 0 and "3 of 3 videos matched by content" in r.output and "indexed 0" in r.output, r.output
    assert check_index(index) == before  # the same ids: nothing encoded again
    with Index(index) as idx:
        assert all(m.path.startswith(str(moved.resolve())) for m in idx.search(QUERY))
    other = tmp_path / "other"
    write_video(other / "x.mp4", seconds=5, seed=9)
    r = invoke("index", other, "--index", index, "--model", bundle, "--no-progress")
    assert r.exit_code == 1 and "--rebuild" in r.output  # another library is still refused
