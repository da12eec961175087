"""Training samples as tensors: video features resampled to L steps, span targets, attention tags."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from vidseek.spans import resample_features, seconds_to_index


class MomentDataset(torch.utils.data.Dataset):
    """Pairs annotation samples with their videos' features, resampled to `length` steps.

    The first ground-truth window is the regression/classification target; every window marks
    the in-span tags used by PLPNet's attention loss. A video missing from `store` is an error
    naming it (or, with ``skip_missing=True``, a counted skip with one warning).
    """

    def __init__(self, samples, store, length: int = 128, skip_missing: bool = False):
        missing = sorted({s.vid for s in samples if s.vid not in store})
        if missing and not skip_missing:
            raise FileNotFoundError(
                f"{len(missing)} video(s) have no features in {getattr(store, 'path', store)}: "
                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} "
                "(extract their features, or pass --skip-missing to leave those queries out)"
            )
        if missing:
            warnings.warn(f"skipped queries of {len(missing)} video(s) without features, e.g. {missing[0]}", stacklevel=2)
        self.samples = [s for s in samples if s.vid in store] if missing else list(samples)
        if not self.samples:
            raise ValueError("no training samples left: none of the annotated videos has features")
        self.store, self.length = store, length
        self._video_cache: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def video(self, vid: str) -> np.ndarray:
        """(L, D) features resampled by averaging bins, or, from a store of frames, (L, 3, H, W) pixels."""
        if hasattr(self.store, "sample"):  # frames: sampled and preprocessed on the fly (too big to cache)
            return self.store.sample(vid, self.length)
        if vid not in self._video_cache:
            self._video_cache[vid] = resample_features(self.store[vid].astype(np.float32), self.length)
        return self._video_cache[vid]

    def __getitem__(self, i: int) -> dict:
        s = self.samples[i]
        n, d = self.length, s.duration
        start, end = s.windows[0]
        i_s, i_e = seconds_to_index((start, end), d, n)
        tags = np.zeros(n, np.float32)
        for ws, we in s.windows:
            a, b = seconds_to_index((ws, we), d, n)
            tags[a : b + 1] = 1.0
        return {
            "video": self.video(s.vid),
            "span": np.array([start / d, end / d], np.float32),
            "start_idx": i_s,
            "end_idx": i_e,
            "tags": tags,
            "sample": s,
        }


def collate(items: list[dict]) -> dict:
    """Stack a list of dataset items into a batch (all videos share the resampled length)."""
    video = torch.from_numpy(np.stack([it["video"] for it in items]))
    return {
        "video": video,
        "video_mask": torch.ones(video.shape[:2], dtype=torch.bool),
        "span": torch.from_numpy(np.stack([it["span"] for it in items])),
        "start_idx": torch.tensor([it["start_idx"] for it in items]),
        "end_idx": torch.tensor([it["end_idx"] for it in items]),
        "tags": torch.from_numpy(np.stack([it["tags"] for it in items])),
        "samples": [it["sample"] for it in items],
    }
