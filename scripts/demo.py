"""The main job, end to end on a fresh machine: `make demo`.

Renders a small synthetic library (`vidseek synth`), trains an ExCL model on its scene-state
features (`vidseek train`), predicts the held-out test split (`vidseek predict`) and scores it
(`vidseek eval`), then shows the headline query "opens the door" next to the ground truth.
Each step is the CLI command a user would type; they run in this process to load torch once.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from vidseek.cli.main import cli

LIB = Path("demo-library")
RUN = LIB / "runs" / "excl-clf-2b"
PRED = LIB / "pred-test.jsonl"


def vidseek(*args) -> None:
    args = [str(a) for a in args]
    print(f"\n$ vidseek {shlex.join(args)}", flush=True)
    try:
        cli.main(args, prog_name="vidseek", standalone_mode=False)
    except Exception as exc:  # a failed step ends the demo with its message
        sys.exit(f"demo step failed: {exc}")


def show_door_queries(limit: int = 6) -> None:
    gt = {r["qid"]: r for r in map(json.loads, (LIB / "test.jsonl").read_text().splitlines())}
    preds = [json.loads(x) for x in PRED.read_text().splitlines()]
    door = [p for p in preds if "door" in p["query"] and "open" in p["query"]][:limit]
    print("\nheld-out queries about opening the door (top-1 prediction vs ground truth):")
    for p in door:
        s, e, score = p["pred_relevant_windows"][0]
        truth = ", ".join(f"{a:.1f}-{b:.1f}s" for a, b in gt[p["qid"]]["relevant_windows"])
        print(f"  {p['vid']}  {p['query']!r:45}  predicted {s:5.1f}-{e:5.1f}s  truth {truth}")


def main() -> None:
    if not (LIB / "manifest.json").is_file() or not (LIB / "state_features").is_dir():
        vidseek("synth", LIB, "--videos", 150, "--seed", 0, "--min-duration", 10, "--max-duration", 30,
                "--workers", 2, "--state-features", 5)
    vidseek("train", "--model", "excl-clf-2b", "--dataset", "jsonl", "--annotations", LIB / "train.jsonl",
            "--val-annotations", LIB / "val.jsonl", "--features", LIB / "state_features", "--out", RUN,
            "--epochs", 30, "--max-len", 64, "--patience", 6, "--seed", 0, "--lr", 2e-3,
            # a CPU-sized ExCL (the paper's 256/128 units train too slowly for a few-minute demo)
            *[x for k in ("video_hidden", "query_hidden", "span_hidden", "mlp_hidden") for x in ("--set", f"{k}=64")],
            "--set", "dropout=0.2")
    vidseek("predict", RUN, "--annotations", LIB / "test.jsonl", "--features", LIB / "state_features", "--out", PRED)
    vidseek("eval", "--gt", LIB / "test.jsonl", "--pred", PRED)
    show_door_queries()


if __name__ == "__main__":
    main()
