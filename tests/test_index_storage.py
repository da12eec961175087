"""Storage layer of the library index: catalog, feature cache, clip index, writer lock (issue 5).

Seeded, offline, synthetic files and vectors made here; no model, no decoding.
"""

from __future__ import annotations

import errno
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import index_library
from vidseek.atomic import atomic_write
from vidseek.index.cache import (
    CacheError,
    FeatureCache,
    StorageWriteError,
    remove_temporaries,
    storage_errors,
)
from vidseek.index.integrity import check as check_integrity
from vidseek.index.catalog import (
    SCHEMA_VERSION,
    Catalog,
    CatalogError,
    FileState,
    IndexMismatch,
    UnsafePath,
    content_hash,
)
from vidseek.index.clips import (
    ClipIndex,
    ClipIndexError,
    choose_index,
    decode_ids,
    encode_ids,
)
from vidseek.index.lock import IndexLocked, WriterLock
from vidseek.index.settings import windows

ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20


# ---- helpers -------------------------------------------------------------------------------------
def make_library(folder: Path) -> Path:
    """A library: two small videos, one 3 MiB video, a non-video and a hidden folder."""
    rng = np.random.default_rng(0)
    (folder / "sub").mkdir(parents=True)
    (folder / "a.mp4").write_bytes(rng.bytes(1000))
    (folder / "b.mkv").write_bytes(rng.bytes(3 * MIB))
    (folder / "sub" / "c.MOV").write_bytes(rng.bytes(5000))
    (folder / "notes.txt").write_text("not a video")
    (folder / ".vidseek").mkdir()
    (folder / ".vidseek" / "hidden.mp4").write_bytes(b"skipped")
    return folder


def index_all(catalog: Catalog, files: list[FileState], steps: int = 12) -> dict[str, int]:
    ids = {}
    for f in files:
        catalog.record_pending(f)
        ids[f.path] = catalog.record_ok(f, duration=steps / 5.0, fps=25.0, steps=steps)
    return ids


def clustered(n_videos: int, windows_per_video: int, dim: int, seed: int = 0) -> np.ndarray:
    """(n_videos, W, dim) unit vectors: one random centre per video plus noise (within-video
    cosine about 0.8), like the overlapping windows of real videos."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_videos, 1, dim))
    x = centres + 0.5 * rng.standard_normal((n_videos, windows_per_video, dim))
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def exact_top(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Ids (Q, k) of the exact top-k by inner product with the float16-stored vectors."""
    stored = vectors.astype(np.float16).astype(np.float32)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    return ids[np.argsort(-(q @ stored.T), axis=1)[:, :k]]


def fill(index: ClipIndex, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Add videos 1..V of ``emb`` (V, W, E); returns all vectors (N, E) and their ids (N,)."""
    for v in range(emb.shape[0]):
        index.add(v + 1, emb[v])
    ids = np.concatenate([encode_ids(v + 1, np.arange(emb.shape[1])) for v in range(emb.shape[0])])
    return emb.reshape(-1, emb.shape[-1]), ids


# ---- catalog -------------------------------------------------------------------------------------
def test_catalog_round_trip_in_wal_mode(tmp_path):
    lib = make_library(tmp_path / "lib")
    index_dir = tmp_path / "idx"
    with Catalog(index_dir) as cat:
        cat.update_settings(root=str(lib.resolve()), fingerprint="fa6a691419a86593", window_s=4.0, stride_s=2.0,
                            rate=5.0, dim=16, state_dim=8)
        plan = cat.scan(lib)
        assert [f.path for f in plan.new] == ["a.mp4", "b.mkv", "sub/c.MOV"]  # sorted, hidden and .txt skipped
        ids = index_all(cat, plan.new[:2])
        bad = cat.record_error(plan.new[2], "moov atom not found")
    with Catalog(index_dir, readonly=True) as cat:
        assert cat.settings().fingerprint == "fa6a691419a86593" and cat.settings().rate == 5.0
        assert cat.root == lib.resolve()
        assert cat.counts() == {"ok": 2, "error": 1, "pending": 0}
        a = cat.video("a.mp4")
        assert (a.id, a.status, a.steps, a.duration, a.fps, a.size) == (ids["a.mp4"], "ok", 12, 2.4, 25.0, 1000)
        assert a.content_hash == content_hash(lib / "a.mp4")
        assert cat.video(bad).error == "moov atom not found" and cat.video(bad).status == "error"
        assert [v.path for v in cat.videos("ok")] == ["a.mp4", "b.mkv"]
        assert cat.resolve("sub/c.MOV") == lib.resolve() / "sub" / "c.MOV"
        with pytest.raises(CatalogError, match="read-only"):
            cat.record_error("a.mp4", "x")
    db = sqlite3.connect(index_dir / "catalog.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_scan_tells_touch_from_real_change(tmp_path):
    lib = make_library(tmp_path / "lib")
    cat = Catalog(tmp_path / "idx")
    cat.update_settings(root=str(lib.resolve()))
    old_ids = index_all(cat, cat.scan(lib).new)

    later = time.time_ns() + 10**9
    os.utime(lib / "a.mp4", ns=(later, later))  # touched: same content
    big = bytearray((lib / "b.mkv").read_bytes())  # same size, last MiB edited
    big[-10] ^= 0xFF
    (lib / "b.mkv").write_bytes(bytes(big))
    (lib / "sub" / "c.MOV").unlink()
    (lib / "sub" / "d.webm").write_bytes(b"new video")

    plan = cat.scan(lib)
    assert [f.path for f in plan.new] == ["sub/d.webm"]
    assert [(f.path, f.video_id) for f in plan.changed] == [("b.mkv", old_ids["b.mkv"])]
    assert [f.path for f in plan.unchanged] == ["a.mp4"] and [f.path for f in plan.touched] == ["a.mp4"]
    assert [v.path for v in plan.deleted] == ["sub/c.MOV"]
    assert plan.summary() == "1 new, 1 changed, 1 unchanged, 1 deleted, 0 unreadable"

    cat.update_stat(plan.touched)
    new_id = cat.record_pending(plan.changed[0])
    assert new_id not in old_ids.values()  # a re-encoding gets a fresh id
    assert cat.remove([v.path for v in plan.deleted]) == [old_ids["sub/c.MOV"]]
    # the pending row (an interrupted encoding) is redone; the touched file is no longer hashed as changed
    plan = cat.scan(lib)
    assert [f.path for f in plan.changed] == ["b.mkv"] and plan.touched == [] and plan.deleted == []
    cat.record_ok(plan.changed[0], duration=1.0, fps=30.0, steps=5)
    cat.record_error(plan.new[0], "cannot decode")
    plan = cat.scan(lib)
    assert [f.path for f in plan.unchanged] == ["a.mp4", "b.mkv", "sub/d.webm"]  # errors are not retried...
    assert [f.path for f in cat.scan(lib, retry_errors=True).changed] == ["sub/d.webm"]  # ...unless asked
    ids = [v.id for v in cat.videos()]
    cat.remove(["sub/d.webm"])
    cat.record_pending(FileState("sub/e.mp4", 1, 1, None))
    assert cat.video("sub/e.mp4").id > max(ids)  # ids are never reused


def test_scan_of_another_root_is_refused(tmp_path):
    lib, other = make_library(tmp_path / "lib"), make_library(tmp_path / "other")
    cat = Catalog(tmp_path / "idx")
    cat.update_settings(root=str(lib.resolve()))
    with pytest.raises(IndexMismatch, match=str(other.resolve())):
        cat.scan(other)


def test_fingerprint_mismatch_names_both(tmp_path):
    cat = Catalog(tmp_path / "idx")
    cat.check_fingerprint("1111111111111111")  # a fresh index accepts any bundle
    cat.update_settings(fingerprint="1111111111111111")
    cat.check_fingerprint("1111111111111111")
    with pytest.raises(IndexMismatch) as err:
        cat.check_fingerprint("2222222222222222")
    message = str(err.value)
    assert "1111111111111111" in message and "2222222222222222" in message and "--rebuild" in message
    with pytest.raises(IndexMismatch, match=r"window_s=4\.0.*window_s=6\.0"):
        cat.update_settings(window_s=4.0)
        cat.check_settings(window_s=6.0)


@pytest.mark.parametrize("bad", ["../outside.mp4", "sub/../../outside.mp4", "/etc/passwd", ""])
def test_escaping_paths_are_refused(tmp_path, bad):
    lib = make_library(tmp_path / "lib")
    cat = Catalog(tmp_path / "idx")
    cat.update_settings(root=str(lib.resolve()))
    with pytest.raises(UnsafePath):
        cat.record_ok(FileState(bad, 1, 1, "h"), duration=1.0, fps=25.0, steps=3)
    with pytest.raises(UnsafePath):
        cat.resolve(bad)
    assert cat.videos() == []


def test_tampered_catalog_path_is_refused(tmp_path):
    lib = make_library(tmp_path / "lib")
    cat = Catalog(tmp_path / "idx")
    cat.update_settings(root=str(lib.resolve()))
    db = sqlite3.connect(tmp_path / "idx" / "catalog.sqlite")
    db.execute("INSERT INTO videos (path, size, mtime_ns, status, added_at) "
               "VALUES ('../../etc/passwd', 1, 1, 'error', 0)")
    db.commit()
    db.close()
    with pytest.raises(UnsafePath, match="leaves the library root"):
        cat.resolve(cat.videos()[0].path)
    assert any("../../etc/passwd" in p for p in check_integrity(cat))


def test_newer_schema_is_refused(tmp_path):
    Catalog(tmp_path / "idx").close()
    db = sqlite3.connect(tmp_path / "idx" / "catalog.sqlite")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    for readonly in (False, True):
        with pytest.raises(CatalogError, match=f"schema version {SCHEMA_VERSION + 1}.*upgrade vidseek"):
            Catalog(tmp_path / "idx", readonly=readonly)


def test_missing_index_and_garbage_catalog_are_clear(tmp_path):
    with pytest.raises(CatalogError, match="no index at .*vidseek index"):
        Catalog(tmp_path / "nowhere", readonly=True)
    (tmp_path / "idx").mkdir()
    (tmp_path / "idx" / "catalog.sqlite").write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(CatalogError, match="damaged.*--rebuild"):
        Catalog(tmp_path / "idx")


def test_content_hash_reads_size_head_and_tail(tmp_path):
    rng = np.random.default_rng(1)
    data = bytearray(rng.bytes(5 * MIB))
    f = tmp_path / "v.mp4"
    f.write_bytes(bytes(data))
    h = content_hash(f)
    data[2 * MIB] ^= 1  # the middle is not read
    f.write_bytes(bytes(data))
    assert content_hash(f) == h
    data[MIB - 1] ^= 1  # the first MiB is
    f.write_bytes(bytes(data))
    assert content_hash(f) != h
    f.write_bytes(bytes(data) + b"\0")  # and the size
    assert content_hash(f) != h


# ---- feature cache -------------------------------------------------------------------------------
def test_cache_round_trip_float16_read_only_memmap(tmp_path):
    cache = FeatureCache(tmp_path)
    x = np.random.default_rng(0).standard_normal((37, 24)).astype(np.float32)
    path = cache.put(5, x)
    assert path == tmp_path / "cache" / "5.states.npy"
    y = cache.get(5, shape=(37, 24))
    assert isinstance(y, np.memmap) and y.dtype == np.float16 and y.shape == (37, 24)
    np.testing.assert_allclose(y, x, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError):  # read-only map
        y[0, 0] = 1
    assert cache.video_ids() == [5] and FeatureCache(tmp_path, "clips").video_ids() == []
    cache.put(5, x[:3])  # replaced atomically
    assert cache.get(5).shape == (3, 24)
    assert not list((tmp_path / "cache").glob(".*.tmp"))
    assert cache.remove(5) and not cache.remove(5)


@pytest.mark.parametrize("precision, bytes_per_step, tolerance", [("int8", 24 + 4, 1 / 254), ("int4", 12 + 4, 1 / 14)])
def test_quantized_states_read_like_the_array_they_stand_for(tmp_path, precision, bytes_per_step, tolerance):
    cache = FeatureCache(tmp_path, precision=precision)
    x = np.random.default_rng(0).standard_normal((37, 24)).astype(np.float32)
    x[5] = 0  # an all-zero step
    path = cache.put(5, x)
    assert path.stat().st_size - 128 == 37 * bytes_per_step  # after the 128-byte .npy header
    y = cache.get(5, shape=(37, 24))
    assert y.shape == (37, 24) and len(y) == 37 and y.dtype == np.float32
    full = np.asarray(y)
    peak = np.abs(x).max(1, keepdims=True)
    assert (np.abs(full - x) <= tolerance * peak + 1e-6).all()  # within half a step of each row's own scale
    assert not full[5].any()
    np.testing.assert_array_equal(y[3:9], full[3:9])
    np.testing.assert_array_equal(y[7], full[7])
    assert np.isfinite(y).all()
    with pytest.raises(CacheError, match=r"\('any', 25\)"):
        cache.get(5, shape=(None, 25))
    FeatureCache(tmp_path).put(6, x)  # float16 and quantized files side by side: each read as it is
    assert cache.get(6).dtype == np.float16 and FeatureCache(tmp_path).get(5).shape == (37, 24)
    cache.put(7, x[:, :23])  # int4 packs pairs: an odd width is stored as int8
    assert cache.get(7).shape == (37, 23) and cache.get(7).precision == "int8"


def test_clip_embeddings_are_never_quantized():
    with pytest.raises(ValueError, match="clips are float16"):
        FeatureCache("idx", "clips", precision="int8")


def test_cache_shape_and_value_errors_are_clear(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.put(1, np.zeros((10, 8)))
    with pytest.raises(CacheError) as err:
        cache.get(1, shape=(12, 8))
    assert "1.states.npy" in str(err.value) and "(10, 8)" in str(err.value) and "(12, 8)" in str(err.value)
    assert cache.get(1, shape=(10, None)).shape == (10, 8)
    with pytest.raises(CacheError, match=r"\('any', 9\)"):
        cache.get(1, shape=(None, 9))
    with pytest.raises(CacheError, match="missing"):
        cache.get(2)
    with pytest.raises(CacheError, match="float16 range"):
        cache.put(3, np.full((2, 2), 1e6))
    with pytest.raises(CacheError, match="NaN"):
        cache.put(3, np.full((2, 2), np.nan))
    with pytest.raises(CacheError, match=r"non-empty \(T, H\)"):
        cache.put(3, np.zeros((0, 4)))


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "clips.faiss"
    target.write_bytes(b"previous")

    def disk_full(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(StorageWriteError, match="ENOSPC.*unchanged.*free some disk space"):
        with storage_errors(target):
            atomic_write(target, disk_full)
    assert target.read_bytes() == b"previous" and sorted(p.name for p in tmp_path.iterdir()) == ["clips.faiss"]
    (tmp_path / ".clips.faiss.abc.tmp").write_bytes(b"left by a killed writer")
    assert remove_temporaries(tmp_path) == 1


# ---- windows and ids -----------------------------------------------------------------------------
@pytest.mark.parametrize("n_steps", [1, 7, 19, 20, 21, 24, 25, 26, 97])
def test_windows_cover_the_video_with_the_last_aligned_to_the_end(n_steps):
    rate, length_s, stride_s = 5.0, 4.0, 2.0  # 20-step windows every 10 steps
    ws = windows(n_steps, rate, length_s, stride_s)
    assert ws[0][0] == 0 and ws[-1][1] == n_steps
    covered = np.zeros(n_steps, bool)
    for s, e in ws:
        assert 0 <= s < e <= n_steps and e - s == min(20, n_steps)
        covered[s:e] = True
    assert covered.all()
    starts = [s for s, _ in ws]
    assert starts == sorted(set(starts))  # no duplicate windows
    assert all(b - a <= 10 for a, b in itertools.pairwise(starts))


def test_windows_refuse_bad_arguments():
    with pytest.raises(ValueError, match="stride"):
        windows(10, 5.0, 2.0, 3.0)
    with pytest.raises(ValueError, match="> 0"):
        windows(10, 0.0, 2.0, 1.0)
    assert windows(10, 1.0, 0.2, 0.1) == [(i, i + 1) for i in range(10)]  # at least one step


def test_ids_round_trip():
    ids = encode_ids(123456, np.array([0, 1, 2**20 - 1]))
    video, window = decode_ids(ids)
    assert video.tolist() == [123456] * 3 and window.tolist() == [0, 1, 2**20 - 1]
    with pytest.raises(ClipIndexError, match="window numbers"):
        encode_ids(1, np.array([2**20]))


# ---- clip index ----------------------------------------------------------------------------------
def test_flat_search_finds_the_planted_window_exactly(tmp_path):
    emb = clustered(8, 30, 32, seed=1)
    index = ClipIndex(tmp_path, 32, gpu=False)
    vectors, ids = fill(index, emb)
    assert index.choice.kind == "flat" and index.ntotal == 240
    rng = np.random.default_rng(2)
    planted = [(3, 7), (1, 0), (8, 29)]
    queries = np.stack([emb[v - 1, w] + 0.01 * rng.standard_normal(32) for v, w in planted])
    scores, video, window = index.search(queries, k=10)
    assert [(int(v), int(w)) for v, w in zip(video[:, 0], window[:, 0])] == planted
    assert (np.diff(scores, axis=1) <= 1e-6).all() and (scores[:, 0] > 0.99).all()
    expected = exact_top(vectors, ids, queries, 10)
    np.testing.assert_array_equal(encode_ids(0, window) + (video << 20), expected)
    s, v, w = index.search(queries[:1], k=500)  # more than there are
    assert (v[0, 240:] == -1).all() and np.isneginf(s[0, 240:]).all() and (w[0, 240:] == -1).all()


@pytest.mark.parametrize("large", ["auto", "ivf", "ivfsq", "ivfpq"])  # auto: HNSW on CPU; IVF the GPU's; SQ8 past HNSW
def test_index_above_the_threshold_keeps_recall(tmp_path, large):
    emb = clustered(30, 100, 32, seed=3)  # 3000 vectors
    index = ClipIndex(tmp_path, 32, flat_max=1000, gpu=False, large=large)
    kind = {"auto": "hnsw"}.get(large, large)
    assert choose_index(3000, 32, flat_max=1000, gpu=False, large=large).kind == kind
    vectors, ids = fill(index, emb)  # one video at a time, as the writer does
    assert index.choice.kind == kind  # switched from Flat past flat_max
    rng = np.random.default_rng(4)
    queries = vectors[rng.integers(0, len(vectors), 200)] + 0.3 * rng.standard_normal((200, 32)).astype(np.float32)
    _, video, window = index.search(queries, k=10)
    found = (video << 20) + window
    expected = exact_top(vectors, ids, queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, expected)])
    # IVF-PQ orders a video's near-tie windows less well at depth 10 (clips.py has the figures); @50 below
    assert recall >= (0.9 if kind == "ivfpq" else 0.95), f"{index.choice.describe()}: recall@10 {recall:.3f}"


@pytest.mark.parametrize("large", ["flat", "ivf", "hnsw", "ivfsq", "ivfpq"])
def test_removed_video_is_never_returned(tmp_path, large):
    emb = clustered(12, 100, 16, seed=5)
    index = ClipIndex(tmp_path, 16, flat_max=10**9 if large == "flat" else 500, gpu=False,
                      large="auto" if large == "flat" else large)
    fill(index, emb)
    assert index.choice.kind == large
    index.remove_video(4)
    index.remove_videos([7, 99])  # unknown ids are ignored
    assert index.video_ids() == set(range(1, 13)) - {4, 7} and index.ntotal == 1000
    _, video, _ = index.search(np.concatenate([emb[3], emb[6]]), k=50)
    assert not np.isin(video, [4, 7]).any()
    index.add(5, emb[4][:20])  # replacing a video's clips drops the old ones
    assert index.ntotal == 920 and (index.ids() >> 20 == 5).sum() == 20
    assert index.video_ids() == set((index.ids() >> 20).tolist())


def test_save_load_round_trip_and_reconcile(tmp_path):
    emb = clustered(12, 100, 16, seed=6)
    index = ClipIndex(tmp_path, 16, flat_max=500, gpu=False)
    fill(index, emb)
    index.save()
    queries = emb[:, 0] + 0.05
    before = index.search(queries, k=5)
    loaded = ClipIndex(tmp_path, 16, flat_max=500, gpu=False)
    assert loaded.load() and loaded.choice == index.choice and loaded.ntotal == 1200
    for a, b in zip(before, loaded.search(queries, k=5)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ClipIndexError, match="16-d.*32-d"):
        ClipIndex(tmp_path, 32).load()
    # the catalog moved on after the save: video 2 is gone, video 13 was added (its embeddings cached)
    index.embeddings.put(13, emb[0])
    result = loaded.reconcile([v for v in range(1, 14) if v != 2] + [14])
    assert (result.added, result.removed, result.missing) == ([13], [2], [14])
    assert loaded.video_ids() == set(range(1, 14)) - {2}
    (tmp_path / "clips.faiss").write_bytes(b"garbage")
    with pytest.raises(ClipIndexError, match="unreadable.*rebuilds it"):
        ClipIndex(tmp_path, 16).load()


# ---- integrity -----------------------------------------------------------------------------------
def build_small_index(tmp_path: Path) -> tuple[Catalog, ClipIndex, dict[str, int]]:
    lib = make_library(tmp_path / "lib")
    index_dir = tmp_path / "idx"
    cat = Catalog(index_dir)
    cat.update_settings(root=str(lib.resolve()), rate=5.0, window_s=4.0, stride_s=2.0, dim=16, state_dim=8)
    clips, states = ClipIndex(index_dir, 16, gpu=False), FeatureCache(index_dir)
    rng = np.random.default_rng(7)
    ids = {}
    for f in cat.scan(lib).new:
        vid = cat.record_pending(f)
        states.put(vid, rng.standard_normal((33, 8)))
        clips.add(vid, rng.standard_normal((len(windows(33, 5.0, 4.0, 2.0)), 16)))
        ids[f.path] = cat.record_ok(f, duration=6.6, fps=25.0, steps=33)
    clips.save()
    return cat, clips, ids


def test_integrity_check_passes_then_finds_a_deleted_cache_file(tmp_path):
    cat, _, ids = build_small_index(tmp_path)
    assert check_integrity(cat) == []
    FeatureCache(tmp_path / "idx").path(ids["b.mkv"]).unlink()
    problems = check_integrity(cat)
    assert len(problems) == 1 and "b.mkv" in problems[0] and "states.npy is missing" in problems[0]


def test_integrity_check_finds_wrong_shapes_and_unknown_faiss_ids(tmp_path):
    cat, clips, ids = build_small_index(tmp_path)
    FeatureCache(tmp_path / "idx", "clips").put(ids["a.mp4"], np.ones((2, 16)))
    clips.add(999, np.ones((3, 16)))
    clips.save()
    problems = "\n".join(check_integrity(cat))
    assert "1.clips.npy has shape (2, 16) but the catalog expects (3, 16)" in problems
    assert "does not know (ids 999)" in problems


# ---- the write protocol under SIGKILL -------------------------------------------------------------
WRITER = """
import sys
sys.path.insert(0, sys.argv[3])
from pathlib import Path
from helpers import index_library
index_library(Path(sys.argv[1]), Path(sys.argv[2]), say=lambda p: print(p, flush=True))
"""


def test_killed_writer_leaves_a_sound_index_that_the_next_run_completes(tmp_path):
    lib, index_dir = tmp_path / "lib", tmp_path / "idx"
    lib.mkdir()
    rng = np.random.default_rng(8)
    paths = [f"v{i:02d}.mp4" for i in range(24)]
    for i, name in enumerate(paths):
        (lib / name).write_bytes(rng.bytes(1000 + i))
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(lib), str(index_dir), str(Path(__file__).parent)],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    finished = [writer.stdout.readline().strip() for _ in range(8)]
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert finished == paths[:8]

    with Catalog(index_dir, readonly=True) as cat:
        assert check_integrity(cat) == []
        done = {v.path for v in cat.videos("ok")}
    assert set(finished) <= done and len(done) < len(paths)
    encoded = index_library(lib, index_dir)
    assert set(encoded).isdisjoint(done) and sorted(done | set(encoded)) == paths  # nothing encoded twice

    with Catalog(index_dir, readonly=True) as cat:
        assert check_integrity(cat) == [] and cat.counts() == {"ok": 24, "error": 0, "pending": 0}
        ok_ids = {v.id for v in cat.videos("ok")}
    clips = ClipIndex(index_dir, 16, gpu=False)
    assert clips.load() and clips.video_ids() == ok_ids
    assert len(np.unique(clips.ids())) == clips.ntotal  # no duplicates
    assert index_library(lib, index_dir) == []  # a third run has nothing to do


# ---- writer lock ---------------------------------------------------------------------------------
TRY_LOCK = """
import sys
from vidseek.index.lock import IndexLocked, WriterLock
try:
    with WriterLock(sys.argv[1]):
        print("acquired")
except IndexLocked as exc:
    print(exc)
    sys.exit(3)
"""


def try_lock(index_dir: Path) -> subprocess.CompletedProcess:
    """Try to take the writer lock in another process (exit status 3: IndexLocked)."""
    return subprocess.run([sys.executable, "-c", TRY_LOCK, str(index_dir)], capture_output=True, text=True,
                          cwd=ROOT, check=False)


def test_second_writer_gets_index_locked_with_the_pid(tmp_path):
    with WriterLock(tmp_path) as lock:
        assert lock.held
        r = try_lock(tmp_path)
        assert r.returncode == 3, r.stderr
        assert f"pid {os.getpid()}" in r.stdout and "is locked" in r.stdout and "Searching does not need" in r.stdout
        with pytest.raises(IndexLocked) as err:  # a second lock in the same process too
            WriterLock(tmp_path).acquire()
        assert err.value.holder["pid"] == str(os.getpid())
    r = try_lock(tmp_path)
    assert r.returncode == 0 and "acquired" in r.stdout


def test_lock_of_a_killed_writer_is_free(tmp_path):
    hold = ("import sys, time\nfrom vidseek.index.lock import WriterLock\n"
            "WriterLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(IndexLocked, match=f"pid {holder.pid}"):
            WriterLock(tmp_path).acquire()
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    with WriterLock(tmp_path) as lock:
        assert lock.held


# ---- package boundary ----------------------------------------------------------------------------
def test_index_package_imports_without_torch():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'sentence_transformers', 'transformers'):\n"
        "            raise ImportError(f'{name} is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import vidseek.index\n"
        "assert 'faiss' not in sys.modules and 'sqlite3' not in sys.modules\n"
        "import vidseek.index.catalog, vidseek.index.cache, vidseek.index.clips, vidseek.index.lock\n"
        "from vidseek.index import Catalog, ClipIndex, FeatureCache, WriterLock\n"
        "assert 'torch' not in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("large", ["auto", "ivfpq"])  # auto past hnsw_max: IVF-SQ8
def test_ivf_past_the_hnsw_limit_scores_exactly_and_survives_a_reload(tmp_path, large):
    emb = clustered(40, 100, 32, seed=8)  # 4000 vectors: Flat to 1000, HNSW to 2000, then IVF-SQ8 (or IVF-PQ)
    index = ClipIndex(tmp_path, 32, flat_max=1000, gpu=False, hnsw_max=2000, large=large)
    vectors, ids = fill(index, emb)
    if large == "ivfpq":
        assert index.choice.kind == "ivfpq" and index.choice.pq_m == 16 and "re-ranked" in index.choice.describe()
    else:
        assert index.choice.kind == "ivfsq" and "SQ8" in index.choice.describe()
    rng = np.random.default_rng(9)
    queries = vectors[rng.integers(0, len(vectors), 200)] + 0.3 * rng.standard_normal((200, 32)).astype(np.float32)
    scores, video, window = index.search(queries, k=50)
    found = (video << 20) + window
    expected = exact_top(vectors, ids, queries, 50)
    recall = np.mean([len(set(a) & set(b)) / 50 for a, b in zip(found, expected)])
    assert recall >= 0.95, f"recall@50 {recall:.3f}"
    unit = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    stored = {int(i): v for i, v in zip(ids, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))}
    np.testing.assert_allclose(scores[:, 0], [stored[int(i)] @ u for i, u in zip(found[:, 0], unit)], atol=5e-3)
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first
    index.save()
    loaded = ClipIndex(tmp_path, 32, flat_max=1000, gpu=False, hnsw_max=2000, large=large)
    assert loaded.load(mmap=True) and loaded.choice == index.choice and loaded._mapped
    for a, b in zip(index.search(queries[:20], k=10), loaded.search(queries[:20], k=10)):
        np.testing.assert_array_equal(a, b)
    more = clustered(4, 100, 32, seed=10)
    for v, e in enumerate(more, start=41):  # incremental adds keep the trained quantizer (read into memory first)
        loaded.add(v, e)
    assert loaded.choice.kind == index.choice.kind and loaded.ntotal == 4400 and not loaded._mapped
    _, video, _ = loaded.search(more[:, 0], k=5)
    assert (video[:, 0] == np.arange(41, 45)).all()
    mapped = ClipIndex(tmp_path, 32, flat_max=1000, gpu=False, hnsw_max=2000, large=large)
    assert mapped.load(mmap=True) and mapped._mapped
    mapped.remove_video(3)  # a change to mapped lists reads them into memory first (FAISS would abort)
    assert not mapped._mapped and mapped.ntotal == 3900 and 3 not in mapped.video_ids()
    if large == "ivfpq":  # the re-ranking reads the cache: a lost clips file and a truncated one drop out
        loaded.embeddings.path(41).unlink()
        loaded.embeddings.put(42, more[1, :10])
        _, video, window = loaded.search(more[:, 0], k=5)
        assert 41 not in video and not ((video == 42) & (window >= 10)).any() and (video[2:, 0] == [43, 44]).all()


def test_an_ivf_rebuild_trains_on_a_sample_of_whole_videos_and_keeps_recall(tmp_path, monkeypatch):
    from vidseek.index import clips as clips_module

    monkeypatch.setattr(clips_module, "IVF_TRAIN_PER_LIST", 2)
    monkeypatch.setattr(clips_module, "IVF_TRAIN_MIN", 3000)
    trained = []
    real_build = clips_module._build
    monkeypatch.setattr(clips_module, "_build", lambda choice, dim, train=None: (
        trained.append(None if train is None else len(train)), real_build(choice, dim, train))[1])
    emb = clustered(40, 100, 32, seed=8)  # 4000 clips: IVF-SQ8 past hnsw_max
    index = ClipIndex(tmp_path, 32, flat_max=1000, gpu=False, hnsw_max=2000)
    vectors, ids = fill(index, emb)
    trained.clear()
    index.rebuild()
    assert index.choice.kind == "ivfsq" and index.ntotal == 4000
    assert trained == [3000]  # 30 whole videos of 100 clips, not all 4000
    assert not index._needs_new_structure()  # trained for the whole library: no retraining at once
    rng = np.random.default_rng(9)
    queries = vectors[rng.integers(0, len(vectors), 100)] + 0.3 * rng.standard_normal((100, 32)).astype(np.float32)
    _, video, window = index.search(queries, k=10)
    found = (video << 20) + window
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact_top(vectors, ids, queries, 10))])
    assert recall >= 0.9, recall


def test_a_rebuild_holds_few_files_open(tmp_path):
    """Rebuilding from the cache copies each video's file and lets it go: a training sample of
    tens of thousands of videos once held a memory map (a file descriptor) for each of them."""
    emb = clustered(300, 10, 16, seed=12)
    index = ClipIndex(tmp_path, 16, flat_max=10**9, gpu=False)
    fill(index, emb)
    index.save()
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (128, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))\n"
        "from vidseek.index.clips import ClipIndex\n"
        f"index = ClipIndex({str(tmp_path)!r}, 16, flat_max=100, gpu=False, large='ivf')\n"
        "index.load()\n"
        "index.rebuild()  # IVF now: trained on all 300 videos' clips, then filled\n"
        "assert index.choice.kind == 'ivf' and index.ntotal == 3000, index.choice\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
