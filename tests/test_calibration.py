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
from vidseek.library.calibrate import collect, fit_calibration, gibberish, measure, unseen_queries


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
    from vidseek.builtin import builtin_bundle

    vocab = frozenset(load_bundle(builtin_bundle()).meta["words"]["vocabulary"])
    with Index(world / "idx") as index:
        obs = collect(index, sentences, gibberish(10, seed=9), unseen_queries(10, vocab, seed=9), top_k=5)
    assert obs.signals.shape[1] == 5 and obs.true.any() and not obs.true[obs.gibberish | obs.unseen].any()
    assert (obs.signals[obs.unseen | obs.gibberish, 4] < 1).all()  # known_words: gibberish is unseen too
    assert (obs.signals[~(obs.unseen | obs.gibberish), 4] == 1).all()
    calibration = fit_calibration(obs)
    assert "known_words" in calibration.signals
    figures = measure(obs, calibration)
    assert figures["gibberish"] == figures["unseen"] == 10 and figures["sentences"] == 30
    assert figures["gibberish_no_match"] >= 90 and figures["unseen_no_match"] >= 90
    assert 0.5 <= figures["roc_auc_rank1"] <= 1
    assert measure(obs, UNCALIBRATED)["gibberish_no_match"] == 0  # no threshold: everything answers


@pytest.mark.parametrize("edit,field", [
    (lambda c: c.update(threshold=1.5), "calibration.threshold"),
    (lambda c: c.update(weights=[1.0, "x", 0.0, 0.0, 0.0][:len(c["weights"])]), "calibration.weights"),
    (lambda c: c.update(weights=c["weights"][:-1]), "calibration.weights"),
    (lambda c: c.update(signals=["retrieval", "sparkle"] + c["signals"][2:]), "calibration.signals"),
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


def test_queries_about_things_the_model_never_saw_get_no_match_and_a_note(world, invoke):
    with Index(world / "idx") as index:
        for query in ("a dog", "fire", "flipping a pancake", "someone feeds the cat", "a bird"):
            moments = index.search(query)
            assert not moments and moments.best is not None, query
            assert moments.unseen_words and set(moments.unseen_words) <= {"dog", "fire", "flipping", "pancake",
                                                                          "feeds", "cat", "bird"}
        assert index.search("the person opens the door", top_k=3).unseen_words == []
    r = invoke("search", "a dog", "--index", world / "idx")
    assert r.exit_code == 0 and "no moment matches 'a dog'" in r.stdout
    assert "never saw 'dog' in training" in r.stderr and "--model clip:" in r.stderr


def test_the_vocabulary_holds_every_word_of_the_world_s_sentences(world):
    from vidseek.builtin import builtin_bundle
    from vidseek.vocabulary import query_words
    from vidseek.synth.language import sentence_words

    vocab = set(sentence_words())
    assert set(load_bundle(builtin_bundle()).meta["words"]["vocabulary"]) == vocab
    for record in map(json.loads, (world / "syn" / "test.jsonl").read_text().splitlines()):
        assert set(query_words(record["query"])) <= vocab, record["query"]


def test_misspelt_words_are_corrected_to_the_model_s_vocabulary(world, invoke):
    with Index(world / "idx") as index:
        typed = index.search("person opns the door", top_k=3, min_score=0)
        plain = index.search("person opens the door", top_k=3, min_score=0)
        assert typed.corrections == [("opns", "opens")] and typed.unseen_words == []
        assert index.search("a cat", min_score=0).corrections == []  # never to a short word ("at")
        assert [(m.video, m.start, m.end, m.score) for m in typed] == [(m.video, m.start, m.end, m.score) for m in plain]
        assert plain.corrections == [] and index.search("a dog", min_score=0).corrections == []
        kicks = index.search("someone kicks the ball", min_score=0)  # a real word, one edit from "picks"
        assert kicks.corrections == [] and kicks.unseen_words == ["kicks"]
    r = invoke("search", "turns of the ligth", "--index", world / "idx", "--min-score", 0)
    assert r.exit_code == 0 and "spelling: searched with 'ligth' -> 'light'" in r.stderr, r.output


def test_the_paraphrase_bank_is_scored_next_to_the_templates(world):
    from vidseek.library.wording import report

    bank = [json.loads(x) for x in (world / "syn" / "paraphrase_test.jsonl").read_text().splitlines()]
    templates = {json.loads(x)["query"] for x in (world / "syn" / "test.jsonl").read_text().splitlines()}
    assert {r["kind"] for r in bank} >= {"synonym", "casual", "typo"} and not templates & {r["query"] for r in bank
                                                                                         if r["kind"] != "opposite"}
    with Index(world / "idx") as index:
        figures = report(index, world / "syn")
    assert set(figures["counts"]) >= {"template", "synonym", "casual", "typo"}
    assert figures["counts"]["typo"] == sum(r["kind"] == "typo" for r in bank)
    for kind in ("template", "synonym", "casual", "typo", "paraphrase"):
        assert 0 <= figures[kind] <= 100
    assert figures["template"] >= 40  # the built-in bundle on its own world
