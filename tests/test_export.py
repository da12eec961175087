"""Export to ONNX bundles: parity with PyTorch for every model, bundle integrity, torch-free use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from blocking import run_blocked
from helpers import SENTENCES, make_run
from vidseek.cli.main import cli
from vidseek.engine.bundle import BundleError, load_bundle
from vidseek.engine.registry import graphs_for
from vidseek.export.onnx import export_bundle, word_level_tokenizer
from vidseek.export.parity import check_parity
from vidseek.trainer.checkpoint import load_run, save_run
from vidseek.trainer.models import MODEL_NAMES, build_model
from vidseek.trainer.words import LearnedWords, save_featurizer, simple_tokenize

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_exports_with_parity(tmp_path, name):
    run_dir = make_run(tmp_path, name)
    meta = export_bundle(run_dir, tmp_path / "bundle")
    report = check_parity(load_run(run_dir), load_bundle(tmp_path / "bundle"), lengths=(8, 33, None))
    for graph in ("video_encoder", "text_encoder", "head"):
        assert report[graph] < 1e-4, report
    assert report["task_min_iou"] > 0.99
    # bundle.json names every graph's inputs and outputs as the registry does, with dynamic axes
    for spec in graphs_for(name, with_frame_encoder=False):
        g = meta["graphs"][spec.name]
        assert [i["name"] for i in g["inputs"]] == list(spec.inputs)
        assert [o["name"] for o in g["outputs"]] == list(spec.outputs)
    assert meta["graphs"]["video_encoder"]["inputs"][0]["shape"] == ["batch", "time", 10]
    assert meta["opset"] == 17 and set(meta["files"]) == {"video_encoder.onnx", "text_encoder.onnx", "head.onnx", "tokenizer.json"}


@pytest.mark.parametrize("name,words", [("excl-reg-2b", "transformer"), ("plpnet", "transformer"), ("excl-clf-1c", "static")])
def test_word_feature_kinds_export_with_parity(tmp_path, name, words, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run_dir = make_run(tmp_path, name, words)
    export_bundle(run_dir, tmp_path / "bundle")
    report = check_parity(load_run(run_dir), load_bundle(tmp_path / "bundle"))
    assert max(report[g] for g in ("video_encoder", "text_encoder", "head")) < 1e-4, report
    assert report["task_min_iou"] > 0.99


@given(st.text(min_size=0, max_size=60))
@settings(max_examples=300, deadline=None)
def test_bundle_tokenizer_splits_exactly_like_the_trainer(text):
    tok = word_level_tokenizer({"<pad>": 0, "<unk>": 1}, max_words=1000)
    pieces = [p for p, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text))]
    if text.lower() == tok.normalizer.normalize_str(text):  # Python's and Rust's lowercasing agree here
        assert pieces == simple_tokenize(text)


@pytest.fixture
def bundle_dir(tmp_path):
    run_dir = make_run(tmp_path, "excl-clf-2b")
    export_bundle(run_dir, tmp_path / "bundle")
    return tmp_path / "bundle"


def test_tampered_newer_or_unsafe_bundles_are_refused(bundle_dir):
    load_bundle(bundle_dir)  # intact
    meta = json.loads((bundle_dir / "bundle.json").read_text())
    head = bundle_dir / "head.onnx"
    original = head.read_bytes()
    head.write_bytes(original[:-10] + b"0123456789")
    with pytest.raises(BundleError, match=r"head.onnx does not match bundle.json .*re-export"):
        load_bundle(bundle_dir)
    head.write_bytes(original)
    (bundle_dir / "bundle.json").write_text(json.dumps({**meta, "format_version": 2}))
    with pytest.raises(BundleError, match="format version 2.*upgrade vidseek"):
        load_bundle(bundle_dir)
    bad = {**meta, "files": {**meta["files"], "../outside.onnx": "0" * 64}}
    (bundle_dir / "bundle.json").write_text(json.dumps(bad))
    with pytest.raises(BundleError, match="outside the bundle folder"):
        load_bundle(bundle_dir)
    with pytest.raises(BundleError, match="not a vidseek bundle"):
        load_bundle(bundle_dir.parent)


TORCH_FREE_GROUNDING = """
import sys, json
import numpy as np
from vidseek.engine.bundle import load_bundle
from vidseek.engine.grounder import Grounder
g = Grounder(load_bundle(sys.argv[1]))
feats = np.random.default_rng(0).normal(size=(57, 10)).astype(np.float32)
np.save(sys.argv[2], feats)
print(json.dumps(g.ground(feats, "person opens the door", duration=20.0, k=3)["windows"]))
"""


def test_engine_grounds_with_torch_blocked_and_agrees_with_pytorch(bundle_dir, tmp_path):
    feats_path = tmp_path / "feats.npy"
    r = run_blocked(TORCH_FREE_GROUNDING, str(bundle_dir), str(feats_path))
    assert r.returncode == 0, r.stderr
    windows = json.loads(r.stdout.strip().splitlines()[-1])
    from vidseek.trainer.data.dataset import MomentDataset  # noqa: F401  (the PyTorch path below)
    from vidseek.engine.decode import decode_windows
    from vidseek.spans import resample_features

    run = load_run(bundle_dir.parent / "excl-clf-2b-learned")
    f = torch.from_numpy(resample_features(np.load(feats_path), 40))[None]
    mask = torch.ones(1, 40, dtype=torch.bool)
    w = run.featurizer.encode(["person opens the door"])
    with torch.no_grad():
        out = run.model(f, mask, w.words, w.mask)
    ref = decode_windows(run.name, {k: v[0].numpy() for k, v in out.items()}, 20.0, 40, 3)
    assert [x[:2] for x in windows] == [x[:2] for x in ref]
    np.testing.assert_allclose([x[2] for x in windows], [x[2] for x in ref], atol=1e-4)


def test_export_cli_prints_status_and_parity(tmp_path):
    run_dir = make_run(tmp_path, "plpnet")
    r = CliRunner().invoke(cli, ["export", str(run_dir), "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    for graph in ("video_encoder.onnx", "text_encoder.onnx", "head.onnx"):
        assert graph in r.output and " MB" in r.output
    assert "parity vs PyTorch" in r.output and "IoU >= 1.000" in r.output
    r = CliRunner().invoke(cli, ["export", str(run_dir), "--out", str(tmp_path / "b"), "--fp16"])
    assert r.exit_code == 2 and "--format tensorrt" in r.output
    r = CliRunner().invoke(cli, ["export", str(tmp_path), "--out", str(tmp_path / "c")])
    assert r.exit_code == 1 and "not a vidseek run folder" in r.output


def _has_tensorrt_gpu() -> bool:
    try:
        import tensorrt  # noqa: F401
        from vidseek.export.tensorrt import gpu_name

        return bool(gpu_name())
    except Exception:
        return False


@pytest.mark.gpu
@pytest.mark.skipif(not _has_tensorrt_gpu(), reason="needs an NVIDIA GPU with TensorRT and cuda-python (vidseek[tensorrt])")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_engines_match_onnxruntime(bundle_dir, precision):
    from vidseek.engine.grounder import Grounder
    from vidseek.engine.session import TrtSession
    from vidseek.export.tensorrt import build_bundle_engines

    bundle = load_bundle(bundle_dir)
    folder = build_bundle_engines(bundle, precision)
    g = Grounder(bundle)
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(2, 40, 10)).astype(np.float32)
    mask = np.ones((2, 40), bool)
    ref = g.encode_video(feats, mask)
    got = TrtSession(folder / "video_encoder.engine").run({"features": feats, "video_mask": mask})["video_states"]
    np.testing.assert_allclose(got, ref, atol=1e-3 if precision == "fp32" else 5e-2)
    assert (folder / "engines.json").is_file()  # cached: a second build reuses the engines
    assert build_bundle_engines(bundle, precision) == folder


@pytest.mark.gpu
@pytest.mark.skipif("CUDAExecutionProvider" not in __import__("onnxruntime").get_available_providers(),
                    reason="needs onnxruntime-gpu (vidseek[gpu]) and an NVIDIA GPU")
def test_onnxruntime_cuda_provider_matches_cpu(bundle_dir):
    from vidseek.engine.grounder import Grounder

    bundle = load_bundle(bundle_dir)
    feats = np.random.default_rng(0).normal(size=(3, 40, 10)).astype(np.float32)
    mask = np.ones((3, 40), bool)
    np.testing.assert_allclose(Grounder(bundle, "onnxruntime-cuda").encode_video(feats, mask),
                               Grounder(bundle).encode_video(feats, mask), atol=1e-4)


def test_retrieval_outputs_are_exported_with_parity(tmp_path):
    for name in ("excl-reg-2c", "plpnet"):
        torch.manual_seed(0)
        feat = LearnedWords.build(SENTENCES, dim=12)
        small = {"dim": 32, "max_len": 40} if name == "plpnet" else {"video_hidden": 8, "query_hidden": 8, "span_hidden": 8, "mlp_hidden": 8}
        run_dir = tmp_path / name
        run_dir.mkdir()
        model = build_model(name, video_dim=10, word_dim=12, vocab_size=len(feat.vocab), retrieval_dim=16, **small)
        save_run(run_dir, model, name, save_featurizer(feat, run_dir), {"length": 40, "feature_dim": 10}, {}, {})
        meta = export_bundle(run_dir, tmp_path / f"b-{name}")
        assert meta["retrieval_dim"] == 16
        assert [o["name"] for o in meta["graphs"]["video_encoder"]["outputs"]] == ["video_states", "retrieval_steps"]
        assert meta["graphs"]["text_encoder"]["outputs"][-1]["name"] == "retrieval"
        report = check_parity(load_run(run_dir), load_bundle(tmp_path / f"b-{name}"))
        assert max(report[g] for g in ("video_encoder", "text_encoder", "head")) < 1e-4, report


def test_clip_text_tower_as_word_features_exports_with_parity(tiny_clip_dir, tmp_path, monkeypatch):
    """The text side of CLIP (`--words clip:FOLDER`), on a tiny randomly initialised CLIP built offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from vidseek.trainer.words import make_featurizer

    feat = make_featurizer(f"clip:{tiny_clip_dir}", SENTENCES, max_words=16)
    batch = feat.encode(SENTENCES)
    assert batch.words.shape[0] == 3 and batch.words.shape[2] == feat.dim and batch.mask[:, 0].all()
    torch.manual_seed(0)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    model = build_model("plpnet", video_dim=10, word_dim=feat.dim, dim=32, max_len=40)
    save_run(run_dir, model, "plpnet", save_featurizer(feat, run_dir), {"length": 40, "feature_dim": 10}, {}, {})
    export_bundle(run_dir, tmp_path / "bundle")
    report = check_parity(load_run(run_dir), load_bundle(tmp_path / "bundle"))
    assert max(report[g] for g in ("video_encoder", "text_encoder", "head")) < 1e-4, report
