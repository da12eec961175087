"""Training samples as tensors: video features resampled to L steps (or native-rate crops of at most
L steps), span targets, attention tags."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch

from vidseek.spans import resample_features, seconds_to_index


class MomentDataset(torch.utils.data.Dataset):
    """Pairs annotation samples with their videos' features, resampled to `length` steps.

    The first ground-truth window is the regression/classification target; every window marks
    the in-span tags used by PLPNet's attention loss. A video missing from `store` is an error
    naming it (or, with ``skip_missing=True``, a counted skip with one warning).
    """

    def __init__(self, samples, store, length: int = 128, skip_missing: bool = False, crop: str | None = None,
                 seed: int = 0):
        """crop: None resamples every video to `length` steps (the papers' setting); "random" / "center"
        keep the features' own rate and cut a window of at most `length` steps holding the target
        (randomly placed for training, centred for evaluation), the time scale the library search
        runs the head at."""
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
        if crop not in (None, "random", "center"):
            raise ValueError(f"crop must be None, 'random' or 'center', got {crop!r}")
        self.crop, self.rng = crop, np.random.default_rng(seed)
        self._video_cache: dict[str, np.ndarray] = {}  # resampled (L, D) per video
        self._native_cache: dict[str, np.ndarray] = {}  # native-rate (T, D) per video, for crops

    def __len__(self) -> int:
        return len(self.samples)

    def video(self, vid: str) -> np.ndarray:
        """(L, D) features resampled by averaging bins, or, from a store of frames, (L, 3, H, W) pixels."""
        if hasattr(self.store, "sample"):  # frames: sampled and preprocessed on the fly (too big to cache)
            return self.store.sample(vid, self.length)
        if vid not in self._video_cache:
            self._video_cache[vid] = resample_features(self.store[vid].astype(np.float32), self.length)
        return self._video_cache[vid]

    def _native(self, vid: str) -> tuple[int, Callable[[int, int], np.ndarray]]:
        """A video's native-rate length and a reader of its steps a..b: features (n, D), read from the
        store once and kept, or frames preprocessed on the fly (n, 3, H, W; the store keeps them decoded)."""
        if hasattr(self.store, "window"):
            return self.store.n_steps(vid), lambda a, b: self.store.window(vid, a, b)
        if vid not in self._native_cache:
            self._native_cache[vid] = self.store[vid].astype(np.float32)
        feats = self._native_cache[vid]
        return len(feats), lambda a, b: feats[a:b]

    def _crop_item(self, s) -> dict:
        total, steps = self._native(s.vid)
        rate = total / s.duration
        gs, ge = seconds_to_index(s.windows[0], s.duration, total)
        n = min(self.length, total)
        lo, hi = max(0, ge + 1 - n), min(gs, total - n)
        if lo > hi:  # the moment is longer than a crop: keep its start
            lo = hi = min(gs, total - n)
        c = int(self.rng.integers(lo, hi + 1)) if self.crop == "random" else (lo + hi) // 2
        offset, dur = c / rate, n / rate
        window = steps(c, c + n)
        video = np.zeros((self.length,) + window.shape[1:], np.float32)
        video[:n] = window
        mask = np.arange(self.length) < n
        start = min(max(s.windows[0][0] - offset, 0.0), dur)
        end = min(max(s.windows[0][1] - offset, start), dur)
        i_s, i_e = seconds_to_index((start, max(end, start + 1e-6)), dur, n)
        tags = np.zeros(self.length, np.float32)
        for ws, we in s.windows:
            if we > offset and ws < offset + dur:
                a, b = seconds_to_index((max(ws - offset, 0.0), min(we - offset, dur)), dur, n)
                tags[a : b + 1] = 1.0
        return {"video": video, "mask": mask, "span": np.array([start / dur, end / dur], np.float32),
                "start_idx": i_s, "end_idx": i_e, "tags": tags, "sample": s, "duration": dur, "offset": offset}

    def __getitem__(self, i: int) -> dict:
        s = self.samples[i]
        if self.crop:
            return self._crop_item(s)
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
            "mask": np.ones(n, bool),
            "duration": d,
            "offset": 0.0,
        }


def collate(items: list[dict]) -> dict:
    """Stack a list of dataset items into a batch (every item has `length` steps, crops padded and masked)."""
    video = torch.from_numpy(np.stack([it["video"] for it in items]))
    return {
        "video": video,
        "video_mask": torch.from_numpy(np.stack([it["mask"] for it in items])),
        "durations": [it["duration"] for it in items],  # seconds the steps cover (a crop's, or the video's)
        "offsets": [it["offset"] for it in items],  # where those seconds start in the video
        "span": torch.from_numpy(np.stack([it["span"] for it in items])),
        "start_idx": torch.tensor([it["start_idx"] for it in items]),
        "end_idx": torch.tensor([it["end_idx"] for it in items]),
        "tags": torch.from_numpy(np.stack([it["tags"] for it in items])),
        "samples": [it["sample"] for it in items],
    }
