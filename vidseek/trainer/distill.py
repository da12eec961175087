"""Pretrain the built-in CNN by distillation: regress per-frame target vectors from pixels.

A grounding model trained from a randomly initialised CNN learns slowly on a CPU, and features of a
fixed random CNN carry too little to ground short actions. The synthetic world gives, for every
step of every video, what is true in that frame: which actions are under way, the door and the
light, which shirt colours and props are in view (``vidseek.synth.features.frame_labels``).
Regressing those labels teaches the CNN what to look at; a grounding model is then trained on its features
(``vidseek features --encoder builtin:CNN.safetensors``), and the exported bundle runs the CNN from
pixels, so nothing synthetic is needed at search time.

Targets are standardised per dimension over the training frames (dimensions that never change get
weight 0), and the loss is their mean squared error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from vidseek.engine.preprocess import BUILTIN_SPEC, FrameSpec, preprocess
from vidseek.trainer.encoders import BuiltinCNN, CNNConfig


@dataclass
class FrameTargets:
    """Decoded frames of some videos and one target vector per frame."""

    frames: np.ndarray  # (N, H, W, 3) uint8 at the spec's decode size
    targets: np.ndarray  # (N, D) float32
    vids: list[str]  # the videos, in order

    def __len__(self) -> int:
        return len(self.frames)


def load_frame_targets(video_dir: str | Path, targets: Callable[[str], np.ndarray], vids: list[str], rate: float,
                       spec: FrameSpec = BUILTIN_SPEC, progress: bool = True) -> FrameTargets:
    """Decode ``video_dir/<vid>.*`` at ``rate`` steps/s and pair each step with a row of ``targets(vid)``
    ((T, D) target vectors at the same rate).

    Both sides sample step i at (i + 0.5) / rate; when a container's duration rounds to one step
    more or less than the targets', the longer side is trimmed.
    """
    from vidseek.engine.video import sample_frames

    files = {p.stem: p for p in Path(video_dir).iterdir() if p.is_file()}
    frames, rows = [], []
    for vid in tqdm(vids, desc="decode", disable=None if progress else True, leave=False):
        if vid not in files:
            raise FileNotFoundError(f"no video file for {vid!r} in {video_dir}")
        target = np.asarray(targets(vid), np.float32)
        pixels = sample_frames(files[vid], rate, size=spec.decode_size).frames
        n = min(len(pixels), len(target))
        if abs(len(pixels) - len(target)) > 1:
            raise ValueError(f"{vid}: {len(pixels)} decoded steps but {len(target)} target steps at {rate}/s: "
                             "were the targets made at another rate?")
        frames.append(pixels[:n])
        rows.append(target[:n])
    return FrameTargets(np.concatenate(frames), np.concatenate(rows), list(vids))


@dataclass
class DistillConfig:
    epochs: int = 8
    batch_size: int = 128
    lr: float = 2e-3  # Adam, cosine-decayed to 5 % over the run
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int | None = None  # torch intra-op threads (None: torch's default)
    augment: bool = True  # random horizontal flips and shifts of up to `shift` pixels (labels do not change)
    shift: int = 4


class Standardizer:
    """Per-dimension z-scores of the training targets; constant dimensions get weight 0."""

    def __init__(self, targets: np.ndarray):
        self.mean = targets.mean(0)
        std = targets.std(0)
        self.weight = (std > 1e-6).astype(np.float32)
        self.std = np.where(std > 1e-6, std, 1.0).astype(np.float32)

    def __call__(self, targets: np.ndarray) -> np.ndarray:
        return ((targets - self.mean) / self.std).astype(np.float32)


def _augment(x: torch.Tensor, rng: np.random.Generator, shift: int) -> torch.Tensor:
    """Flip a random half of the frames left-right and shift the batch by up to ``shift`` pixels:
    what is in a frame stays the same, where it is changes, so the CNN cannot memorise a room's layout."""
    flip = torch.from_numpy(rng.random(len(x)) < 0.5)
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    dy, dx = (int(v) for v in rng.integers(-shift, shift + 1, size=2))
    return torch.roll(x, (dy, dx), dims=(2, 3))


def _loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return (((pred - target) ** 2) * weight).sum(1).mean() / weight.sum()


def _evaluate(cnn: BuiltinCNN, head: nn.Linear, data: FrameTargets, std: Standardizer, spec: FrameSpec,
              batch_size: int) -> float:
    """Mean weighted squared error of standardised targets (1.0 = no better than predicting the mean)."""
    weight = torch.from_numpy(std.weight)
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(data), batch_size):
            x = torch.from_numpy(preprocess(data.frames[i : i + batch_size], spec))
            y = torch.from_numpy(std(data.targets[i : i + batch_size]))
            total += float(_loss(head(cnn(x)), y, weight)) * len(x)
            n += len(x)
    return total / max(n, 1)


def distill_cnn(train: FrameTargets, val: FrameTargets | None = None, cnn_cfg: CNNConfig | None = None,
                cfg: DistillConfig | None = None, spec: FrameSpec = BUILTIN_SPEC,
                log: Callable[[str], None] = print) -> tuple[BuiltinCNN, list[dict]]:
    """Train a BuiltinCNN (plus a linear read-out, dropped afterwards) to regress ``train.targets``.

    Returns the CNN in eval mode and one history row per epoch (train loss, val loss, seconds).
    """
    cfg = cfg or DistillConfig()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    std = Standardizer(train.targets)
    weight = torch.from_numpy(std.weight)
    cnn = BuiltinCNN(cnn_cfg or CNNConfig(pool="grid"))
    head = nn.Linear(cnn.cfg.out_dim, train.targets.shape[1])
    params = list(cnn.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * math.ceil(len(train) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * s / steps)))
    history = []
    for epoch in range(cfg.epochs):
        t0, total = time.perf_counter(), 0.0
        cnn.train()
        head.train()
        order = rng.permutation(len(train))
        for i in range(0, len(order), cfg.batch_size):
            idx = np.sort(order[i : i + cfg.batch_size])
            x = torch.from_numpy(preprocess(train.frames[idx], spec))
            if cfg.augment:
                x = _augment(x, rng, cfg.shift)
            y = torch.from_numpy(std(train.targets[idx]))
            loss = _loss(head(cnn(x)), y, weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        cnn.eval()
        head.eval()
        row = {"epoch": epoch + 1, "train_loss": total / len(train), "seconds": time.perf_counter() - t0}
        if val is not None and len(val):
            row["val_loss"] = _evaluate(cnn, head, val, std, spec, 256)
        history.append(row)
        log("distill epoch {epoch}: train {train_loss:.4f}".format(**row)
            + (f" val {row['val_loss']:.4f}" if "val_loss" in row else "") + f" ({row['seconds']:.0f} s)")
    return cnn.eval(), history
