"""The recipe of the built-in bundles (``vidseek/builtin/bundle``: ExCL, the default;
``vidseek/builtin/plpnet``: PLPNet, ``--model builtin-plpnet``), end to end, on a CPU.

    python scripts/train_builtin.py WORK_DIR [--install]                       # ExCL, CNN distilled here
    python scripts/train_builtin.py WORK_DIR --model plpnet --cnn vidseek/builtin/bundle [--install]

Stages, each skipped when its output is already in WORK_DIR (delete it to redo a stage):

1. ``train-world/``: `vidseek synth` 500 videos (seed 11) with scene-state features at 5 steps/s;
   ``distill-world/``, ``distill-world-2/`` and ``distill-world-3/``: 1,500 short videos each
   (seeds 13, 14 and 15), more rooms, people and props for steps 2 and 4;
   ``test-world/``: 240 fresh videos (seed 12), all in the test split, for the model card.
2. ``cnn.safetensors``: the built-in CNN (grid pooling) taught to read per-frame labels of the
   train videos of the four worlds (actions under way, door, light, shirt colours and props in view;
   ``vidseek.synth.features.frame_labels``, ``vidseek.trainer.distill``), validated on val videos.
   With the train world alone (347 train rooms) the CNN learnt its rooms by heart: train loss 0.96 ->
   0.46 in 5 epochs while the validation loss stayed at 0.88-0.90.
   With ``--cnn`` (a ``.safetensors`` checkpoint, or a bundle folder whose ``frame_encoder.onnx`` is
   read back into the CNN, bit for bit), that CNN is used instead: no distillation, and the worlds
   need no scene-state features. The PLPNet bundle uses the ExCL bundle's CNN this way, so the two
   differ only in the grounding model.
3. ``cnn_features/``: `vidseek features` of the four worlds with that CNN.
4. ``run/``: `vidseek train` (``--model``: ExCL clf 2b, or PLPNet with 3 phrases) with
   all-MiniLM-L6-v2 words and a retrieval embedding on native-rate crops, on the compositional
   training split of the four worlds (so the held-out word pairs stay unseen; every world holds out
   the same pairs), validated on the train world's.
5. ``bundle/``: `vidseek export` (parity-checked) and the text encoder quantized to int8 (checked
   against fp32); ``--install`` copies it into the package.
6. ``eval/``: the test world indexed with the bundle and searched library-wide and per video, for
   the standard and the compositional test queries (library-wide: the right video, VCMR-any,
   VCMR-true and the right-video ceiling), and per video for the verb-object phrases of the test
   queries (the paper's phrase-level metric); ``eval/metrics.json`` feeds docs/model-card.md.

Every step is the CLI command a user would type (run in this process, to load torch once).
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import click

from vidseek.cli.main import cli

RATE = 5.0
# name: videos, seed, shortest and longest video (s), train,val,test split (None: synth's default)
SYNTH = {
    "train-world": (500, 11, 10, 30, None),
    "distill-world": (1500, 13, 8, 12, "1,0,0"),  # short videos: many rooms, people and props per hour
    "distill-world-2": (1500, 14, 8, 12, "1,0,0"),
    "distill-world-3": (1500, 15, 8, 12, "1,0,0"),
    "test-world": (240, 12, 10, 30, "0,0,1"),  # fresh rooms, for the model card
}
WORLDS = ("train-world", "distill-world", "distill-world-2", "distill-world-3")  # what the CNN and the grounding model learn from
HIDDEN = 128
# --model: the `vidseek train` settings of each built-in bundle, and the package folder it installs into
MODELS = {  # name -> (the built-in bundle it installs as, epochs, `vidseek train` settings)
    "excl-clf-2b": ("builtin", 6, [*(x for k in ("video_hidden", "query_hidden", "span_hidden", "mlp_hidden")
                                    for x in ("--set", f"{k}={HIDDEN}")), "--lr", 2e-3, "--set", "dropout=0.2"]),
    # the paper's learning rate (4e-4), batch (100) and cluster sampler; a LayerNorm on the phrase guide and
    # the phrase loss weighed 10x: with neither, or the norm alone, two of the three phrases attended evenly
    # to every word (docs/model-card.md); val R1@0.5 peaked at epoch 2 in every run
    "plpnet": ("builtin-plpnet", 2, ["--phrases", 3, "--set", f"dim={2 * HIDDEN}", "--set", "dropout=0.2",
                                     "--set", "guide_norm=true", "--set", "w_phrase=10"]),
}


def vidseek(*args) -> None:
    args = [str(a) for a in args]
    print(f"\n$ vidseek {shlex.join(args)}", flush=True)
    try:
        cli.main(args, prog_name="vidseek", standalone_mode=False)
    except Exception as exc:
        sys.exit(f"step failed: {exc}")


def worlds(work: Path, distilling: bool) -> None:
    for name, (videos, seed, shortest, longest, split) in SYNTH.items():
        if not (work / name / "manifest.json").is_file():
            vidseek("synth", work / name, "--videos", videos, "--seed", seed, "--min-duration", shortest,
                    "--max-duration", longest, "--workers", 2, *(["--split", split] if split else []),
                    *(["--state-features", RATE] if distilling and name in WORLDS else []), "--no-progress")


def distill(work: Path, epochs: int, step: int) -> None:
    import numpy as np

    from vidseek.synth.features import frame_labels
    from vidseek.trainer.distill import DistillConfig, FrameTargets, distill_cnn, load_frame_targets
    from vidseek.trainer.encoders import CNNConfig, save_builtin

    out = work / "cnn.safetensors"
    if out.is_file():
        return
    parts, rooms = [], 0
    for name in WORLDS:
        world = work / name
        manifest = json.loads((world / "manifest.json").read_text())
        split = {s: [v["vid"] for v in manifest["videos"] if v["split"] == s] for s in ("train", "val")}
        videos = {v["vid"]: v for v in manifest["videos"]}

        def labels(vid: str, world=world, videos=videos) -> np.ndarray:
            return frame_labels(videos[vid], np.load(world / "state_features" / f"{vid}.npy"), RATE)

        part = load_frame_targets(world / "videos", labels, split["train"], RATE)
        keep = slice(None, None, step)  # neighbouring steps look alike: every `step`-th frame is enough
        parts.append((part.frames[keep], part.targets[keep]))
        rooms += len(split["train"])
        if name == "train-world":
            val = load_frame_targets(world / "videos", labels, split["val"][:40], RATE)
    train = FrameTargets(np.concatenate([f for f, _ in parts]), np.concatenate([t for _, t in parts]), [])
    del parts
    print(f"distilling the built-in CNN on {len(train)} frames ({rooms} videos), validating on {len(val)}", flush=True)
    cnn, history = distill_cnn(train, val, CNNConfig(pool="grid"), DistillConfig(epochs=epochs, lr=1e-3, weight_decay=0.05))
    save_builtin(cnn, out)
    (work / "distill-history.json").write_text(json.dumps(history, indent=1))


def features(work: Path, cnn: str) -> None:
    out = work / "cnn_features"
    for name in WORLDS:  # one folder: the extractor keeps what is there and adds the other world's videos
        manifest = json.loads((work / name / "manifest.json").read_text())
        if (out / "features.json").is_file() and all((out / f"{v['vid']}.npy").is_file() for v in manifest["videos"]):
            continue
        vidseek("features", work / name / "videos", "--encoder", f"builtin:{cnn}",
                "--out", out, "--rate", RATE, "--no-progress")


def train(work: Path, model: str, epochs: int | None) -> None:
    run = work / "run"
    if (run / "model.safetensors").is_file():
        return
    annotations = work / "comp_train.jsonl"  # every training world's compositional training queries
    annotations.write_text("".join((work / name / "comp_train.jsonl").read_text() for name in WORLDS))
    vidseek("train", "--model", model, "--dataset", "jsonl", "--annotations", annotations,
            "--val-annotations", work / "train-world" / "comp_val.jsonl", "--features", work / "cnn_features", "--out", run,
            "--epochs", epochs or MODELS[model][1], "--max-len", 64, "--crop", "--patience", 5, "--seed", 0, *MODELS[model][2],
            "--set", "retrieval_dim=128")


def export(work: Path, model: str, install: bool) -> None:
    from vidseek.builtin import BUNDLE_DIRS

    target = BUNDLE_DIRS[MODELS[model][0]]
    bundle = work / "bundle"
    if not (bundle / "bundle.json").is_file():
        vidseek("export", work / "run", "--out", bundle, "--text-precision", "int8", "--domain", "synthetic")
    if install:
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(bundle, target)
        print(f"installed {bundle} -> {target}")


def evaluate(work: Path) -> None:
    from vidseek.evaluation import evaluate_files, load_jsonl, vcmr_ceiling, vcmr_metrics

    world, out = work / "test-world", work / "eval"
    index = out / "index"
    out.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    vidseek("index", world / "videos", "--index", index, "--model", work / "bundle", "--no-progress")
    metrics: dict = {"index_seconds": round(time.perf_counter() - t0, 1)}
    for split in ("test", "comp_test"):
        for mode in ("library", "per-video"):
            pred = out / f"pred-{split}-{mode}.jsonl"
            vidseek("search", "--index", index, "--queries", world / f"{split}.jsonl", "--out", pred,
                    *(["--per-video"] if mode == "per-video" else []))
            gt = world / f"{split}.jsonl"
            if mode == "library":
                gt_rows, pred_rows = load_jsonl(gt), load_jsonl(pred)
                metrics[f"{split}/{mode}"] = {**vcmr_metrics(gt_rows, pred_rows),
                                              **vcmr_metrics(gt_rows, pred_rows, same_sentence=True),
                                              **vcmr_metrics(gt_rows, pred_rows, library=True), **vcmr_ceiling(gt_rows)}
            else:
                report = evaluate_files(gt, pred)
                metrics[f"{split}/{mode}"] = {**report["grounding"], "num_queries": len(load_jsonl(gt))}
    metrics["test/per-video by action"] = per_action(world, out / "pred-test-per-video.jsonl")
    phrases = world / "phrase_test.jsonl"  # PLPNet's phrase-level metric: the verb-object phrases, per video
    if not phrases.is_file():  # a world rendered before synth wrote it
        from vidseek.synth.phrases import phrase_queries

        manifest = json.loads((world / "manifest.json").read_text())
        rows = phrase_queries(manifest["videos"], load_jsonl(world / "test.jsonl"))
        phrases.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pred = out / "pred-phrase_test-per-video.jsonl"
    vidseek("search", "--index", index, "--queries", phrases, "--out", pred, "--per-video")
    metrics["phrase_test/per-video"] = {**evaluate_files(phrases, pred)["grounding"],
                                        "num_queries": len(load_jsonl(phrases))}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    print(json.dumps(metrics, indent=1))


def per_action(world: Path, predictions: Path) -> dict:
    """Single-video R1@0.5 of the world's test sentences by the action they name: {verb: [queries, R1@0.5]}."""
    from vidseek.evaluation import load_jsonl
    from vidseek.spans import temporal_iou_paired

    import numpy as np

    videos = {v["vid"]: v for v in json.loads((world / "manifest.json").read_text())["videos"]}
    truth = {r["qid"]: r for r in load_jsonl(world / "test.jsonl")}
    hits: dict[str, list[bool]] = {}
    for p in load_jsonl(predictions):
        g = truth[p["qid"]]
        first = tuple(g["relevant_windows"][0])
        verb = next(a["verb"] for a in videos[g["vid"]]["actions"] if (a["start"], a["end"]) == first)
        top = p["pred_relevant_windows"][0][:2]
        iou = temporal_iou_paired(np.array([top] * len(g["relevant_windows"]), float),
                                  np.array(g["relevant_windows"], float)).max()
        hits.setdefault(verb, []).append(bool(iou >= 0.5))
    return {verb: [len(h), round(100 * sum(h) / len(h), 1)] for verb, h in sorted(hits.items())}


@click.command()
@click.argument("work", type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", type=click.Choice(sorted(MODELS)), default="excl-clf-2b", show_default=True,
              help="The grounding model: excl-clf-2b installs as the default built-in bundle, plpnet as builtin-plpnet.")
@click.option("--cnn", type=click.Path(exists=True, path_type=Path), default=None,
              help="Use this built-in CNN (a .safetensors checkpoint or a bundle folder) instead of distilling one.")
@click.option("--distill-epochs", default=12, show_default=True)
@click.option("--distill-step", default=2, show_default=True, help="Distill on every N-th step of each video.")
@click.option("--epochs", type=int, default=None,
              help="Grounding training epochs (default: 6 for ExCL, 2 for PLPNet; the best on val is kept; the "
                   "learning rate is constant, so a longer run repeats these first).")
@click.option("--install", is_flag=True, help="Copy the bundle into the package (vidseek/builtin/).")
@click.option("--skip-eval", is_flag=True)
def main(work: Path, model: str, cnn: Path | None, distill_epochs: int, distill_step: int, epochs: int | None, install: bool,
         skip_eval: bool) -> None:
    work.mkdir(parents=True, exist_ok=True)
    worlds(work, distilling=cnn is None)
    if cnn is None:
        distill(work, distill_epochs, distill_step)
    features(work, str((cnn or work / "cnn.safetensors").resolve()))
    train(work, model, epochs)
    export(work, model, install)
    if not skip_eval:
        evaluate(work)


if __name__ == "__main__":
    main()
