"""Zero-shot CLIP: a CLIP model exported as a bundle with no head, a library indexed with it, and
torch-free search whose spans come from the frame-query similarity curve.

The CLIP here is tiny and random, so it cannot find the right moment: these tests check the
machinery and the validity of the moments, and the curve-to-span rule on constructed curves.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from blocking import run_blocked
from vidseek.engine.decode import decode_similarity, similarity_span, smooth_curve
from vidseek.engine.bundle import BundleError


# ---- the curve-to-span rule -----------------------------------------------------------------------


def test_span_is_the_run_above_threshold_around_the_peak():
    curve = np.full(40, 0.2)
    curve[10:18] = 0.6  # the moment
    curve[25:28] = 0.45  # a weaker, separate bump: not joined to the span
    assert similarity_span(curve) == (10, 17, 0.6)
    assert similarity_span(curve, smooth=1) == (10, 17, 0.6)


def test_noise_moves_the_span_by_at_most_a_step():
    rng = np.random.default_rng(0)
    for _ in range(20):
        curve = 0.2 + rng.normal(0, 0.02, 60)
        start = int(rng.integers(0, 40))
        curve[start:start + 12] += 0.3
        i, j, peak = similarity_span(curve)
        assert abs(i - start) <= 1 and abs(j - (start + 11)) <= 1
        assert 0.45 < peak < 0.6


def test_span_at_the_edges_and_a_one_step_spike():
    rising = np.array([0.1] * 10 + [0.5] * 5)
    assert similarity_span(rising)[:2] == (10, 14)
    falling = rising[::-1].copy()
    assert similarity_span(falling)[:2] == (0, 4)
    spike = np.full(21, 0.2)
    spike[10] = 0.9  # one frame: smoothing spreads it, the span stays short
    i, j, peak = similarity_span(spike)
    assert (i, j) == (9, 11) and peak == pytest.approx(0.4333, abs=1e-4)


def test_alpha_sets_the_threshold_between_median_and_peak():
    triangle = np.concatenate([np.linspace(0.0, 1.0, 11), np.linspace(0.9, 0.0, 10), np.zeros(20)])
    wide, narrow = similarity_span(triangle, smooth=1, alpha=0.1), similarity_span(triangle, smooth=1, alpha=0.9)
    assert wide[0] < narrow[0] <= 10 <= narrow[1] < wide[1]
    assert similarity_span(triangle, smooth=1, alpha=1.0)[:2] == (10, 10)


def test_flat_short_and_invalid_curves():
    assert similarity_span(np.full(7, 0.3)) == (0, 6, 0.3)  # no evidence: the whole window
    assert similarity_span(np.array([0.42])) == (0, 0, 0.42)
    assert similarity_span(np.array([0.1, 0.5]))[:2] == (1, 1)
    with pytest.raises(ValueError, match="non-empty"):
        similarity_span(np.array([]))
    with pytest.raises(ValueError, match="non-finite"):
        similarity_span(np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="alpha"):
        similarity_span(np.ones(3), alpha=1.5)
    with pytest.raises(ValueError, match="odd"):
        smooth_curve(np.ones(3), 2)


def test_decode_similarity_maps_steps_to_seconds_within_the_valid_length():
    curve = np.array([0.0, 0.0, 0.0, 0.0, 0.8, 0.8, 0.8, 0.0, 0.0, 0.0, 5.0, 5.0])  # the last two are padding
    [[start, end, peak]] = decode_similarity(curve, duration=5.0, length=10)
    assert (start, end) == (2.0, 3.5) and peak == 0.8  # steps 4..6 of 10 over 5 s


# ---- export, index, search --------------------------------------------------------------------


@pytest.fixture(scope="module")
def zero_shot(tiny_clip_dir, synth_library, invoke, tmp_path_factory):
    """A tiny CLIP, its zero-shot bundle (exported by the CLI) and a small synthetic library."""
    root = tmp_path_factory.mktemp("zeroshot")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        r = invoke("export", "--clip", tiny_clip_dir, root / "bundle")
    assert r.exit_code == 0, r.output
    return {"root": root, "clip": tiny_clip_dir, "bundle": root / "bundle", "library": synth_library / "videos"}


def test_export_clip_writes_a_verified_zero_shot_bundle(zero_shot):
    from vidseek.engine.bundle import load_bundle
    from vidseek.engine.registry import ZERO_SHOT_MODEL, graphs_for

    bundle = load_bundle(zero_shot["bundle"])  # every file's sha256 checked
    meta = bundle.meta
    assert bundle.zero_shot and bundle.model_name == ZERO_SHOT_MODEL == "clip-zero-shot"
    assert set(meta["files"]) == {"frame_encoder.onnx", "text_encoder.onnx", "tokenizer.json"}
    for spec in graphs_for(ZERO_SHOT_MODEL, with_frame_encoder=True):
        graph = meta["graphs"][spec.name]
        assert [i["name"] for i in graph["inputs"]] == list(spec.inputs)
        assert [o["name"] for o in graph["outputs"]] == list(spec.outputs)
    assert meta["graphs"]["text_encoder"]["outputs"][0]["shape"] == ["batch", 16]
    assert meta["retrieval_dim"] == meta["features"]["dim"] == 16
    assert meta["features"]["frame_encoder"]["spec"]["resize"] == "shorter_center_crop"
    assert max(meta["parity"].values()) < 1e-4
    with pytest.raises(BundleError, match="no fixed feature length"):
        bundle.length


def test_export_clip_cli_prints_parity_and_refuses_bad_options(zero_shot, tmp_path, invoke):
    r = invoke("export", "--clip", zero_shot["clip"], tmp_path / "b", "--no-check")
    assert r.exit_code == 0, r.output
    assert "frame_encoder.onnx" in r.output and "text_encoder.onnx" in r.output and "fingerprint" in r.output
    r = invoke("export", "--clip", zero_shot["clip"])
    assert r.exit_code == 2 and "OUT_DIR" in r.output
    r = invoke("export", "--clip", zero_shot["clip"], tmp_path / "c", "--format", "tensorrt")
    assert r.exit_code == 2 and "ONNX only" in r.output
    r = invoke("export", "--clip", tmp_path / "missing", tmp_path / "d")
    assert r.exit_code == 1 and "does not exist" in r.output and "Traceback" not in r.output


def test_clip_parity_is_measured_against_pytorch(zero_shot):
    from vidseek.engine.bundle import load_bundle
    from vidseek.export.parity import check_clip_parity
    from vidseek.trainer.encoders import load_clip

    report = check_clip_parity(load_clip(zero_shot["clip"]), load_bundle(zero_shot["bundle"]))
    assert set(report) == {"frame_encoder", "text_encoder"} and max(report.values()) < 1e-4


SEARCH = """
import sys
from vidseek.cli.main import cli
cli.main(["search", "a person opens the door", "--index", sys.argv[1], "--json", "--top-k", "5", *sys.argv[2:]])
"""


def test_index_and_search_a_library_zero_shot_without_torch(zero_shot, tmp_path, invoke):
    from vidseek.index.cache import FeatureCache
    from vidseek.index.catalog import Catalog

    index = tmp_path / "idx"
    r = invoke("index", zero_shot["library"], "--index", index, "--model", zero_shot["bundle"], "--no-progress")
    assert r.exit_code == 0, r.output
    assert "indexed 3" in r.output and "errors 0" in r.output
    with Catalog(index, readonly=True) as catalog:
        videos = {v.path: v for v in catalog.videos("ok")}
    for v in videos.values():  # the cached states are the unit frame embeddings, one per step
        states = np.asarray(FeatureCache(index, "states").get(v.id), np.float32)
        assert states.shape == (v.steps, 16)
        np.testing.assert_allclose(np.linalg.norm(states, axis=1), 1.0, atol=5e-3)  # int8: half a step of each row's scale
        assert FeatureCache(index, "states").get(v.id).precision == "int8"  # a zero-shot index's default
    r = run_blocked(SEARCH, str(index))  # a random CLIP: nothing clears the default threshold of zero-shot bundles
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout + r.stderr
    r = run_blocked(SEARCH, str(index), "--min-score", "0")
    assert r.returncode == 0, r.stderr
    moments = [json.loads(x) for x in r.stdout.strip().splitlines()]
    assert 1 <= len(moments) <= 5 and [m["rank"] for m in moments] == list(range(1, len(moments) + 1))
    assert [m["score"] for m in moments] == sorted((m["score"] for m in moments), reverse=True)
    for m in moments:
        assert m["video"] in videos and "phrases" not in m
        assert 0 <= m["start"] < m["end"] <= videos[m["video"]].duration + 0.21  # whole steps of 0.2 s
        assert -1 <= m["span"] <= 1 and -1 <= m["retrieval"] <= 1
        assert 0 <= m["score"] <= 1  # the relevance of the zero-shot default calibration
    r = invoke("search", "a person opens the door", "--index", index, "--phrases")
    assert r.exit_code == 2 and "clip-zero-shot" in r.output and "PLPNet" in r.output


def test_zero_shot_grounder_on_one_video(zero_shot):
    from vidseek.engine.bundle import load_bundle
    from vidseek.engine.grounder import Grounder

    g = Grounder(load_bundle(zero_shot["bundle"]))
    video = sorted(zero_shot["library"].glob("*.mp4"))[0]
    features, info = g.video_features(video)
    duration = info.duration
    assert features.shape == (round(duration * 5), 16)
    [[start, end, peak]] = g.ground(features, "someone waves", duration)["windows"]
    assert 0 <= start < end <= duration + 0.21 and -1 <= peak <= 1


def test_clip_choice_is_exported_once_into_the_cache(zero_shot, tmp_path, monkeypatch, invoke):
    from vidseek.library.models import resolve_model

    monkeypatch.setenv("VIDSEEK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    exports = []
    choice = f"clip:{zero_shot['clip']}"
    folder = resolve_model(choice, on_export=lambda source, folder: exports.append(folder))
    assert exports == [folder] and folder.parent == tmp_path / "cache" / "bundles" and folder.name.startswith("clip-")
    assert resolve_model(choice, on_export=lambda source, folder: exports.append(folder)) == folder
    assert len(exports) == 1 and not list(folder.parent.glob(".*tmp*"))  # reused; no temporary folder left
    index = tmp_path / "idx"
    r = invoke("index", zero_shot["library"], "--index", index, "--model", choice, "--no-progress")
    assert r.exit_code == 0 and "indexed 3" in r.output, r.output
    r = invoke("info", "--index", index)
    assert f"--model {choice}" in r.output and str(folder) in r.output
    shutil.rmtree(folder)  # a cleared cache: search says how to get the bundle back
    r = invoke("search", "someone waves", "--index", index)
    assert r.exit_code == 1 and f"--model {choice}" in r.output and "is gone" in r.output


CLIP_WITHOUT_TORCH = """
import os, sys
os.environ["VIDSEEK_CACHE"] = sys.argv[2]
from vidseek.cli.main import cli
cli.main(["index", sys.argv[1], "--index", os.path.join(sys.argv[2], "idx"), "--model", "clip:" + sys.argv[3]])
"""


def test_clip_choice_without_torch_says_how_to_install(zero_shot, tmp_path):
    r = run_blocked(CLIP_WITHOUT_TORCH, str(zero_shot["library"]), str(tmp_path), str(zero_shot["clip"]))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "pip install 'vidseek[train]'" in r.stderr and "vidseek export --clip" in r.stderr


ASSETS = Path(__file__).resolve().parents[2] / "shared" / "assets" / "videos"


@pytest.mark.skipif(not ASSETS.is_dir(), reason="needs ../shared/assets/videos (the real test clips)")
def test_real_clips_index_and_search_zero_shot(zero_shot, tmp_path):
    from vidseek import Index

    with Index(tmp_path / "idx") as index:
        report = index.add(ASSETS, model=zero_shot["bundle"])
        n = len([p for p in ASSETS.iterdir() if p.suffix in (".mp4", ".mkv", ".webm")])
        assert len(report.indexed) == n and not report.errors
        durations = {v.path: v.duration for v in index.videos("ok")}
        moments = index.search("a rabbit in the forest", top_k=5, min_score=0)  # a random CLIP: every candidate
    assert len(moments) == 5
    assert all(0 <= m.start < m.end <= durations[m.video] + 0.21 for m in moments)
