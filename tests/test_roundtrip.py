"""`vidseek predict` then `vidseek eval` on the same annotation file just works: qids keep their type
and value, and eval reads every format predict reads (--dataset)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from toy_features import make_toy


@pytest.fixture(scope="module")
def world(tmp_path_factory, invoke):
    """A run trained one epoch on toy features, and a test split written as JSONL with integer qids
    and as a Charades-STA file (with its charades.json)."""
    root = tmp_path_factory.mktemp("roundtrip")
    features = root / "features"
    features.mkdir()
    durations = {}
    for seed, n in ((0, 24), (1, 6)):
        samples, store = make_toy(n, seed)
        for vid, arr in store.items():
            np.save(features / f"{vid}.npy", arr)
        durations.update({s.vid: {"duration": s.duration} for s in samples})
        with open(root / f"q{seed}.jsonl", "w") as fh:
            for i, s in enumerate(samples):
                fh.write(json.dumps({"qid": 100 + i, "query": s.query, "vid": s.vid, "duration": s.duration,
                                     "relevant_windows": [list(w) for w in s.windows]}) + "\n")
        with open(root / f"c{seed}.txt", "w") as fh:
            fh.writelines(f"{s.vid} {s.windows[0][0]:.2f} {s.windows[0][1]:.2f}##{s.query}\n" for s in samples)
    (root / "charades.json").write_text(json.dumps(durations))
    r = invoke("train", "--model", "excl-clf-1a", "--dataset", "jsonl", "--annotations", root / "q0.jsonl",
               "--features", features, "--out", root / "run", "--words", "learned", "--epochs", 1, "--max-len", 32)
    assert r.exit_code == 0, r.output
    return root


def test_integer_qids_stay_integers(world, invoke):
    r = invoke("predict", world / "run", "--annotations", world / "q1.jsonl", "--features", world / "features",
               "--out", world / "p1.jsonl")
    assert r.exit_code == 0, r.output
    qids = [json.loads(line)["qid"] for line in (world / "p1.jsonl").read_text().splitlines()]
    assert qids == list(range(100, 100 + len(qids)))
    r = invoke("eval", "--gt", world / "q1.jsonl", "--pred", world / "p1.jsonl", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["num_queries"]["full"] == len(qids)


def test_eval_reads_the_dataset_file_predict_read(world, invoke):
    r = invoke("predict", world / "run", "--dataset", "charades-sta", "--annotations", world / "c1.txt",
               "--features", world / "features", "--out", world / "pc.jsonl")
    assert r.exit_code == 0, r.output
    r = invoke("eval", "--gt", world / "c1.txt", "--dataset", "charades-sta", "--pred", world / "pc.jsonl", "--json")
    assert r.exit_code == 0, r.output
    r_jsonl = invoke("predict", world / "run", "--annotations", world / "q1.jsonl", "--features", world / "features",
                     "--out", world / "pj.jsonl")
    assert r_jsonl.exit_code == 0, r_jsonl.output
    jsonl = invoke("eval", "--gt", world / "q1.jsonl", "--pred", world / "pj.jsonl", "--json")
    same = json.loads(jsonl.stdout)["brief"]["MR-full-R1@0.5"]  # the same queries, windows and model
    assert json.loads(r.stdout)["brief"]["MR-full-R1@0.5"] == pytest.approx(same, abs=0.01)
    r = invoke("eval", "--gt", world / "c1.txt", "--pred", world / "pc.jsonl")
    assert r.exit_code == 1 and "needs --dataset" in r.output and "Traceback" not in r.output
