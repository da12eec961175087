"""Reliability, round two (docs/reliability.md): thirteen faults an adversarial pass found, each
reproduced from scratch here (the test makes the bad file or the damage itself).

The tiny bundle (conftest ``tiny_world``, 1 step/s) indexes short seeded videos; the model is
untrained, so these tests check the machinery, not accuracy.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

from helpers import QUERY, check_index, invoke, write_video
from vidseek.engine.bundle import BundleError, load_bundle
from vidseek.index.cache import FeatureCache, remove_temporaries
from vidseek.index.catalog import Catalog
from vidseek.index.integrity import check as check_integrity
from vidseek.index.lock import WriterLock
from vidseek.library.searcher import DamagedIndexWarning, DamagedVideoWarning, Searcher

HOURS = 3600 * 1000  # milliseconds


def library(folder: Path, n: int = 3, seconds: float = 8) -> Path:
    for k in range(n):
        write_video(folder / f"v{k}.mp4", seconds=seconds, seed=k)
    return folder


@pytest.fixture
def indexed(tiny_world, tmp_path):
    """A library of three videos and its index: (library, index, bundle)."""
    lib, index = library(tmp_path / "lib"), tmp_path / "idx"
    r = invoke("index", lib, "--index", index, "--model", tiny_world.bundle, "--no-progress")
    assert r.exit_code == 0 and "errors 0" in r.output, r.output
    return lib, index, tiny_world.bundle


def no_traceback(r) -> str:
    assert "Traceback" not in r.output and "Aborted" not in r.output, r.output
    return r.output


# ---- 1. a tiny file whose timestamps span hours --------------------------------------------------
def test_hours_between_three_frames_are_not_footage(tiny_world, tmp_path):
    """Three frames at 0 h, 5 h and 10 h: sampled as the frames that exist (each held 2 s at most),
    not 36,000 s of steps; the moment is placed at its time in the file."""
    lib, index = tmp_path / "lib", tmp_path / "idx"
    write_video(lib / "gaps.mp4", seconds=0, pts_ms=np.array([0, 5 * HOURS, 10 * HOURS]))
    r = invoke("index", lib, "--index", index, "--model", tiny_world.bundle, "--no-progress")
    assert r.exit_code == 0 and "indexed 1 (6 s of video" in r.output, r.output
    with Catalog(index, readonly=True) as cat:
        [video] = cat.videos("ok")
        gaps = cat.gaps()[video.id]
    assert video.steps == 6 and video.duration == 6.0  # 3 frames x 2 s at 1 step/s
    assert [round(s) for _, s in gaps] == [17998, 17998]
    assert (index / "cache" / f"{video.id}.states.npy").stat().st_size < 4096
    moments = Searcher(index).search(QUERY, top_k=3)
    assert moments and all(0 <= m.start < m.end <= 36002 for m in moments)
    late = [m for m in moments if m.start >= 2]  # a moment after the first frame lies after a gap
    assert all(m.start >= 18000 for m in late)


# ---- 2. a damaged clips.faiss ---------------------------------------------------------------------
def test_a_damaged_clip_index_is_detected_and_rebuilt(indexed):
    lib, index, bundle = indexed
    path = index / "clips.faiss"
    data = bytearray(path.read_bytes())
    start = len(data) // 3
    data[start:start + 200] = b"\x7f" * 200  # huge floats inside the vectors; the file still loads
    path.write_bytes(bytes(data))
    with Catalog(index, readonly=True) as cat:
        assert any("does not match the checksum" in p for p in check_integrity(cat))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        moments = Searcher(index).search(QUERY, top_k=10)
    assert any(issubclass(w.category, DamagedIndexWarning) for w in seen)
    assert moments and all(-1.01 <= m.retrieval <= 1.01 for m in moments)  # ranked from the cache
    r = invoke("index", lib, "--index", index, "--model", bundle, "--no-progress")
    assert r.exit_code == 0 and "clips.faiss was damaged" in r.output and "rebuilt" in r.output, r.output
    check_index(index)
    again = invoke("index", lib, "--index", index, "--model", bundle, "--no-progress")
    assert again.exit_code == 0 and "was damaged" not in again.output, again.output


# ---- 3. a 0-byte cache file -----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["states", "clips"])
def test_an_empty_cache_file_is_a_damaged_video(indexed, kind):
    lib, index, bundle = indexed
    with Catalog(index, readonly=True) as cat:
        victim = cat.video("v1.mp4")
    (index / "cache" / f"{victim.id}.{kind}.npy").write_bytes(b"")
    r = invoke("info", "--index", index)
    assert r.exit_code == 0 and "integrity problems" in no_traceback(r) and "unreadable" in r.output, r.output
    r = invoke("doctor", "--index", index)
    assert r.exit_code == 1 and "FAIL  integrity" in no_traceback(r), r.output
    r = invoke("search", QUERY, "--index", index, "--top-k", 20)
    assert r.exit_code == 0, no_traceback(r)
    if kind == "states":  # what a search reads; the clip file is read only to rebuild clips.faiss
        assert "v1.mp4" not in r.stdout and "skipped 'v1.mp4'" in r.stderr, r.output
    r = invoke("index", lib, "--index", index, "--model", bundle, "--no-progress")
    assert r.exit_code == 0 and "1 changed" in no_traceback(r), r.output
    check_index(index)


# ---- 4. a damaged catalog -------------------------------------------------------------------------
def _corrupt_a_path(index: Path) -> None:
    """Make one stored path invalid UTF-8, the way a bit flip in the file does."""
    path = index / "catalog.sqlite"
    data = path.read_bytes()
    at = data.index(b"v1.mp4")
    path.write_bytes(data[:at] + b"\xff\xfe" + data[at + 2:])


def _corrupt_pages(index: Path) -> None:
    path = index / "catalog.sqlite"
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(3)
    for at in rng.integers(100, len(data), size=400):
        data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_corrupt_a_path, _corrupt_pages], ids=["utf8", "pages"])
def test_a_damaged_catalog_is_named_never_written_and_rebuilt(indexed, damage):
    lib, index, bundle = indexed
    damage(index)
    before = (index / "catalog.sqlite").read_bytes()
    for args in (("info", "--index", index), ("search", QUERY, "--index", index), ("doctor", "--index", index),
                 ("index", lib, "--index", index, "--model", bundle, "--no-progress")):
        r = invoke(*args)
        assert r.exit_code == 1, (args, r.output)
        assert "--rebuild" in no_traceback(r) and "catalog" in r.output, (args, r.output)
    assert (index / "catalog.sqlite").read_bytes() == before  # `index` wrote nothing into it
    r = invoke("index", lib, "--index", index, "--model", bundle, "--no-progress", "--rebuild")
    assert r.exit_code == 0 and "indexed 3" in no_traceback(r), r.output
    check_index(index)


# ---- 5. searching a read-only index ---------------------------------------------------------------
@contextlib.contextmanager
def read_only_copy(index: Path, folder: Path, full: bool = False):
    """A copy of the index folder on a tmpfs remounted read-only (a Jetson's read-only partition),
    or left full (``full``); skips where mounting is not allowed."""
    folder.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a read-only or full file system needs a tmpfs, which only root may mount")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()})")
    try:
        copy = folder / "idx"
        shutil.copytree(index, copy, ignore=shutil.ignore_patterns("catalog.sqlite-*", ".lock"))
        if full:
            # unbuffered: a buffered file's close would flush what the full disk refused, and raise
            with open(folder / "filler", "wb", buffering=0) as fh, contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * (1 << 16))
        else:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield copy
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.parametrize("full", [False, True], ids=["read-only", "full"])
def test_search_and_info_need_no_write_access(indexed, tmp_path, full):
    _, index, _ = indexed
    expected = [m.to_dict() for m in Searcher(index).search(QUERY, top_k=5)]
    with read_only_copy(index, tmp_path / "ro", full=full) as copy:
        r = invoke("search", QUERY, "--index", copy, "--top-k", 5, "--json")
        assert r.exit_code == 0, no_traceback(r)
        assert [json.loads(line) for line in r.stdout.splitlines()] == expected
        r = invoke("info", "--index", copy, "--json")
        assert r.exit_code == 0 and json.loads(r.stdout)["counts"]["ok"] == 3, no_traceback(r)


# ---- 6. temporaries: only the index's own --------------------------------------------------------
def test_only_the_index_own_temporaries_are_deleted(tmp_path):
    index = tmp_path / "idx"
    mine = [index / ".clips.faiss.a1b2.tmp", index / "cache" / ".12.states.npy.x9.tmp",
            index / "cache" / ".3.clips.npy.q.tmp"]
    theirs = [index / "project" / "sub" / ".draft.tmp", index / ".notes.tmp", index / "cache" / ".x.tmp",
              index / "cache" / "sub" / ".4.states.npy.z.tmp"]
    for path in mine + theirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    assert remove_temporaries(index) == len(mine)
    assert not any(p.exists() for p in mine) and all(p.exists() for p in theirs)


# ---- 7. the lock file is never followed through a link -------------------------------------------
def test_the_lock_refuses_a_symlink_and_a_fifo(tmp_path, indexed):
    lib, index, bundle = indexed
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (index / ".lock").unlink()
    (index / ".lock").symlink_to(target)
    r = invoke("index", lib, "--index", index, "--model", bundle, "--no-progress")
    assert r.exit_code == 1 and "symbolic link" in no_traceback(r), r.output
    assert target.read_text() == "keep me"
    (index / ".lock").unlink()
    os.mkfifo(index / ".lock")
    with pytest.raises(Exception, match="not a regular file"):
        WriterLock(index).acquire()


# ---- 8. the fingerprint covers every setting and file; settings are validated --------------------
def _edited_bundle(bundle: Path, folder: Path, edit) -> Path:
    copy = folder / "bundle"
    shutil.copytree(bundle, copy)
    meta = json.loads((copy / "bundle.json").read_text())
    edit(meta)
    (copy / "bundle.json").write_text(json.dumps(meta))
    return copy


def test_the_fingerprint_covers_settings_and_every_file(tiny_world, tmp_path):
    original = load_bundle(tiny_world.bundle)
    spec = lambda m: m["features"]["frame_encoder"]["spec"]  # noqa: E731
    renormalised = _edited_bundle(tiny_world.bundle, tmp_path / "a", lambda m: spec(m).update(mean=[0.4, 0.4, 0.4]))
    assert load_bundle(renormalised).fingerprint != original.fingerprint
    described = _edited_bundle(tiny_world.bundle, tmp_path / "b", lambda m: m.update(trained={"note": "x"}))
    assert load_bundle(described).fingerprint == original.fingerprint  # how it was made changes no output
    extra = _edited_bundle(tiny_world.bundle, tmp_path / "c", lambda m: None)
    (extra / "head.onnx.data").write_bytes(b"weights")  # external data bundle.json does not list
    with pytest.raises(BundleError, match="head.onnx.data, which bundle.json does not list"):
        load_bundle(extra)


@pytest.mark.parametrize("field,edit", [
    ("features.frame_encoder.rate", lambda m: m["features"]["frame_encoder"].update(rate=0)),
    ("features.frame_encoder.spec.width", lambda m: m["features"]["frame_encoder"]["spec"].update(width=0)),
    ("features.frame_encoder.spec.height", lambda m: m["features"]["frame_encoder"]["spec"].update(height=100000)),
    ("features.frame_encoder.spec.std", lambda m: m["features"]["frame_encoder"]["spec"].update(std=[0, 1, 1])),
    ("model", lambda m: m["model"].update(name="mymodel")),  # 11: a name without '-'
])
def test_invalid_settings_refuse_the_bundle_naming_the_field(tiny_world, tmp_path, indexed, field, edit):
    lib, index, _ = indexed
    bad = _edited_bundle(tiny_world.bundle, tmp_path, edit)
    with pytest.raises(BundleError, match=field.replace(".", r"\.")):
        load_bundle(bad)
    r = invoke("index", lib, "--index", tmp_path / "other", "--model", bad, "--no-progress")
    assert r.exit_code == 1 and field in no_traceback(r), r.output
    assert not (tmp_path / "other" / "catalog.sqlite").exists() or "error" not in invoke(
        "info", "--index", tmp_path / "other").output


# ---- 9. queries the tokenizer reads as nothing ----------------------------------------------------
@pytest.mark.parametrize("query", ["\u200b", "\x01", "\u202e", "\u200b\u200b \x01"])
def test_queries_of_invisible_characters_are_empty(query):
    from vidseek.builtin import builtin_bundle
    from vidseek.engine.grounder import Grounder, QueryError

    grounder = Grounder(load_bundle(builtin_bundle()))  # WordPiece: [CLS], [SEP], [UNK]
    with pytest.raises(QueryError, match="is empty"):
        grounder.tokenize([query])


# ---- 10. NaN in a cache file ----------------------------------------------------------------------
def test_nan_in_the_states_is_a_damaged_video_never_ranked(indexed):
    lib, index, bundle = indexed
    with Catalog(index, readonly=True) as cat:
        victim = cat.video("v0.mp4")
    path = index / "cache" / f"{victim.id}.states.npy"
    states = np.load(path)
    if states.dtype == np.float16:
        states[:] = np.nan
    else:  # quantized states (int4, the default; int8): every row's float32 scale
        states[:, -4:] = np.array([np.nan], "<f4").view(states.dtype)
    np.save(path, states)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        moments = Searcher(index).search(QUERY, top_k=20)
    assert moments and all(np.isfinite(m.score) and m.video != "v0.mp4" for m in moments)
    assert any(issubclass(w.category, DamagedVideoWarning) and "NaN" in str(w.message) for w in seen)
    with Catalog(index, readonly=True) as cat:
        assert any("NaN" in p for p in check_integrity(cat))
    r = invoke("index", lib, "--index", index, "--model", bundle, "--no-progress")
    assert r.exit_code == 0 and "1 changed" in r.output, r.output
    check_index(index)


# ---- 12. ONNX external data outside the bundle ----------------------------------------------------
def test_a_graph_that_onnxruntime_refuses_is_a_bundle_error(tmp_path):
    from vidseek.engine.session import make_session

    graph = tmp_path / "head.onnx"
    graph.write_bytes(b"\x08\x07\x12\x04junk" * 10)
    with pytest.raises(BundleError, match="onnxruntime cannot load the graph .*re-export"):
        make_session(graph)


# ---- 13. control characters in file names --------------------------------------------------------
def test_file_names_cannot_drive_the_terminal(tiny_world, tmp_path):
    lib, index = tmp_path / "lib", tmp_path / "idx"
    name = "a\x1b]0;owned\x07\nrow.mp4"
    write_video(lib / name, seconds=6, seed=4)
    r = invoke("index", lib, "--index", index, "--model", tiny_world.bundle, "--no-progress")
    assert r.exit_code == 0, r.output
    r = invoke("search", QUERY, "--index", index)
    assert r.exit_code == 0 and "\x1b" not in r.stdout and "\x07" not in r.stdout, r.stdout
    rows = r.stdout.strip().splitlines()[1:]
    assert rows and all(row.endswith("a\\x1b]0;owned\\x07\\nrow.mp4") for row in rows), r.stdout
