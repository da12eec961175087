"""A score that means something: the built-in bundle's calibrated relevance, the "no moment matches"
answer, --min-score, and the validation of a bundle's calibration."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from vidseek.engine.bundle import BundleError, load_bundle
from vidseek.engine.calibration import UNCALIBRATED, Calibration
from vidseek.library.api import Index
from vidseek.library.calibrate import collect, fit_calibration, gibberish, measure


@pytest.fixture(scope="module")
def world(tmp_path_factory, invoke):
    """Six synthetic videos (a seed the bundle never saw) indexed with the built-in bundle."""
    root = tmp_path_factory.mktemp("calibrated")
    r = invoke("synth", root / "syn", "--videos", 6, "--seed", 4242, "--min-duration", 10, "--max-duration", 16,
               "--split", "0,0,1", "--no-progress")
    assert r.exit_code == 0, r.output
    r = invoke("index", root / "syn" / "videos", "--index", root / "idx", "--no-progress")
    assert r.exit_code == 0, r.output
    return root


def test_the_builtin_bundle_is_calibrated():
    from vidseek.builtin import builtin_bundle

    calibration = Calibration.from_meta(load_bundle(builtin_bundle()).meta)
    assert calibration.calibrated and 0 < calibration.threshold < 1
    held_out = calibration.fitted_on["held_out"]
    assert held_out["gibberish_no_match"] >= 95 and held_out["roc_auc_rank1"] > 0.75


def test_gibberish_gets_no_match_and_true_queries_get_moments(world, invoke):
    with Index(world / "idx") as index:
        for query in gibberish(20, seed=5):
            moments = index.search(query)
            assert not moments and moments.best is not None and moments.best.score < moments.threshold, query
        found = index.search("the person opens the door", top_k=5)
        assert found and all(0 <= m.score <= 1 and m.score >= found.threshold for m in found)
        assert [m.score for m in found] == sorted((m.score for m in found), reverse=True)
        everything = index.search("qwzx blorft", top_k=5, min_score=0)
        assert len(everything) == 5 and everything.best is None
    r = invoke("search", "qwzx blorft", "--index", world / "idx")
    assert r.exit_code == 0 and "no moment matches 'qwzx blorft'" in r.stdout and "--min-score 0" in r.stdout
    r = invoke("search", "qwzx blorft", "--index", world / "idx", "--min-score", 0, "--top-k", 3)
    assert r.exit_code == 0 and r.stdout.count(".mp4") == 3


def test_fit_and_measure_on_a_world(world):
    sentences = [s for s in map(json.loads, (world / "syn" / "test.jsonl").read_text().splitlines())][:30]
    with Index(world / "idx") as index:
        obs = collect(index, sentences, gibberish(10, seed=9), top_k=5)
    assert obs.signals.shape[1] == 4 and obs.true.any() and not obs.true[obs.gibberish].any()
    calibration = fit_calibration(obs)
    figures = measure(obs, calibration)
    assert figures["gibberish"] == 10 and figures["sentences"] == 30
    assert figures["gibberish_no_match"] >= 90 and 0.5 <= figures["roc_auc_rank1"] <= 1
    assert measure(obs, UNCALIBRATED)["gibberish_no_match"] == 0  # no threshold: everything answers


@pytest.mark.parametrize("edit,field", [
    (lambda c: c.update(threshold=1.5), "calibration.threshold"),
    (lambda c: c.update(weights=[1.0, "x", 0.0, 0.0]), "calibration.weights"),
    (lambda c: c.update(bias=float("nan")), "calibration.bias"),
])
def test_a_bad_calibration_refuses_the_bundle(tmp_path, edit, field):
    from vidseek.builtin import builtin_bundle

    copy = tmp_path / "bundle"
    shutil.copytree(builtin_bundle(), copy)
    meta = json.loads((copy / "bundle.json").read_text())
    edit(meta["calibration"])
    (copy / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=field.replace(".", r"\.")):
        load_bundle(copy)


def test_the_calibration_is_part_of_the_fingerprint(tmp_path):
    from vidseek.builtin import builtin_bundle

    copy = tmp_path / "bundle"
    shutil.copytree(builtin_bundle(), copy)
    meta = json.loads((copy / "bundle.json").read_text())
    meta["calibration"]["threshold"] = float(np.clip(meta["calibration"]["threshold"] + 0.1, 0, 1))
    (copy / "bundle.json").write_text(json.dumps(meta))
    assert load_bundle(copy).fingerprint != load_bundle(builtin_bundle()).fingerprint
