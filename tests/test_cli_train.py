"""`vidseek train` -> `vidseek predict` -> `vidseek eval` on feature files and annotation files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from toy_features import make_toy


def write_dataset(root, n_videos, seed):
    samples, store = make_toy(n_videos, seed)
    feats = root / "features"
    feats.mkdir(exist_ok=True)
    for vid, arr in store.items():
        np.save(feats / f"{vid}.npy", arr)
    path = root / f"queries{seed}.jsonl"
    with open(path, "w") as fh:
        for s in samples:
            fh.write(json.dumps({"qid": s.qid, "query": s.query, "vid": s.vid, "duration": s.duration,
                                 "relevant_windows": [list(w) for w in s.windows]}) + "\n")
    return path, feats


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    train, feats = write_dataset(root, 40, 0)
    test, _ = write_dataset(root, 10, 1)
    return root, train, test, feats


@pytest.mark.parametrize("model,words", [("excl-clf-2b", "learned"), ("plpnet", "transformer:all-MiniLM-L6-v2")])
def test_train_predict_eval_round_trip(data, model, words, monkeypatch, invoke):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root, train, test, feats = data
    run = root / f"run-{model}"
    r = invoke("train", "--model", model, "--dataset", "jsonl", "--annotations", train, "--features", feats,
               "--out", run, "--words", words, "--epochs", 2, "--max-len", 32, "--batch-size", 16,
               "--set", "dropout=0.1", *(["--set", "dim=32", "--phrases", 2, "--clusters", 5] if model == "plpnet" else []))
    assert r.exit_code == 0, r.output
    assert "best epoch" in r.output
    assert (run / "model.safetensors").is_file() and (run / "config.json").is_file()
    pred = root / f"pred-{model}.jsonl"
    r = invoke("predict", run, "--annotations", test, "--features", feats, "--out", pred,
               *(["--phrases"] if model == "plpnet" else []))
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in pred.read_text().splitlines()]
    assert len(lines) == 20
    for rec in lines:
        assert {"qid", "vid", "pred_relevant_windows"} <= set(rec)
        assert all(0 <= s <= e for s, e, _ in rec["pred_relevant_windows"])
        if model == "plpnet":
            assert len(rec["pred_phrases"]) == 2
            assert all(len(p["word_weights"]) >= 3 for p in rec["pred_phrases"])
    r = invoke("eval", "--gt", test, "--pred", pred, "--json")
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.output)
    assert 0 <= metrics["brief"]["MR-full-mAP"] <= 100


def test_user_errors_are_messages_not_tracebacks(data, tmp_path, invoke):
    root, train, test, feats = data
    # features missing for the annotated videos
    empty = tmp_path / "empty"
    empty.mkdir()
    np.save(empty / "other.npy", np.zeros((5, 16), np.float32))
    r = invoke("train", "--model", "excl-clf-1a", "--dataset", "jsonl", "--annotations", train,
               "--features", empty, "--out", tmp_path / "r", "--words", "learned")
    assert r.exit_code == 1 and "have no features" in r.output and "--skip-missing" in r.output
    assert "Traceback" not in r.output
    # a run folder that is not one
    r = invoke("predict", tmp_path, "--annotations", test, "--features", feats, "--out", tmp_path / "p.jsonl")
    assert r.exit_code == 1 and "not a vidseek run folder" in r.output
    # wrong annotation format
    r = invoke("train", "--model", "excl-clf-1a", "--dataset", "activitynet", "--annotations", train,
               "--features", feats, "--out", tmp_path / "r", "--words", "learned")
    assert r.exit_code == 1 and "Error" in r.output and "Traceback" not in r.output
    # a bad --set
    r = invoke("train", "--model", "plpnet", "--dataset", "jsonl", "--annotations", train, "--features", feats,
               "--out", tmp_path / "r", "--words", "learned", "--set", "nonsense=1")
    assert r.exit_code == 1 and "no setting nonsense" in r.output


def test_options_and_settings_are_checked_before_work(data, tmp_path, invoke):
    root, train, test, feats = data
    base = ["train", "--model", "excl-clf-2b", "--dataset", "jsonl", "--annotations", train, "--features", feats,
            "--out", tmp_path / "r", "--words", "learned"]
    r = invoke(*base, "--set", "objective=reg")
    assert r.exit_code == 1 and "would change the variant of excl-clf-2b" in r.output
    r = invoke(*base, "--set", "dropout=abc")
    assert r.exit_code == 1 and "setting dropout must be a float" in r.output
    r = invoke(*base, "--epochs", 0)
    assert r.exit_code == 2 and "--epochs" in r.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    r = invoke("train", "--model", "excl-clf-2b", "--dataset", "jsonl", "--annotations", empty, "--features", feats,
               "--out", tmp_path / "r", "--words", "learned")
    assert r.exit_code == 1 and "has no usable queries" in r.output
    r = invoke(*base, "--epochs", 1, "--max-len", 16)
    assert r.exit_code == 0, r.output
    r = invoke("predict", tmp_path / "r", "--annotations", test, "--features", feats, "--out", tmp_path / "p.jsonl", "--top-k", 0)
    assert r.exit_code == 2 and "--top-k" in r.output
    r = invoke("predict", tmp_path / "r", "--annotations", test, "--features", feats, "--out", tmp_path / "p.jsonl", "--phrases")
    assert r.exit_code == 2 and "needs a PLPNet run" in r.output
    for name in ("config.json", "model.safetensors"):  # readable by others, like any file the user writes
        assert (tmp_path / "r" / name).stat().st_mode & 0o044
