"""What a library of a million videos needs: a Searcher that opens without reading every catalog
row, yet sees one consistent index; IVF-PQ fast-scan codes (and the 8-bit ones of older indexes);
the bench's FAISS comparison measuring the library's own IVF-PQ."""

from __future__ import annotations

import time

import numpy as np
import pytest

from helpers import QUERY, invoke, write_video
from test_index_storage import clustered, exact_top, fill
from vidseek.index.catalog import Catalog
from vidseek.index.clips import IVF_SCAN_CODES, ClipIndex, choose_index, encode_ids
from vidseek.index.lock import WriterLock
from vidseek.library.searcher import Searcher


@pytest.fixture
def indexed(tiny_world, tmp_path):
    lib, index = tmp_path / "lib", tmp_path / "idx"
    for k in range(3):
        write_video(lib / f"v{k}.mp4", seconds=6, seed=k)
    r = invoke("index", lib, "--index", index, "--model", tiny_world.bundle, "--no-progress")
    assert r.exit_code == 0, r.output
    return lib, index


def test_a_searcher_opens_without_comparing_videos_one_by_one(indexed, monkeypatch):
    """The clip index's key (from its window-0 clips) equals the catalog's (SQL sums), so opening
    neither lists the catalog's rows nor reconciles the index video by video."""
    _, index = indexed
    with Searcher(index) as s:
        assert s.clips.video_key() == s.catalog.ok_key() == [3, sum(s.videos), sum(v * v for v in s.videos)]
    monkeypatch.setattr(Catalog, "videos", lambda *a, **k: pytest.fail("listed every catalog row"))
    monkeypatch.setattr(ClipIndex, "reconcile", lambda *a, **k: pytest.fail("reconciled"))
    with Searcher(index) as s:
        assert len(s.videos) == 3 and sorted(v.path for v in s.videos.values()) == ["v0.mp4", "v1.mp4", "v2.mp4"]
        assert s.search(QUERY, top_k=3)
        assert s.video_id("v1.mp4") == s.videos.by_path("v1.mp4").id and s.video_id("nowhere.mp4") is None


def test_a_lagging_clip_index_is_still_reconciled_on_open(indexed):
    """A clip index that lacks a video the catalog lists (a writer killed before saving it) has
    another key: the Searcher completes it from the cache, as before."""
    _, index = indexed
    with Catalog(index, readonly=True) as cat:
        last = max(cat.ok_ids())
        dim = cat.settings().dim
    with WriterLock(index):
        clips = ClipIndex(index, dim)
        clips.load()
        clips.remove_video(last)
        clips.save()
    with Searcher(index) as s:
        assert last in s.clips.video_ids() and s.clips.video_key() == s.catalog.ok_key()


def test_a_searcher_sees_the_catalog_as_it_opened_it_until_reopened(indexed):
    """Rows are read as searches need them, from the snapshot the Searcher opened: a writer's
    removal shows only after ``reopen``, and the writer's end-of-run checkpoint does not wait for
    the open Searcher longer than a moment."""
    _, index = indexed
    with Searcher(index) as s:
        before = {v: s.videos[v].path for v in s.videos}
        gone = min(before)
        with WriterLock(index), Catalog(index) as writer:
            writer.remove([before[gone]])
            t0 = time.perf_counter()
            writer.checkpoint()
            assert time.perf_counter() - t0 < 5
        assert gone in s.videos and len(s.videos) == 3 and s.videos[gone].path == before[gone]
        assert s.outdated()
        s.reopen()
        assert gone not in s.videos and len(s.videos) == 2
        with pytest.raises(KeyError):
            s.videos[gone]


def test_a_million_videos_get_ivf_sq8_scanning_a_bounded_share():
    small, large = choose_index(170_000, 128, gpu=False, large="ivfsq"), choose_index(17_000_000, 128, gpu=False)
    assert small.nprobe == small.nlist // 4  # small libraries: a quarter of the lists
    assert large.kind == "ivfsq" and not large.gpu
    assert large.nprobe * 17_000_000 / large.nlist <= IVF_SCAN_CODES  # ~600k clips, not a quarter of 17M
    pq = choose_index(17_000_000, 128, gpu=False, large="ivfpq")
    assert pq.kind == "ivfpq" and pq.pq_bits == 4 and pq.nprobe == large.nprobe


def test_an_ivfpq_index_with_8_bit_codes_still_loads_and_searches(tmp_path):
    """Indexes saved before fast-scan codes hold an IndexIVFPQ with 8-bit codes: they load as
    IVF-PQ, re-rank exactly and take new videos."""
    import faiss

    emb = clustered(40, 100, 32, seed=8)
    vectors = emb.reshape(-1, 32)
    ids = np.concatenate([encode_ids(v + 1, np.arange(100)) for v in range(40)])
    index = ClipIndex(tmp_path, 32, flat_max=1000, gpu=False, hnsw_max=2000)
    fill(index, emb)  # the cache files; the index itself is replaced by an old-style one
    old = faiss.IndexIVFPQ(faiss.IndexFlatIP(32), 32, 64, 16, 8, faiss.METRIC_INNER_PRODUCT)
    old.train(vectors)
    old.add_with_ids(vectors.astype(np.float16).astype(np.float32), ids)
    old.nprobe = 16
    faiss.write_index(old, str(tmp_path / "clips.faiss"))
    loaded = ClipIndex(tmp_path, 32, flat_max=1000, gpu=False, hnsw_max=2000)
    assert loaded.load() and loaded.choice.kind == "ivfpq" and loaded.choice.pq_bits == 8
    assert "PQ16x8 nprobe=16" in loaded.choice.describe() and "fs" not in loaded.choice.describe()
    queries = vectors[::97] + 0.1
    _, video, window = loaded.search(queries, k=10)
    recall = np.mean([len(set(a) & set(b)) / 10
                      for a, b in zip((video << 20) + window, exact_top(vectors, ids, queries, 10))])
    assert recall >= 0.9, recall
    assert loaded.video_key() == [40, sum(range(1, 41)), sum(v * v for v in range(1, 41))]
    loaded.add(41, clustered(1, 100, 32, seed=11)[0])
    assert loaded.ntotal == 4100 and 41 in loaded.video_ids()


@pytest.mark.parametrize("kind", ["ivfsq", "ivfpq"])
def test_the_faiss_comparison_measures_the_librarys_own_ivf(tmp_path, kind):
    from vidseek.bench.stages import faiss_comparison, near_queries

    emb = clustered(40, 100, 32, seed=8)
    index = ClipIndex(tmp_path, 32, flat_max=1000, gpu=False, hnsw_max=2000, large=kind)
    fill(index, emb)
    ids = np.sort(index.ids())
    vectors = np.concatenate([index.embeddings.get(v, shape=(100, 32)) for v in range(1, 41)]).astype(np.float32)
    queries = near_queries(vectors, 30)
    rows = faiss_comparison(vectors, ids, queries, (10, 50), library=index)
    own = [r for r in rows if r["kind"] == kind and "nprobe=" in r["index"] and r["build_s"] is None]
    assert len(own) >= 3 and sum("(the library's)" in r["index"] for r in own) == 1
    assert [r["library"] for r in rows].count(True) == 1
    assert own[-1]["recall@10"] >= 0.9 and own[0]["recall@50"] <= own[-1]["recall@50"]  # recall follows the probes
    assert index.faiss_index.nprobe == index.choice.nprobe  # left as searches use it
    assert {r["kind"] for r in rows} == {"flat", "hnsw", "ivf", "ivfsq", "ivfpq"}  # small: side indexes built too


def test_the_video_key_saved_beside_the_index_spares_reading_its_ids(tmp_path, monkeypatch):
    emb = clustered(40, 100, 32, seed=8)
    index = ClipIndex(tmp_path, 32, flat_max=1000, gpu=False, hnsw_max=2000)
    fill(index, emb)
    index.save()
    counted = [40, sum(range(1, 41)), sum(v * v for v in range(1, 41))]
    assert (tmp_path / "clips.key.json").is_file()
    loaded = ClipIndex(tmp_path, 32, flat_max=1000, gpu=False, hnsw_max=2000)
    loaded.load(mmap=True)
    with monkeypatch.context() as m:
        m.setattr(ClipIndex, "ids", lambda self: pytest.fail("read every id"))
        assert loaded.video_key() == counted
    loaded.remove_video(40)  # changed since loaded: counted from the index, not the record
    assert loaded.video_key() == [39, sum(range(1, 40)), sum(v * v for v in range(1, 40))]
    stale = (tmp_path / "clips.key.json").read_text()
    loaded.save()
    (tmp_path / "clips.key.json").write_text(stale)  # a record of another file (a writer killed in between)
    again = ClipIndex(tmp_path, 32, flat_max=1000, gpu=False, hnsw_max=2000)
    again.load()
    assert again.video_key() == [39, sum(range(1, 40)), sum(v * v for v in range(1, 40))]


@pytest.mark.parametrize("large", ["ivfsq", "ivfpq"])
def test_cpu_kinds_are_searched_on_the_cpu_where_faiss_sees_a_gpu(tmp_path, large):
    """IVF-SQ8 and IVF-PQ (fast-scan) are built for the CPU: a ClipIndex told a GPU is there searches
    them where they are, never asking faiss for a GPU copy (which CPU faiss cannot make and
    faiss-gpu cannot make of fast-scan codes)."""
    emb = clustered(40, 100, 32, seed=8)
    index = ClipIndex(tmp_path, 32, flat_max=1000, gpu=True, hnsw_max=2000, large=large)
    fill(index, emb)
    assert index.choice.kind == large and not index.choice.gpu
    _, video, _ = index.search(emb[:, 0], k=5)
    assert (video[:, 0] == np.arange(1, 41)).mean() >= 0.9
