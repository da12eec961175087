"""The built-in bundle and the steps that make it: CNN distillation, text encoder quantization, and
the shipped bundle's integrity, size and accuracy on a fresh synthetic library."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import make_run
from vidseek.trainer.checkpoint import save_run
from vidseek.trainer.models import build_model
from vidseek.trainer.words import TransformerWords, save_featurizer
from vidseek.engine.bundle import BundleError, load_bundle
from vidseek.export.onnx import export_bundle
from vidseek.export.quantize import quantize_text_encoder
from vidseek.synth.features import frame_labels
from vidseek.trainer.distill import DistillConfig, distill_cnn, load_frame_targets
from vidseek.trainer.encoders import CNNConfig, build_frame_encoder, load_builtin, save_builtin


def test_distilled_cnn_learns_state_targets_from_pixels(tmp_path, invoke):
    world = tmp_path / "world"
    r = invoke("synth", world, "--videos", 2, "--min-duration", 8, "--max-duration", 8, "--state-features", 5,
               "--no-progress")
    assert r.exit_code == 0, r.output
    videos = {v["vid"]: v for v in json.loads((world / "manifest.json").read_text())["videos"]}

    def labels(vid):
        return frame_labels(videos[vid], np.load(world / "state_features" / f"{vid}.npy"), 5.0)

    data = load_frame_targets(world / "videos", labels, sorted(videos), 5.0, progress=False)
    assert len(data) == 80 and data.frames.shape[1:] == (84, 112, 3) and data.frames.dtype == np.uint8
    cfg = CNNConfig(out_dim=32, channels=(8, 16, 16, 32, 32), pool="grid")
    cnn, history = distill_cnn(data, data, cfg, DistillConfig(epochs=6, batch_size=16, lr=3e-3), log=lambda _: None)
    assert history[-1]["train_loss"] < 0.6 * history[0]["train_loss"], history
    assert history[-1]["val_loss"] < 1.0  # better than predicting the mean
    ckpt = tmp_path / "cnn.safetensors"
    save_builtin(cnn, ckpt)
    again, _ = load_builtin(ckpt)
    assert again.cfg.pool == "grid" and again.cfg.grid == (3, 4)
    enc = build_frame_encoder(f"builtin:{ckpt}")
    assert enc.encode(data.frames[:3]).shape == (3, 32)


def test_targets_at_another_rate_are_refused(tmp_path, invoke):
    world = tmp_path / "world"
    assert invoke("synth", world, "--videos", 1, "--min-duration", 8, "--max-duration", 8, "--state-features", 2,
                  "--no-progress").exit_code == 0
    vid = next((world / "state_features").glob("*.npy")).stem
    with pytest.raises(ValueError, match="another rate"):
        load_frame_targets(world / "videos", lambda v: np.load(world / "state_features" / f"{v}.npy"), [vid], 5.0,
                           progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("mode,ratio", [("int8", 0.35), ("fp16", 0.55)])
def test_quantized_text_encoder_agrees_with_fp32_and_is_smaller(tmp_path, monkeypatch, mode, ratio):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch

    torch.manual_seed(0)
    words = TransformerWords()  # all-MiniLM-L6-v2, offline, under a query encoder of the built-in bundle's size
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    model = build_model("excl-clf-2b", video_dim=10, word_dim=words.dim, video_hidden=32, query_hidden=128,
                        span_hidden=32, mlp_hidden=32, retrieval_dim=32)
    save_run(run_dir, model, "excl-clf-2b", save_featurizer(words, run_dir), {"length": 40, "feature_dim": 10}, {}, {})
    bundle_dir = tmp_path / "bundle"
    export_bundle(run_dir, bundle_dir)
    fp32 = (bundle_dir / "text_encoder.onnx").stat().st_size
    record = quantize_text_encoder(bundle_dir, mode)
    assert record["mode"] == mode and record["bytes_fp32"] == fp32
    assert record["bytes"] < ratio * fp32
    assert min(record["min_cosine_vs_fp32"].values()) >= 0.98
    bundle = load_bundle(bundle_dir)  # the new graph's hash is recorded
    assert bundle.graphs["text_encoder"]["quantized"]["mode"] == mode
    with pytest.raises(ValueError, match="already quantized"):
        quantize_text_encoder(bundle_dir, mode)
    assert not (bundle_dir / "text_encoder.onnx").exists()  # the fp32 graph is gone
    with open(bundle.graph_path("text_encoder"), "ab") as fh:  # tampering is still caught
        fh.write(b"x")
    with pytest.raises(BundleError):
        load_bundle(bundle_dir)


def test_export_stores_a_quantized_text_encoder_when_asked(tmp_path, monkeypatch, invoke):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run_dir = make_run(tmp_path, "excl-clf-2b", "learned")
    r = invoke("export", run_dir, "--out", tmp_path / "bundle", "--text-precision", "fp16")
    assert r.exit_code == 0, r.output
    assert "text encoder fp16" in r.output and "lowest cosine to fp32" in r.output
    assert load_bundle(tmp_path / "bundle").graphs["text_encoder"]["quantized"]["mode"] == "fp16"
    for args, hint in ((["--format", "tensorrt"], "--format onnx"), (["--clip", "x"], "trained run")):
        r = invoke("export", run_dir, "--out", tmp_path / "b2", "--text-precision", "int8", *args)
        assert r.exit_code == 2 and hint in r.output and not (tmp_path / "b2").exists()


def test_failed_agreement_leaves_the_bundle_as_it_was(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run_dir = make_run(tmp_path, "excl-clf-2b", "learned")
    bundle_dir = tmp_path / "bundle"
    export_bundle(run_dir, bundle_dir)
    before = {p.name: p.read_bytes() for p in bundle_dir.iterdir()}
    with pytest.raises(ValueError, match="disagrees"):
        quantize_text_encoder(bundle_dir, "int8", min_cosine=1.01)  # an impossible bar
    assert {p.name: p.read_bytes() for p in bundle_dir.iterdir()} == before
    assert json.loads((bundle_dir / "bundle.json").read_text())["graphs"]["text_encoder"].get("quantized") is None


# ---- the shipped bundle ------------------------------------------------------------------------


def test_builtin_bundle_is_complete_verified_and_lean():
    from vidseek.builtin import BUNDLE_DIR, builtin_bundle

    bundle = load_bundle(builtin_bundle())  # hashes, format version and paths verified
    assert set(bundle.graphs) == {"frame_encoder", "video_encoder", "text_encoder", "head"}
    assert bundle.meta["retrieval_dim"] > 0 and bundle.meta["features"]["frame_encoder"]["rate"] == 5.0
    assert bundle.meta["words"]["model"] == "all-MiniLM-L6-v2"
    quantized = bundle.graphs["text_encoder"]["quantized"]
    assert quantized["mode"] == "int8" and min(quantized["min_cosine_vs_fp32"].values()) >= 0.98
    sizes = {name: (BUNDLE_DIR / name).stat().st_size for name in bundle.meta["files"]}
    assert sum(sizes.values()) < 40e6  # the package stays lean: the int8 MiniLM tower is most of it
    assert sum(v for k, v in sizes.items() if not k.startswith(("text_encoder", "tokenizer"))) < 12e6


def test_builtin_plpnet_bundle_shares_the_cnn_and_grounds_phrases():
    from vidseek.builtin import BUNDLE_DIRS, builtin_bundle
    from vidseek.engine.registry import family

    bundle = load_bundle(builtin_bundle("builtin-plpnet"))  # hashes, format version and paths verified
    excl = load_bundle(builtin_bundle())
    assert bundle.model_name == "plpnet" and family(bundle.model_name).phrases
    assert set(bundle.graphs) == {"frame_encoder", "video_encoder", "text_encoder", "head"}
    assert bundle.meta["domain"]["kind"] == "synthetic" and bundle.meta.get("calibration")
    assert bundle.meta["words"]["vocabulary"] == excl.meta["words"]["vocabulary"]
    # the same CNN as the ExCL bundle, read back from its graph: the two differ in the grounding model only
    cnn = bundle.meta["trained"]["data"]["features_meta"]["weights_sha256"]
    assert cnn == excl.meta["trained"]["data"]["features_meta"]["weights_sha256"]
    sizes = {name: (BUNDLE_DIRS["builtin-plpnet"] / name).stat().st_size for name in bundle.meta["files"]}
    assert sum(sizes.values()) < 45e6


@pytest.fixture(scope="module")
def fresh_library(tmp_path_factory, invoke):
    """A synthetic world the built-in bundle never saw (seed 77), indexed with `--model builtin`."""
    root = tmp_path_factory.mktemp("fresh")
    r = invoke("synth", root / "world", "--videos", 8, "--seed", 77, "--min-duration", 10, "--max-duration", 30,
               "--split", "0,0,1", "--workers", 2, "--no-progress")
    assert r.exit_code == 0, r.output
    r = invoke("index", root / "world" / "videos", "--index", root / "index", "--no-progress")  # builtin is the default
    assert r.exit_code == 0 and "errors 0" in r.output, r.output
    return root


def test_demo_indexes_searches_and_shows_the_ground_truth(tmp_path, invoke):
    r = invoke("demo", "--dir", tmp_path / "demo", "--videos", 3, "--top-k", 2, "--workers", 1)
    assert r.exit_code == 0, r.output
    assert "indexed 3" in r.output and 'vidseek search "person opens door"' in r.output
    excl, plpnet = r.output.split("the PLPNet bundle finds each phrase of a query too:")
    rows = [line for line in excl.splitlines() if line.strip()[:1].isdigit() and line.rstrip().endswith(".mp4")]
    assert 1 <= len(rows) <= 6  # up to two moments per query that clear the calibrated threshold, with truth and IoU
    assert excl.count("moments overlap a true") + excl.count("no moment matches") == 4
    assert "no moment matches 'qwzx blorft'" in excl  # made-up words: nothing matches
    assert "--model builtin-plpnet" in plpnet and "indexed 3" in plpnet
    assert 'search "the person in the red shirt picks up the ball" --phrases' in plpnet
    assert plpnet.count(" phrase '") % 3 == 0 and plpnet.count(" phrase '") >= 3  # three phrases under each moment
    again = invoke("demo", "--dir", tmp_path / "demo", "--videos", 3, "--top-k", 2)  # rendered once, indexed once
    assert again.exit_code == 0 and "rendering" not in again.output and "indexed 0" in again.output
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("mine")
    refused = invoke("demo", "--dir", tmp_path / "other")
    assert refused.exit_code == 1 and "not a demo library" in refused.output
    assert (tmp_path / "other" / "x.txt").read_text() == "mine"


@pytest.mark.slow
def test_builtin_bundle_finds_held_out_moments(fresh_library, invoke):
    """Queries of videos the bundle never saw: the right span ranks first in its own video far more
    often than chance, and library-wide the first moment is often a true one."""
    from vidseek.evaluation import evaluate_files, load_jsonl, vcmr_metrics

    root = fresh_library
    gt = root / "world" / "test.jsonl"
    r = invoke("search", "--index", root / "index", "--queries", gt, "--out", root / "pv.jsonl", "--per-video")
    assert r.exit_code == 0, r.output
    single = evaluate_files(gt, root / "pv.jsonl")["grounding"]
    r = invoke("search", "--index", root / "index", "--queries", gt, "--out", root / "lib.jsonl")
    assert r.exit_code == 0, r.output
    library = vcmr_metrics(load_jsonl(gt), load_jsonl(root / "lib.jsonl"))
    library.update(vcmr_metrics(load_jsonl(gt), load_jsonl(root / "lib.jsonl"), same_sentence=True))
    library.update(vcmr_metrics(load_jsonl(gt), load_jsonl(root / "lib.jsonl"), library=True))
    # chance: a random span of a random length hits a ~2 s moment of a 10-30 s video with IoU >= 0.5
    # in under 5 % of cases. Measured on this library (116 queries): single-video R1@0.5 88.8,
    # library VCMR-R10@0.5 94.0 (the right video required), VCMR-any-R10@0.5 94.8, VCMR-true-R1@0.5
    # 78.4 and R10@0.5 98.3 (any video where the sentence is true); the bounds leave room for other
    # decoders and CPUs
    assert single["R1@0.5"] >= 75.0, single
    assert library["VCMR-R10@0.5"] >= 75.0, library
    assert library["VCMR-any-R10@0.5"] >= 75.0, library
    assert library["VCMR-true-R1@0.5"] >= 60.0 and library["VCMR-true-R10@0.5"] >= 85.0, library
