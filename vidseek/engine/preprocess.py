"""The one definition of frame preprocessing, shared by the trainer, export and the engine (numpy only).

A frame encoder declares what pixels it expects with a :class:`FrameSpec`. Frames go through two
stages, and every caller runs both through this module so training and inference cannot drift:

1. the decoder scales each frame to ``spec.decode_size(src_w, src_h)`` (FFmpeg's bilinear scaler,
   in ``vidseek.engine.video``), so full-size frames never reach numpy;
2. :func:`preprocess` centre-crops (``shorter_center_crop``), divides by 255, normalises with the
   spec's mean and std and moves channels first: uint8 (N, H, W, 3) -> float32 (N, 3, h, w).

>>> spec = FrameSpec(4, 2, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "stretch")
>>> x = np.zeros((1, 2, 4, 3), np.uint8); x[0, 0, 0] = 255
>>> preprocess(x, spec)[0, 0].tolist()
[[2.0, -2.0, -2.0, -2.0], [-2.0, -2.0, -2.0, -2.0]]
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

import numpy as np

from vidseek.engine.video import VideoInfo, sample_frames

RESIZE_MODES = ("stretch", "shorter_center_crop")


@dataclass(frozen=True)
class FrameSpec:
    """The pixels a frame encoder expects."""

    width: int  # model input width in pixels
    height: int  # model input height in pixels
    mean: tuple[float, float, float]  # per-channel RGB mean of pixels scaled to [0, 1]
    std: tuple[float, float, float]  # per-channel RGB std of pixels scaled to [0, 1]
    resize: str = "stretch"  # "stretch": scale to exactly width x height (aspect not kept);
    # "shorter_center_crop": scale the shorter side to fit, keep the aspect, crop the centre (CLIP)

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"FrameSpec.{name} must be a whole number of pixels >= 1, got {v!r}")
            object.__setattr__(self, name, int(v))
        for name in ("mean", "std"):
            v = tuple(float(c) for c in getattr(self, name))  # JSON gives lists
            if len(v) != 3 or not all(np.isfinite(v)):
                raise ValueError(f"FrameSpec.{name} must be 3 finite numbers (R, G, B), got {getattr(self, name)!r}")
            object.__setattr__(self, name, v)
        if min(self.std) <= 0:
            raise ValueError(f"FrameSpec.std must be > 0 per channel, got {self.std}")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"FrameSpec.resize must be one of {', '.join(RESIZE_MODES)}, got {self.resize!r}")

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (stored in bundle.json and checkpoints)."""
        return {"width": self.width, "height": self.height, "mean": list(self.mean), "std": list(self.std),
                "resize": self.resize}

    @classmethod
    def from_dict(cls, d: dict) -> FrameSpec:
        """Rebuild from :meth:`to_dict`'s output; unknown or missing keys are refused with their names."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(names))
        missing = [n for n in names if n not in d and n != "resize"]
        if unknown or missing:
            raise ValueError(f"not a FrameSpec dict: unknown keys {unknown}, missing keys {missing}; "
                             f"expected {names}")
        return cls(**d)

    def decode_size(self, src_w: int, src_h: int) -> tuple[int, int]:
        """(width, height) the decoder should scale a ``src_w`` x ``src_h`` frame to before :func:`preprocess`.

        ``stretch``: the spec's size. ``shorter_center_crop``: the aspect is kept and the frame just
        covers the spec's size (the longer side truncated to whole pixels, as torchvision's Resize).

        >>> CLIP_SPEC.decode_size(1280, 720), CLIP_SPEC.decode_size(340, 256), BUILTIN_SPEC.decode_size(1280, 720)
        ((398, 224), (297, 224), (112, 84))
        """
        if src_w < 1 or src_h < 1:
            raise ValueError(f"source size must be >= 1 pixel per side, got {src_w}x{src_h}")
        if self.resize == "stretch":
            return self.width, self.height
        if src_w * self.height >= src_h * self.width:  # source relatively wider: height fits
            return max(self.width, int(self.height * src_w / src_h)), self.height
        return self.width, max(self.height, int(self.width * src_h / src_w))

    def crop_box(self, w: int, h: int) -> tuple[int, int]:
        """(left, top) of the centre crop of a ``w`` x ``h`` frame (torchvision's CenterCrop rounding).

        >>> CLIP_SPEC.crop_box(398, 224), CLIP_SPEC.crop_box(224, 224)
        ((87, 0), (0, 0))
        """
        return int(round((w - self.width) / 2.0)), int(round((h - self.height) / 2.0))


BUILTIN_SPEC = FrameSpec(  # the built-in CNN: small 4:3 frames; the whole picture is kept (stretched)
    width=112, height=84, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), resize="stretch")
CLIP_SPEC = FrameSpec(  # OpenAI CLIP image towers (ViT-B/32 and friends) at 224 px
    width=224, height=224, mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711),
    resize="shorter_center_crop")


def preprocess(frames: np.ndarray, spec: FrameSpec) -> np.ndarray:
    """uint8 RGB frames (N, H, W, 3) at ``spec.decode_size`` -> float32 pixels (N, 3, spec.height, spec.width).

    Centre-crops when the spec asks for it, then ``(x / 255 - mean) / std`` per channel.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB frames (N, H, W, 3), got {frames.dtype} {frames.shape}")
    n, h, w, _ = frames.shape
    if spec.resize == "stretch":
        if (w, h) != (spec.width, spec.height):
            raise ValueError(f"frames are {w}x{h} but the spec wants {spec.width}x{spec.height} (stretch); decode "
                             "them at spec.decode_size(src_w, src_h)")
        x = frames
    else:
        if w < spec.width or h < spec.height or (w != spec.width and h != spec.height):
            raise ValueError(f"frames are {w}x{h}; for a {spec.width}x{spec.height} centre crop decode them at "
                             "spec.decode_size(src_w, src_h), which fits one side exactly and covers the other")
        left, top = spec.crop_box(w, h)
        x = frames[:, top:top + spec.height, left:left + spec.width]  # (N, h, w, 3) view
    mean = np.asarray(spec.mean, np.float32)[:, None, None]  # (3, 1, 1)
    std = np.asarray(spec.std, np.float32)[:, None, None]
    out = np.empty((n, 3, spec.height, spec.width), np.float32)
    np.divide(x.transpose(0, 3, 1, 2), np.float32(255.0), out=out, dtype=np.float32)  # (N, 3, h, w)
    out -= mean
    out /= std
    return out


def load_frames(path: str | os.PathLike, spec: FrameSpec, rate: float = 5.0,
                decoder: str = "auto") -> tuple[np.ndarray, VideoInfo]:
    """Sample a video at ``rate`` steps/s and preprocess it for ``spec``: pixels (T, 3, h, w) float32 and its info.

    The step centres are ``vidseek.engine.video.step_times(info.duration, rate)``. This holds the
    whole video in memory (T x 3 x h x w floats: about 10 GB for an hour at 5 steps/s and 224 px);
    for long videos run ``iter_sampled_chunks(path, rate, size=spec.decode_size)`` and
    :func:`preprocess` per chunk.
    """
    video = sample_frames(path, rate=rate, size=spec.decode_size, decoder=decoder)
    return preprocess(video.frames, spec), video.info
