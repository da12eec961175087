"""`vidseek train` and `vidseek predict` (need the `train` extra: torch, sentence-transformers)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import click

from vidseek.cli.common import DATASETS, USER_ERRORS, check_device
from vidseek.engine.registry import MODEL_NAMES, family


def _parse_settings(pairs: tuple[str, ...]) -> dict:
    """--set KEY=VALUE model settings, values parsed as JSON when possible (numbers, true/false)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--set")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _read(dataset: str, path: Path, durations: Path | None):
    from vidseek.trainer.data.annotations import read_annotations

    samples = read_annotations(path, dataset, durations)
    if not samples:
        raise ValueError(f"{path} has no usable queries (read as {dataset}); check the file and --dataset")
    report = getattr(samples, "report", None)
    if report is not None:
        click.echo(report.summary(), err=True)
    return samples


def _open_features(path: Path):
    from vidseek.trainer.data.features import open_features

    return open_features(path)


def split_by_video(samples, fraction: float, seed: int):
    """Hold out about `fraction` of the videos (all their queries) for validation, deterministically."""
    def held(vid: str) -> bool:
        return (zlib.crc32(f"{seed}:{vid}".encode()) % 10_000) < fraction * 10_000

    train = [s for s in samples if not held(s.vid)]
    val = [s for s in samples if held(s.vid)]
    if not train or not val:
        raise click.ClickException(
            f"cannot hold out {fraction:.0%} of {len({s.vid for s in samples})} videos for validation; "
            "pass --val-annotations or change --val-fraction"
        )
    return train, val


@click.command("train")
@click.option("--model", "model_name", type=click.Choice(MODEL_NAMES), required=True, help="Model and variant.")
@click.option("--dataset", type=click.Choice(DATASETS), required=True, help="Annotation file format.")
@click.option("--annotations", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True, help="Training annotations.")
@click.option("--features", type=click.Path(exists=True, path_type=Path), help="Folder of .npy/.npz features or an HDF5 file.")
@click.option("--videos", "video_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Instead of --features: a video folder, with --frame-encoder trained jointly from pixels.")
@click.option("--frame-encoder", default="builtin", show_default=True, help="With --videos: builtin[:CKPT] or clip:ID_OR_PATH.")
@click.option("--rate", type=click.FloatRange(min=0.1), default=5.0, show_default=True, help="With --videos: steps per second sampled from each video.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run folder to write.")
@click.option("--val-annotations", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Validation annotations (same format).")
@click.option("--val-fraction", type=click.FloatRange(0.01, 0.9), default=0.1, show_default=True, help="Share of training videos held out when no --val-annotations.")
@click.option("--durations", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Charades-STA durations json (default: charades.json beside the annotations).")
@click.option("--words", default="transformer:all-MiniLM-L6-v2", show_default=True, help="Word features: transformer[:ID_OR_PATH], static:GLOVE.txt or learned.")
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), help="Default: 32 for ExCL, 100 for PLPNet (the papers').")
@click.option("--lr", type=float, help="Adam learning rate. Default: 1e-3 ExCL, 4e-4 PLPNet.")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1 ...")
@click.option("--max-len", "length", type=click.IntRange(min=2), default=128, show_default=True, help="L: features are resampled to L steps.")
@click.option("--phrases", "n_phrases", type=int, help="PLPNet: phrases per query N (paper: 3 Charades-STA, 5 ActivityNet).")
@click.option("--patience", type=click.IntRange(min=1), default=5, show_default=True, help="Early stopping: epochs without a better val R1@0.5.")
@click.option("--sampler", type=click.Choice(["auto", "random", "cluster"]), default="auto", show_default=True, help="auto: PLPNet's clustering sampler for PLPNet, random for ExCL.")
@click.option("--clusters", type=click.IntRange(min=1), default=1000, show_default=True, help="K of the clustering sampler.")
@click.option("--max-steps", type=int, help="Stop after this many optimiser steps.")
@click.option("--skip-missing", is_flag=True, help="Leave out queries whose video has no features (default: error).")
@click.option("--crop", is_flag=True, help="Train on native-rate crops of at most --max-len steps instead of resampling "
              "whole videos: the time scale library search runs the head at.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Model setting, e.g. --set dim=256 --set dropout=0.2.")
def train_cmd(model_name, dataset, annotations, features, video_dir, frame_encoder, rate, out_dir, val_annotations, val_fraction, durations, words,
              epochs, batch_size, lr, seed, device, length, n_phrases, patience, sampler, clusters, max_steps,
              skip_missing, crop, settings):
    """Train a grounding model; keeps the best checkpoint (by validation R1@0.5) in --out."""
    check_device(device, "training")
    from vidseek.trainer.train import TrainConfig, train
    from vidseek.trainer.words import make_featurizer

    if (features is None) == (video_dir is None):
        raise click.UsageError("give either --features (precomputed) or --videos (joint training from pixels)")
    overrides = _parse_settings(settings)
    if n_phrases is not None:
        if not family(model_name).phrases:
            raise click.BadParameter("--phrases applies to plpnet only", param_hint="--phrases")
        overrides["n_phrases"] = n_phrases
    try:
        samples = _read(dataset, annotations, durations)
        if val_annotations:
            train_s, val_s = samples, _read(dataset, val_annotations, durations)
        else:
            train_s, val_s = split_by_video(samples, val_fraction, seed)
        encoder, data_info = None, {"dataset": dataset, "annotations": str(annotations)}
        if video_dir is not None:
            from vidseek.trainer.encoders import build_frame_encoder
            from vidseek.trainer.joint import FrameStore

            encoder = build_frame_encoder(frame_encoder)
            store = FrameStore(video_dir, encoder.spec, encoder.dim, rate)
            store.preload(({s.vid for s in train_s} | {s.vid for s in val_s}) & set(store.vids()))
        else:
            store = _open_features(features)
            meta_path = Path(features) / "features.json"
            if meta_path.is_file():  # made by `vidseek features`: export will add that frame encoder
                meta = json.loads(meta_path.read_text())
                enc = meta.get("encoder") or {}
                data_info["features_meta"] = {"encoder": enc.get("encoder"), "kind": enc.get("kind"),
                                              "weights_sha256": enc.get("weights_sha256"), "rate": meta.get("rate"),
                                              "dim": meta.get("dim"), "spec": meta.get("spec")}
        featurizer = make_featurizer(words, [s.query for s in train_s], device=device)
        cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device, length=length,
                          patience=patience, sampler=sampler, clusters=clusters, max_steps=max_steps, crop=crop)
        click.echo(f"{model_name}: {len(train_s)} training and {len(val_s)} validation queries, "
                   f"features of dim {store.dim}, words {words} (dim {featurizer.dim})", err=True)
        best = train(model_name, train_s, val_s, store, featurizer, out_dir, cfg, overrides,
                     data_info=data_info, skip_missing=skip_missing, frame_encoder=encoder)
    except (*USER_ERRORS, ValueError, KeyError) as exc:  # ValueError, KeyError: files the readers refuse
        raise click.ClickException(str(exc)) from exc
    m = best["metrics"]
    click.echo(f"best epoch {best['epoch']}: " + "  ".join(f"{k} {v:.2f}" for k, v in m.items()) + f"\nsaved to {out_dir}")


@click.command("predict")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--annotations", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--features", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Predictions (standalone_eval jsonl).")
@click.option("--dataset", type=click.Choice(DATASETS), help="Annotation format (default: the run's training format).")
@click.option("--durations", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--top-k", type=click.IntRange(min=1), default=10, show_default=True, help="Windows per query (PLPNet regresses one).")
@click.option("--phrases", "with_phrases", is_flag=True, help="PLPNet: also write each phrase's span and words.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--skip-missing", is_flag=True, help="Leave out queries whose video has no features.")
def predict_cmd(run_dir, annotations, features, out_path, dataset, durations, top_k, with_phrases, batch_size, device, skip_missing):
    """Predict moments for every query of an annotation file, in the format `vidseek eval` scores."""
    check_device(device, "prediction")
    from vidseek.atomic import atomic_write_text
    from vidseek.trainer.checkpoint import load_run
    from vidseek.trainer.data.dataset import MomentDataset
    from vidseek.trainer.train import predict, score

    try:
        run = load_run(run_dir, device)
        if with_phrases and not family(run.name).phrases:
            raise click.BadParameter(f"--phrases needs a PLPNet run; {run_dir} is {run.name}", param_hint="--phrases")
        samples = _read(dataset or run.config["data"].get("dataset", "jsonl"), annotations, durations)
        store = _open_features(features)
        if store.dim != run.config["data"]["feature_dim"]:
            raise ValueError(f"features in {features} have dim {store.dim} but {run_dir} was trained on dim "
                             f"{run.config['data']['feature_dim']}: use the same feature extractor")
        data = MomentDataset(samples, store, run.length, skip_missing)
        preds = predict(run.model, run.name, run.featurizer, data, batch_size, device, top_k, with_phrases, progress=True)
    except (*USER_ERRORS, ValueError, KeyError) as exc:  # ValueError, KeyError: files the readers refuse
        raise click.ClickException(str(exc)) from exc
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_path, "".join(json.dumps(p) + "\n" for p in preds))
    m = score(preds, data.samples)
    click.echo(f"{len(preds)} queries -> {out_path}\n" + "  ".join(f"{k} {v:.2f}" for k, v in m.items()))
