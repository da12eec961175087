"""`vidseek bench` (issue 6): the benchmark runs on a tiny bundle and library and reports a sane
structure; the query-path speed-ups it asked for (kept memory maps, serial lone FAISS queries)
keep their semantics. No timing is asserted here: timings belong in the benchmark's output.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from blocking import run_blocked
from vidseek.index.integrity import check as check_integrity

BENCH = ["--library-size", "50", "--warmup", "1", "--repeat", "3", "--index-videos", "1", "--index-repeat", "1",
         "--video-seconds", "8,9", "--naive-max", "20", "--naive-repeat", "1", "--faiss-queries", "10"]


def _check_stats(stats: dict) -> None:
    assert stats["n"] >= 1 and stats["min"] <= stats["p50"] <= stats["p95"] <= stats["p99"] <= stats["max"]
    assert stats["per_s"] > 0


def test_bench_reports_every_part_side_by_side(excl_world, tmp_path, invoke):
    out, png, md = tmp_path / "bench.json", tmp_path / "bench.png", tmp_path / "bench.md"
    r = invoke("bench", "--model", excl_world / "bundle", "--run", excl_world / "run", *BENCH,
               "--videos", excl_world / "syn" / "videos", "--profile", 2, "--json-out", out, "--plot", png,
               "--markdown-out", md)
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    # machine, versions, bundle
    assert report["machine"]["cpu"] and report["machine"]["cores"] >= 1
    for lib in ("numpy", "onnxruntime", "faiss", "torch"):
        assert report["versions"][lib]
    assert report["bundle"]["model"] == "excl-clf-2b" and report["bundle"]["retrieval_dim"] == 8
    assert set(report["bundle"]["graph_bytes"]) == {"frame_encoder", "video_encoder", "text_encoder", "head"}
    # one row per backend; the unavailable ones say why
    from vidseek.bench.backends import BENCH_BACKENDS

    status = {b["name"]: b for b in report["backends"]}
    assert list(status) == ["onnxruntime"] + [b for b in BENCH_BACKENDS if b != "onnxruntime"]
    assert status["onnxruntime"]["available"] and status["pytorch"]["available"]
    assert "max |output difference|" in status["pytorch"]["detail"]
    for b in status.values():
        assert b["available"] or b["reason"]
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        assert not status["onnxruntime-cuda"]["available"] and "CUDAExecutionProvider" in status["onnxruntime-cuda"]["reason"]
    measured = [b for b, s in status.items() if s["available"]]
    # graphs alone and index time, per available backend
    for backend in measured:
        for graph in ("frame_encoder", "video_encoder", "text_encoder", "head"):
            _check_stats(report["graphs"][backend][graph])
        index = report["index"][backend]
        assert index["videos"] == 1 and index["videos_per_s"] > 0 and index["rtf"] > 0
        for stage in ("decode", "frame_encoder", "video_encoder", "total"):
            _check_stats(index[stage])
    # the library: per-stage and end-to-end search, memory, files, naive, FAISS
    (lib,) = report["libraries"]
    assert lib["videos"] == 50 and lib["library"]["clips"] == lib["clips"] > 50
    assert lib["files"]["states_cache"] > 0 and lib["files"]["clips_faiss"] > 0 and lib["rss"]["open"] > 0
    assert lib["files"]["allocated"] >= lib["files"]["states_cache"] + lib["files"]["clips_cache"]
    assert set(lib["query"]) == set(measured) and not lib["errors"]
    for q in lib["query"].values():
        _check_stats(q["end_to_end"])
        assert set(q["stages"]) == {"tokenize", "text_encoder", "faiss", "cache", "head", "post"}
        for stats in q["stages"].values():
            _check_stats(stats)
        assert 1 <= q["moments"] <= 10 and 0 < q["head_rows"] <= q["head_steps"]
    assert lib["naive"]["videos_measured"] == 20 and lib["naive"]["extrapolated"]
    kinds = {row["kind"] for row in lib["faiss"]}
    assert kinds == {"flat", "hnsw", "ivf", "ivfsq", "ivfpq"}
    for row in lib["faiss"]:
        assert 0.0 <= row["recall@10"] <= 1.0 and 0.0 <= row["recall@50"] <= 1.0
    assert next(row for row in lib["faiss"] if row["kind"] == "flat")["recall@50"] == 1.0
    assert [row["kind"] for row in lib["faiss"] if row["library"]] == ["flat"]  # a 50-video library is exact
    assert "tottime" in lib["profile"] and "search" in lib["profile"]
    # side-by-side ratios from the same run
    ratios = report["ratios"]
    assert set(ratios["graph_eager_over_ort"]) == {"frame_encoder", "video_encoder", "text_encoder", "head"}
    assert "50" in ratios["search_eager_over_ort"] and "50" in ratios["naive_over_two_stage"]
    assert ratios["scale_p50_over_smallest"]["onnxruntime"]["50"] == 1.0
    # tables and plot
    for title in ("Backends", "Graphs alone", "Index time per video", "Search per query", "Scale",
                  "Two-stage search vs the head on every video", "FAISS at 50 videos", "unavailable:"):
        assert title in r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "plot ->" in r.output
    assert "| videos | backend |" in md.read_text() and "**Backends**" in md.read_text()
    scale = md.read_text().split("**Scale")[1].split("\n\n")[1].splitlines()
    assert "| disk GB (files) |" in scale[0] and "| recall@50 |" in scale[0]
    assert dict(zip(scale[0].split(" | "), scale[2].split(" | ")))["recall@50"] == "1.0"


def test_eager_rows_are_skipped_with_a_reason_without_a_run(excl_world, tmp_path, invoke):
    out = tmp_path / "b.json"
    r = invoke("bench", "--model", excl_world / "bundle", "--backends", "pytorch,onnxruntime,tensorrt-int8",
               "--parts", "graphs", "--warmup", 0, "--repeat", 2, "--json-out", out)
    assert r.exit_code == 0, r.output
    status = {b["name"]: b for b in json.loads(out.read_text())["backends"]}
    assert not status["pytorch"]["available"] and "--run" in status["pytorch"]["reason"]
    assert status["onnxruntime"]["available"]
    assert set(json.loads(out.read_text())["graphs"]) == {"onnxruntime"}


def test_eager_rows_against_a_quantized_text_encoder_say_how_to_compare(excl_world, tmp_path, invoke):
    import shutil

    from vidseek.export.quantize import quantize_text_encoder

    bundle, out = tmp_path / "int8", tmp_path / "b.json"
    shutil.copytree(excl_world / "bundle", bundle)
    quantize_text_encoder(bundle, "int8")
    r = invoke("bench", "--model", bundle, "--run", excl_world / "run", "--backends", "pytorch,onnxruntime",
               "--parts", "graphs", "--warmup", 0, "--repeat", 2, "--json-out", out)
    assert r.exit_code == 0, r.output
    status = {b["name"]: b for b in json.loads(out.read_text())["backends"]}
    reason = status["pytorch"]["reason"]
    assert not status["pytorch"]["available"] and "text encoder is int8" in reason and "vidseek export" in reason


BENCH_WITHOUT_TORCH = """
import json, sys
from click.testing import CliRunner
from vidseek.cli.main import cli
r = CliRunner().invoke(cli, ["bench", "--model", sys.argv[1], "--run", sys.argv[2], "--backends", "onnxruntime,pytorch",
                             "--parts", "graphs,query", "--library-size", "20", "--warmup", "0", "--repeat", "2",
                             "--same-process", "--json-out", sys.argv[3]])
assert r.exit_code == 0, r.output
print("torch" in sys.modules)
"""


def test_bench_runs_without_torch_and_says_why_eager_is_missing(excl_world, tmp_path):
    out = tmp_path / "b.json"
    r = run_blocked(BENCH_WITHOUT_TORCH, str(excl_world / "bundle"), str(excl_world / "run"), str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False"
    report = json.loads(out.read_text())
    status = {b["name"]: b for b in report["backends"]}
    assert not status["pytorch"]["available"] and "torch" in status["pytorch"]["reason"]
    assert set(report["libraries"][0]["query"]) == {"onnxruntime"}


def test_bad_options_are_refused(excl_world, invoke):
    r = invoke("bench", "--model", excl_world / "bundle", "--backends", "onnxruntime,cuda")
    assert r.exit_code == 2 and "unknown backends cuda" in r.output
    r = invoke("bench", "--model", excl_world / "bundle", "--library-size", "1k,0")
    assert r.exit_code == 2 and "library sizes" in r.output


def test_cli_lists_match_the_package():
    from vidseek.bench import PARTS
    from vidseek.bench.backends import BENCH_BACKENDS
    from vidseek.cli.bench_cmd import BACKEND_NAMES, PART_NAMES, _int_list

    assert BACKEND_NAMES == BENCH_BACKENDS and PART_NAMES == PARTS
    assert _int_list(None, None, "1k, 10k,100000") == (1000, 10000, 100000)
    assert _int_list(None, None, "1k,100k,1M") == (1000, 100_000, 1_000_000) == _int_list(None, None, "1000,0.1m,1m")


def test_synthetic_library_is_reused_and_never_clobbers_other_folders(excl_world, tmp_path):
    from vidseek.bench.library import LibrarySpec, clear_folder, synthetic_library
    from vidseek.engine.bundle import load_bundle
    from vidseek.index.catalog import Catalog

    bundle = load_bundle(excl_world / "bundle")
    spec = LibrarySpec(12, 8.0, 20.0, seed=3)
    info = synthetic_library(tmp_path / "lib", bundle, spec)
    assert not info["reused"] and info["videos"] == 12 and info["index_kind"] == "flat"
    with Catalog(tmp_path / "lib", readonly=True) as catalog:
        assert catalog.counts()["ok"] == 12 and check_integrity(catalog) == []
        assert sum(v.steps for v in catalog.videos()) == info["steps"]
    assert synthetic_library(tmp_path / "lib", bundle, spec)["reused"]
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a synthetic library"):
        clear_folder(other)
    assert (other / "notes.txt").is_file()


def test_a_library_too_big_for_the_disk_is_refused_before_anything_is_written(excl_world, tmp_path, monkeypatch):
    import shutil as shutil_module

    from vidseek.bench import library
    from vidseek.engine.bundle import load_bundle
    from vidseek.index.cache import FeatureCache

    bundle = load_bundle(excl_world / "bundle")
    spec = library.LibrarySpec(1_000_000)
    real = shutil_module.disk_usage(tmp_path)
    monkeypatch.setattr(library.shutil, "disk_usage", lambda p: real._replace(free=10**9))  # 1 GB free
    with pytest.raises(ValueError, match=r"1,000,000 videos needs about .* GB, and .* has 1.0 GB free"):
        library.synthetic_library(tmp_path / "lib", bundle, spec)
    assert not (tmp_path / "lib").exists()
    small = library.LibrarySpec(12, 8.0, 20.0, seed=3)  # the estimate is about what a library takes
    info = library.synthetic_library(tmp_path / "small", bundle, small)
    written = sum(f.stat().st_size for f in (tmp_path / "small").rglob("*") if f.is_file())
    assert 0.2 * written < library.estimated_bytes(small, *library.bundle_dims(bundle)[1:], info["rate"]) < 5 * written
    assert FeatureCache(tmp_path / "small").get(1).precision == "int4"  # stored as a new index stores states


# ---- the speed-ups in the index storage ------------------------------------------------------------
def test_feature_cache_keeps_maps_open_and_sees_every_replacement(tmp_path):
    from vidseek.index.cache import CacheError, FeatureCache

    cache = FeatureCache(tmp_path, max_open=2)
    for vid in range(3):
        cache.put(vid, np.full((4, 3), vid, np.float32))
    first = cache.get(0)
    assert cache.get(0) is first and isinstance(first, np.memmap) and not first.flags.writeable
    cache.get(1), cache.get(2)
    assert len(cache._open) == 2 and 0 not in cache._open  # bounded, least recently used dropped
    FeatureCache(tmp_path).put(1, np.full((5, 3), 7, np.float32))  # replaced by another writer
    assert cache.get(1).shape == (5, 3) and float(cache.get(1)[0, 0]) == 7.0
    cache.put(2, np.full((2, 3), 9, np.float32))  # replaced through this cache
    assert float(cache.get(2)[0, 0]) == 9.0
    cache.remove(2)
    with pytest.raises(CacheError, match="missing"):
        cache.get(2)
    unkept = FeatureCache(tmp_path, max_open=0)
    assert unkept.get(0) is not unkept.get(0) and not unkept._open


def test_feature_cache_reads_other_npy_layouts_and_refuses_bad_files(tmp_path):
    from vidseek.index.cache import CacheError, FeatureCache

    cache = FeatureCache(tmp_path)
    cache.folder.mkdir(parents=True)
    x = np.arange(12, dtype=np.float16).reshape(3, 4)
    np.save(cache.path(1), np.asfortranarray(x))  # another header: read through np.load
    np.testing.assert_array_equal(cache.get(1), x)
    np.save(cache.path(2), x.astype(np.float32))
    with pytest.raises(CacheError, match="float32"):
        cache.get(2)
    cache.put(3, np.ones((6, 4), np.float32))
    data = cache.path(3).read_bytes()
    cache.path(3).write_bytes(data[: len(data) - 8])  # truncated
    with pytest.raises(CacheError, match="unreadable"):
        FeatureCache(tmp_path).get(3)


def test_a_lone_query_searches_on_one_thread_and_restores_the_setting(tmp_path):
    import faiss

    from vidseek.index.clips import ClipIndex

    index = ClipIndex(tmp_path, 8, gpu=False)
    rng = np.random.default_rng(0)
    for vid in range(5):
        index.add(vid, rng.normal(size=(4, 8)))
    before = faiss.omp_get_max_threads()
    scores, videos, _ = index.search(rng.normal(size=(1, 8)), 5)
    assert faiss.omp_get_max_threads() == before
    batch_scores, _, _ = index.search(rng.normal(size=(3, 8)), 5)
    assert scores.shape == (1, 5) and batch_scores.shape == (3, 5) and set(videos[0].tolist()) <= set(range(5))
