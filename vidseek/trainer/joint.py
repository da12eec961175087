"""A frame encoder trained jointly with a grounding model: pixels -> frame features -> ExCL / PLPNet.

The frames are decoded and preprocessed by the engine's own code (``vidseek.engine.video`` and
``vidseek.engine.preprocess``), so training sees exactly what the deployed bundle will see.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from vidseek.engine.preprocess import FrameSpec, preprocess


class FrameGrounder(nn.Module):
    """`encoder` in front of `model`. forward() takes pixels (B, T, 3, H, W); the other parts keep the
    grounding model's faces (encode_video takes frame features), which is where export cuts the graphs."""

    def __init__(self, encoder: nn.Module, model: nn.Module):
        super().__init__()
        self.encoder, self.model = encoder, model
        self.cfg = model.cfg

    def encode_frames(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> frame features (B, T, D)."""
        b, t = pixels.shape[:2]
        return self.encoder(pixels.flatten(0, 1)).view(b, t, -1)

    def encode_video(self, features, mask):
        return self.model.encode_video(features, mask)

    def encode_text(self, words, mask):
        return self.model.encode_text(words, mask)

    def head(self, video, mask, text):
        return self.model.head(video, mask, text)

    @property
    def embedding(self):
        return self.model.embedding

    @property
    def retrieval(self):
        return self.model.retrieval

    def forward(self, pixels, video_mask, words, word_mask) -> dict[str, torch.Tensor]:
        feats = self.encode_frames(pixels)
        out = self.model(feats, video_mask, words, word_mask)
        out["video_features"] = feats
        return out

    def loss(self, out, batch):
        # PLPNet's feature loss compares phrases with the frame features the encoder produced
        return self.model.loss(out, {**batch, "video": out["video_features"]})


class FrameStore:
    """Decoded frames of a video folder, for joint training (same face as a FeatureStore).

    Frames are sampled at `rate` steps/s at the spec's decode size and kept in memory as uint8.
    ``sample(vid, L)`` picks L steps (nearest, no averaging of pixels) and preprocesses them.
    """

    def __init__(self, video_dir: str | Path, spec: FrameSpec, dim: int, rate: float = 5.0, decoder: str = "auto"):
        self.path = Path(video_dir)
        if not self.path.is_dir():
            raise FileNotFoundError(f"video folder {self.path} does not exist")
        self.spec, self.dim, self.rate, self.decoder = spec, dim, rate, decoder
        self._files = {p.stem: p for p in sorted(self.path.rglob("*")) if p.suffix.lower() in VIDEO_SUFFIXES}
        self._frames: dict[str, np.ndarray] = {}

    def __contains__(self, vid: object) -> bool:
        return vid in self._files

    def vids(self) -> list[str]:
        return list(self._files)

    def frames(self, vid: str) -> np.ndarray:
        if vid not in self._frames:
            from vidseek.engine.video import sample_frames

            self._frames[vid] = sample_frames(self._files[vid], self.rate, size=self.spec.decode_size,
                                              decoder=self.decoder).frames
        return self._frames[vid]

    def preload(self, vids, progress: bool = True) -> None:
        for vid in tqdm(sorted(set(vids)), desc="decode", disable=None if progress else True, leave=False):
            self.frames(vid)

    def n_steps(self, vid: str) -> int:
        return len(self.frames(vid))

    def window(self, vid: str, a: int | None, b: int | None) -> np.ndarray:
        """Native-rate steps a..b, preprocessed: (n, 3, H, W) float32."""
        return preprocess(self.frames(vid)[a:b], self.spec)

    def sample(self, vid: str, length: int) -> np.ndarray:
        """(length, 3, H, W) float32: the frame nearest each of `length` equal bins, preprocessed."""
        frames = self.frames(vid)
        idx = np.minimum(((np.arange(length) + 0.5) * len(frames) / length).astype(np.int64), len(frames) - 1)
        return preprocess(frames[idx], self.spec)


VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg"}
