"""The calibration step of the built-in bundle's recipe: fit the bundle's relevance score on one
fresh synthetic world and measure it on another (the figures of docs/model-card.md).

    python scripts/calibrate_builtin.py WORK_DIR [--model builtin|builtin-plpnet] [--install] [--videos 160]

1. ``calib-world/`` (seed 31) and ``eval-world/`` (seed 32): `vidseek synth`, every video in the test
   split; worlds the bundle never saw (it was trained on seeds 11 and 13-15 and tested on 12).
2. ``bundle/``: the bundle with its vocabulary (every word a synthetic sentence can use,
   ``vidseek.synth.language.sentence_words``) in bundle.json ``words.vocabulary``.
3. The calibration world indexed with it; every test sentence, 300 gibberish queries and 300
   queries about things the world does not hold (``unseen_queries``: "a dog", "someone feeds the
   cat") searched, the top 10 moments of each kept with their signals and whether each is true
   (``vidseek.library.calibrate.collect``); the logistic calibration fitted on them, with the lowest
   threshold (in steps of 0.05) that leaves 99 % of the gibberish and 90 % of the unseen searches
   without a match.
4. That calibration written into ``bundle/bundle.json``; the evaluation world indexed with
   it and searched the same way; ``metrics.json``: the figures before (the uncalibrated mean of
   retrieval and span) and after. ``--install`` writes the calibration into the package's bundle.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import click
import numpy as np

from vidseek.atomic import atomic_write_text
from vidseek.builtin import BUNDLE_DIRS
from vidseek.cli.main import cli
from vidseek.engine.calibration import UNCALIBRATED
from vidseek.evaluation import load_jsonl
from vidseek.library.api import Index
from vidseek.library.calibrate import collect, fit_calibration, gibberish, measure, unseen_queries
from vidseek.synth.language import sentence_words

WORLDS = {"calib-world": 31, "eval-world": 32}
NOISE = 300


def vidseek(*args) -> None:
    args = [str(a) for a in args]
    print("$ vidseek " + " ".join(args), flush=True)
    cli.main(args, prog_name="vidseek", standalone_mode=False)


def world(work: Path, name: str, videos: int) -> Path:
    folder = work / name
    if not (folder / "test.jsonl").is_file():
        vidseek("synth", folder, "--videos", videos, "--seed", WORLDS[name], "--min-duration", 10,
                "--max-duration", 30, "--split", "0,0,1", "--no-progress")
    return folder


def observe(folder: Path, bundle: Path, index_dir: Path, seed: int):
    shutil.rmtree(index_dir, ignore_errors=True)  # indexed afresh with the bundle given
    vidseek("index", folder / "videos", "--index", index_dir, "--model", bundle, "--no-progress")
    sentences = [s for s in load_jsonl(folder / "test.jsonl") if isinstance(s.get("library_windows"), dict)]
    vocab = frozenset(json.loads((bundle / "bundle.json").read_text())["words"]["vocabulary"])
    with Index(index_dir) as index:
        obs = collect(index, sentences, gibberish(NOISE, seed), unseen_queries(NOISE, vocab, seed))
    np.savez(index_dir.with_name(f"{index_dir.name}-observations.npz"), **vars(obs))  # to study other thresholds
    return obs


@click.command()
@click.argument("work", type=click.Path(file_okay=False, path_type=Path))
@click.option("--videos", type=int, default=160, show_default=True, help="Videos per world.")
@click.option("--model", type=click.Choice(sorted(BUNDLE_DIRS)), default="builtin", show_default=True,
              help="Which built-in bundle to calibrate.")
@click.option("--install", is_flag=True, help="Write the calibration into the package's built-in bundle.")
def main(work: Path, videos: int, model: str, install: bool) -> None:
    installed = BUNDLE_DIRS[model]
    work.mkdir(parents=True, exist_ok=True)
    calib, evaluation = world(work, "calib-world", videos), world(work, "eval-world", videos)
    bundle = work / "bundle"
    shutil.rmtree(bundle, ignore_errors=True)
    shutil.copytree(installed, bundle)
    meta = json.loads((bundle / "bundle.json").read_text())
    meta["words"]["vocabulary"] = sentence_words()
    meta.pop("calibration", None)
    atomic_write_text(bundle / "bundle.json", json.dumps(meta, indent=2))
    fitted = observe(calib, bundle, work / "calib-index", seed=1)
    calibration = fit_calibration(fitted, fitted_on={
        "world": f"vidseek synth --videos {videos} --seed {WORLDS['calib-world']} (test split)",
        "searches": int(len(set(fitted.query.tolist()))), "moments": int(len(fitted.true)),
        "gibberish_queries": NOISE, "unseen_queries": NOISE})
    meta["calibration"] = calibration.to_meta()
    atomic_write_text(bundle / "bundle.json", json.dumps(meta, indent=2))
    held_out = observe(evaluation, bundle, work / "eval-index", seed=2)
    metrics = {"calibration": calibration.to_meta(), "before": measure(held_out, UNCALIBRATED),
               "after": measure(held_out, calibration),
               "world": f"vidseek synth --videos {videos} --seed {WORLDS['eval-world']} (test split)"}
    meta["calibration"]["fitted_on"]["held_out"] = {"world": metrics["world"], **metrics["after"]}
    atomic_write_text(bundle / "bundle.json", json.dumps(meta, indent=2))
    atomic_write_text(work / "metrics.json", json.dumps(metrics, indent=2))
    print(json.dumps({k: metrics[k] for k in ("before", "after")}, indent=2))
    if install:
        shutil.copy(bundle / "bundle.json", installed / "bundle.json")
        print(f"calibration installed into {installed / 'bundle.json'}")


if __name__ == "__main__":
    sys.exit(main())
