"""The built-in CNN trained jointly with a grounding model from pixels, and exported with its bundle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from blocking import run_blocked
from vidseek.cli.main import cli
from vidseek.engine.bundle import load_bundle
from vidseek.export.parity import check_parity
from vidseek.trainer.checkpoint import load_run
from vidseek.trainer.encoders import build_frame_encoder
from vidseek.trainer.joint import FrameGrounder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    out = tmp_path_factory.mktemp("joint") / "syn"
    r = CliRunner().invoke(cli, ["synth", str(out), "--videos", "6", "--min-duration", "10", "--max-duration", "11",
                                 "--no-progress", "--split", "0.5,0.5,0.0"])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def run_dir(library):
    run = library / "run"
    r = CliRunner().invoke(cli, ["train", "--model", "plpnet", "--dataset", "jsonl", "--annotations", str(library / "train.jsonl"),
                                 "--val-annotations", str(library / "val.jsonl"), "--videos", str(library / "videos"),
                                 "--frame-encoder", "builtin", "--words", "learned", "--out", str(run), "--epochs", "1",
                                 "--max-len", "24", "--batch-size", "8", "--set", "dim=32", "--sampler", "random"])
    assert r.exit_code == 0, r.output
    return run


def test_encoder_weights_are_trained_jointly(run_dir):
    run = load_run(run_dir)
    assert isinstance(run.model, FrameGrounder)
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["data"]["frame_encoder"]["encoder"] == "builtin" and cfg["data"]["frame_encoder"]["rate"] == 5.0
    initial = build_frame_encoder("builtin").module.state_dict()
    trained = run.model.encoder.state_dict()
    changed = [k for k in initial if not torch.equal(initial[k], trained[k])]
    assert changed, "the frame encoder's weights did not move during training"
    # the trained CNN is also a standalone checkpoint for `vidseek features --encoder builtin:CKPT`
    standalone = build_frame_encoder(f"builtin:{run_dir / 'frame_encoder.safetensors'}").module.state_dict()
    assert all(torch.equal(standalone[k], trained[k]) for k in trained)


def test_bundle_has_the_frame_encoder_with_parity(run_dir, tmp_path):
    r = CliRunner().invoke(cli, ["export", str(run_dir), "--out", str(tmp_path / "bundle")])
    assert r.exit_code == 0, r.output
    assert "frame_encoder.onnx" in r.output
    bundle = load_bundle(tmp_path / "bundle")
    fe = bundle.meta["features"]["frame_encoder"]
    assert fe["rate"] == 5.0 and fe["spec"]["width"] == 112 and fe["spec"]["height"] == 84
    report = check_parity(load_run(run_dir), bundle, lengths=(8, None))
    assert max(report[k] for k in ("frame_encoder", "video_encoder", "text_encoder", "head")) < 1e-4, report
    assert report["task_min_iou"] > 0.99


SEARCH_VIDEO_WITHOUT_TORCH = """
import sys, json
from vidseek.engine.bundle import load_bundle
from vidseek.engine.grounder import Grounder
g = Grounder(load_bundle(sys.argv[1]))
feats, info = g.video_features(sys.argv[2])
duration = info.duration
print(json.dumps({"shape": list(feats.shape), "duration": duration,
                  "windows": g.ground(feats, "person opens the door", duration, k=2)["windows"]}))
"""


def test_video_file_to_moments_without_torch(run_dir, library, tmp_path):
    CliRunner().invoke(cli, ["export", str(run_dir), "--out", str(tmp_path / "bundle"), "--no-check"])
    video = sorted((library / "videos").glob("*.mp4"))[0]
    r = run_blocked(SEARCH_VIDEO_WITHOUT_TORCH, str(tmp_path / "bundle"), str(video))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    manifest = json.loads((library / "manifest.json").read_text())
    expected = next(v for v in manifest["videos"] if Path(v["file"]).name == video.name)
    assert out["shape"] == [round(expected["duration"] * 5), 256]
    assert all(0 <= s <= e <= out["duration"] + 1e-3 for s, e, _ in out["windows"])


def test_train_needs_exactly_one_source(library, tmp_path):
    r = CliRunner().invoke(cli, ["train", "--model", "excl-clf-1a", "--dataset", "jsonl", "--annotations",
                                 str(library / "train.jsonl"), "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "either --features" in r.output
