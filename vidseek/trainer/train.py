"""Training, validation and prediction for ExCL and PLPNet."""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vidseek.vocabulary import vocabulary
from vidseek.engine.decode import decode_phrases, decode_windows
from vidseek.engine.registry import family
from vidseek.evaluation import grounding_metrics
from vidseek.trainer.checkpoint import save_run
from vidseek.trainer.data.dataset import MomentDataset, collate
from vidseek.trainer.models import build_model, config_for
from vidseek.trainer.words import LearnedWords, save_featurizer

# Paper settings per model family: ExCL (Adam 1e-3, batch 32); PLPNet (Adam 4e-4, batch 100).


@dataclass
class TrainConfig:
    epochs: int = 30  # passes over the training data (paper: 30, with early stopping)
    batch_size: int | None = None  # None: the paper's value for the model family
    lr: float | None = None  # Adam learning rate; None: the paper's value
    seed: int = 0
    device: str = "cpu"
    length: int = 128  # L: every video's features are resampled to L steps
    patience: int = 5  # epochs without a better validation R1@0.5 before stopping
    grad_clip: float = 10.0  # max gradient norm
    sampler: str = "auto"  # "random", "cluster" (PLPNet §3.3), or "auto" (cluster for PLPNet)
    clusters: int = 1000  # K of the clustering sampler (paper: 1000 Charades-STA, 3000 ActivityNet)
    max_steps: int | None = None  # stop after this many optimiser steps (quick runs and tests)
    eval_batch_size: int = 64
    crop: bool = False  # native-rate crops of at most `length` steps instead of resampling (library search)

    def resolved(self, model_name: str) -> "TrainConfig":
        d = asdict(self)
        for k, v in family(model_name).defaults:  # lr, batch_size, sampler ("auto")
            if d[k] in (None, "auto"):
                d[k] = v
        return TrainConfig(**d)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_batch(model, featurizer, batch: dict, device: str) -> dict[str, torch.Tensor]:
    """Forward one collated batch; returns the model outputs."""
    words = featurizer.encode([s.query for s in batch["samples"]])
    batch["word_tokens"] = words.tokens
    return model(batch["video"].to(device), batch["video_mask"].to(device), words.words.to(device), words.mask.to(device))


def decode_batch(model_name: str, out: dict[str, torch.Tensor], batch: dict, k: int = 10, phrases: bool = False) -> list[dict]:
    """Outputs of one batch -> prediction records in the standalone_eval format (seconds)."""
    out = {key: v.detach().float().cpu().numpy() for key, v in out.items()}
    lengths = batch["video_mask"].sum(1).tolist()
    preds = []
    for i, s in enumerate(batch["samples"]):
        dur, off = batch["durations"][i], batch["offsets"][i]
        windows = decode_windows(model_name, {key: v[i] for key, v in out.items()}, dur, lengths[i], k)
        windows = [[round(a + off, 4), round(b + off, 4), p] for a, b, p in windows]
        rec = {"qid": s.qid, "query": s.query, "vid": s.vid, "pred_relevant_windows": windows}
        if phrases and family(model_name).phrases:
            rec["pred_phrases"] = decode_phrases(
                out["phrase_spans"][i], out["word_att"][i], out["phrase_weights"][i], batch["word_tokens"][i], dur
            )
            for p in rec["pred_phrases"]:
                p["span"] = [round(p["span"][0] + off, 4), round(p["span"][1] + off, 4)]
        preds.append(rec)
    return preds


@torch.no_grad()
def predict(model, model_name: str, featurizer, dataset: MomentDataset, batch_size: int = 64, device: str = "cpu",
            k: int = 10, phrases: bool = False, progress: bool = False) -> list[dict]:
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    preds = []
    for batch in tqdm(loader, desc="predict", disable=None if progress else True, leave=False):
        preds.extend(decode_batch(model_name, run_batch(model, featurizer, batch, device), batch, k, phrases))
    return preds


def score(preds: list[dict], samples) -> dict[str, float]:
    """The papers' metrics (R1@{0.1,0.3,0.5,0.7}, mIoU) of top-1 predictions."""
    top1 = np.array([p["pred_relevant_windows"][0][:2] for p in preds], np.float64)
    return grounding_metrics(top1, [list(s.windows) for s in samples])


def make_batches(train_set: MomentDataset, cfg: TrainConfig):
    """A batch sampler: shuffled batches, or PLPNet's clustering sampler over sentence embeddings."""
    if cfg.sampler == "random":
        gen = torch.Generator().manual_seed(cfg.seed)
        return torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(train_set, generator=gen), cfg.batch_size, drop_last=False)
    if cfg.sampler == "cluster":
        from vidseek.trainer.data.sampler import ClusterBatchSampler, embed_sentences

        emb = embed_sentences([s.query for s in train_set.samples], device=cfg.device)
        return ClusterBatchSampler(emb, cfg.batch_size, min(cfg.clusters, len(train_set)), seed=cfg.seed)
    raise ValueError(f"sampler must be random, cluster or auto, got {cfg.sampler!r}")


def train(
    model_name: str,
    train_samples,
    val_samples,
    store,
    featurizer,
    out_dir: str | Path,
    cfg: TrainConfig,
    model_overrides: dict | None = None,
    data_info: dict | None = None,
    progress: bool = True,
    skip_missing: bool = False,
    frame_encoder=None,
) -> dict:
    """Train `model_name`, validate every epoch, keep the best checkpoint (by R1@0.5) in out_dir.

    With `frame_encoder` (a ``trainer.encoders.FrameEncoder``) and a ``joint.FrameStore`` of videos,
    the encoder is trained jointly with the grounding model from pixels.
    Returns {"epoch", "metrics", "steps"} of the best epoch.
    """
    cfg = cfg.resolved(model_name)
    set_seed(cfg.seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_set = MomentDataset(train_samples, store, cfg.length, skip_missing, "random" if cfg.crop else None, cfg.seed)
    val_set = MomentDataset(val_samples, store, cfg.length, skip_missing, "center" if cfg.crop else None)
    dims = {"video_dim": int(store.dim), "word_dim": int(featurizer.dim)}
    if isinstance(featurizer, LearnedWords):
        dims["vocab_size"] = len(featurizer.vocab)
    if hasattr(config_for(model_name), "max_len"):  # PLPNet's positional length follows the feature length
        dims["max_len"] = cfg.length
    model = build_model(model_name, **{**dims, **(model_overrides or {})})
    if frame_encoder is not None:
        from vidseek.trainer.joint import FrameGrounder

        model = FrameGrounder(frame_encoder.module.train(), model)
        joint = {"encoder": frame_encoder.choice, "kind": frame_encoder.kind, "dim": frame_encoder.dim,
                 "spec": frame_encoder.spec.to_dict(), "rate": store.rate}
        data_info = {**(data_info or {}), "frame_encoder": joint}
    model = model.to(cfg.device)
    # the words of the training sentences: search tells a user when a query uses words the model never saw
    words_spec = {**save_featurizer(featurizer, out_dir), "vocabulary": vocabulary(s.query for s in train_set.samples)}
    data_info = {**(data_info or {}), "length": cfg.length, "feature_dim": int(store.dim)}
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    batches = make_batches(train_set, cfg)
    loader = torch.utils.data.DataLoader(train_set, batch_sampler=batches, collate_fn=collate)
    best = {"epoch": -1, "metrics": {"R1@0.5": -1.0}, "steps": 0}
    steps, stale = 0, 0
    history = open(out_dir / "history.jsonl", "w")
    for epoch in range(cfg.epochs):
        if hasattr(batches, "set_epoch"):
            batches.set_epoch(epoch)
        model.train()
        losses = []
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=None if progress else True, leave=False)
        for batch in bar:
            out = run_batch(model, featurizer, batch, cfg.device)
            batch = {k: v.to(cfg.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            loss, parts = model.loss(out, batch)
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"loss became {value} at step {steps}: lower --lr or check the features")
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            steps += 1
            losses.append(value)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
            if cfg.max_steps and steps >= cfg.max_steps:
                break
        metrics = score(predict(model, model_name, featurizer, val_set, cfg.eval_batch_size, cfg.device), val_set.samples)
        history.write(json.dumps({"epoch": epoch + 1, "steps": steps, "loss": float(np.mean(losses)), **metrics}) + "\n")
        history.flush()
        if progress:
            tqdm.write(f"epoch {epoch + 1}: loss {np.mean(losses):.4f}  " + "  ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
        if metrics["R1@0.5"] > best["metrics"]["R1@0.5"]:
            best, stale = {"epoch": epoch + 1, "metrics": metrics, "steps": steps}, 0
            save_run(out_dir, model, model_name, words_spec, data_info, asdict(cfg), best)
            if frame_encoder is not None and frame_encoder.kind == "builtin":  # usable as --encoder builtin:CKPT
                from vidseek.trainer.encoders import save_builtin

                save_builtin(model.encoder, out_dir / "frame_encoder.safetensors", frame_encoder.spec)
        else:
            stale += 1
        if stale >= cfg.patience or (cfg.max_steps and steps >= cfg.max_steps):
            break
    history.close()
    return best
