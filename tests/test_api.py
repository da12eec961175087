"""The Python API (`vidseek.Index`), `--model` resolution and `vidseek search --phrases`.

The bundles here are untrained (random weights with the seeded built-in frame encoder), so these
tests check the machinery and the shape of the results, not accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from blocking import run_blocked

QUERY = "the person opens the door"


def make_bundle(root: Path, name: str, sentences: list[str]) -> Path:
    """An untrained `name` run over the seeded built-in CNN's features, with a retrieval embedding, exported."""
    from vidseek.export.onnx import export_bundle
    from vidseek.trainer.checkpoint import save_run
    from vidseek.trainer.models import build_model
    from vidseek.trainer.words import LearnedWords, save_featurizer

    torch.manual_seed(0)
    words = LearnedWords.build(sentences, dim=12)
    small = {"dim": 32} if name == "plpnet" else {"video_hidden": 8, "query_hidden": 8, "span_hidden": 8, "mlp_hidden": 8}
    model = build_model(name, video_dim=256, word_dim=12, vocab_size=len(words.vocab), retrieval_dim=16, **small)
    run = root / f"run-{name}"
    run.mkdir()
    data = {"length": 40, "feature_dim": 256, "features_meta": {"encoder": "builtin", "rate": 5.0}}
    save_run(run, model, name, save_featurizer(words, run), data, {}, {})
    export_bundle(run, root / f"bundle-{name}")
    return root / f"bundle-{name}"


@pytest.fixture(scope="module")
def world(synth_library, tmp_path_factory):
    """The shared three-video synthetic library and two untrained bundles (PLPNet and ExCL) made here."""
    root = tmp_path_factory.mktemp("api")
    sentences = [json.loads(x)["query"] for x in (synth_library / "train.jsonl").read_text().splitlines()] + [QUERY]
    return {"root": root, "library": synth_library / "videos", "plpnet": make_bundle(root, "plpnet", sentences),
            "excl": make_bundle(root, "excl-clf-2b", sentences)}


def test_index_api_adds_searches_and_describes(world, tmp_path):
    from vidseek import Index, Moment

    index = Index(tmp_path / "idx")
    assert not index.exists() and repr(index) == f"Index({str(tmp_path / 'idx')!r})"
    with pytest.raises(FileNotFoundError, match=r"no index in .*\.add\(VIDEO_DIR\)"):
        index.search(QUERY)
    report = index.add(world["library"], model=world["plpnet"])
    assert len(report.indexed) == 3 and not report.errors
    moments = index.search(QUERY, top_k=3)
    assert 1 <= len(moments) <= 3 and all(isinstance(m, Moment) and m.phrases is None for m in moments)
    assert [m.rank for m in moments] == list(range(1, len(moments) + 1))
    assert all(0 <= m.start <= m.end for m in moments)
    warm = index.searcher
    with_phrases = index.search(QUERY, top_k=3, phrases=True)
    assert index.searcher is warm  # one Searcher for every query
    assert [(m.video, m.start, m.end) for m in with_phrases] == [(m.video, m.start, m.end) for m in moments]
    for m in with_phrases:
        assert len(m.phrases) == 3  # PLPNet's N phrases
        for p in m.phrases:
            assert set(p) == {"text", "start", "end", "weight"} and isinstance(p["text"], str)
            assert 0 <= p["start"] <= p["end"] and 0 <= p["weight"] <= 1
    one = moments[0].video
    assert {m.video for m in index.search(QUERY, video=one)} == {one}
    info = index.info()
    assert info.counts["ok"] == 3 and info.problems == [] and info.dim == 16 and info.rate == 5.0
    assert info.library == str(world["library"].resolve()) and info.model is None and info.duration > 20
    assert [v.path for v in index.videos("ok")] == sorted(p.name for p in world["library"].glob("*.mp4"))
    again = index.add(world["library"], model=world["plpnet"])  # incremental: nothing new
    assert again.indexed == [] and index._searcher is None  # the warm Searcher was dropped
    index.close()


def test_index_api_rebuilds_with_another_model(world, tmp_path):
    """``add(rebuild=True)`` discards an index of one model and indexes the library with another."""
    from vidseek import Index
    from vidseek.engine.bundle import load_bundle
    from vidseek.index import IndexMismatch

    with Index(tmp_path / "idx") as index:
        index.add(world["library"], model=world["plpnet"])
        assert index.search(QUERY, top_k=2, phrases=True)[0].phrases
        with pytest.raises(IndexMismatch, match="--rebuild"):
            index.add(world["library"], model=world["excl"])
        report = index.add(world["library"], model=world["excl"], rebuild=True)
        assert len(report.indexed) == 3 and not report.errors
        info = index.info()
        assert info.fingerprint == load_bundle(world["excl"]).fingerprint and info.counts["ok"] == 3
        assert info.problems == [] and info.bundle == str(world["excl"].resolve())
        moments = index.search(QUERY, top_k=2)
        assert moments and index.searcher.bundle.model_name == "excl-clf-2b"


def test_search_cli_prints_phrases_under_each_row_and_in_json(world, tmp_path, invoke):
    index = tmp_path / "idx"
    r = invoke("index", world["library"], "--index", index, "--model", world["plpnet"], "--no-progress")
    assert r.exit_code == 0, r.output
    r = invoke("search", QUERY, "--index", index, "--top-k", 2, "--phrases")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split() == ["rank", "score", "start", "end", "file"]
    phrase_lines = [x for x in lines if "phrase" in x]
    assert phrase_lines and all(x.startswith(" " * 14) for x in phrase_lines) and "(weight " in phrase_lines[0]
    assert len(phrase_lines) == 3 * (len(lines) - 1 - len(phrase_lines))  # three under each moment
    r = invoke("search", QUERY, "--index", index, "--top-k", 2, "--phrases", "--json")
    assert r.exit_code == 0 and r.output.strip(), r.output
    moments = [json.loads(x) for x in r.output.splitlines()]
    assert moments and all(len(m["phrases"]) == 3 and {"text", "start", "end", "weight"} == set(m["phrases"][0]) for m in moments)
    r = invoke("search", QUERY, "--index", index, "--json")
    assert r.exit_code == 0 and r.output.strip(), r.output
    assert all("phrases" not in json.loads(x) for x in r.output.splitlines())
    r = invoke("search", QUERY, "--index", index, "--phrases", "--min-score", 1.0)  # no match: the best candidate's
    lines = r.output.splitlines()
    assert r.exit_code == 0 and lines[0].startswith("no moment matches"), r.output
    assert len([x for x in lines if x.startswith(" " * 14) and "phrase" in x]) == 3


def test_phrases_of_a_model_without_phrases_name_the_model(world, tmp_path, invoke):
    from vidseek import Index

    index = Index(tmp_path / "idx")
    index.add(world["library"], model=world["excl"])
    with pytest.raises(ValueError, match=r"PLPNet bundle.*excl-clf-2b"):
        index.search(QUERY, phrases=True)
    index.close()
    r = invoke("search", QUERY, "--index", tmp_path / "idx", "--phrases")
    assert r.exit_code == 2 and "excl-clf-2b" in r.output and "Traceback" not in r.output
    assert "--model builtin-plpnet" in r.output  # what to do: a phrase model ships with vidseek


API_WITHOUT_TORCH = """
import json, sys
import vidseek
assert "vidseek.engine" not in sys.modules and "numpy" not in sys.modules, "import vidseek must stay light"
from vidseek import Index, Moment, Searcher
assert Moment.__module__ == Searcher.__module__ == "vidseek.library.searcher"
with Index(sys.argv[1]) as index:
    print(json.dumps([m.to_dict() for m in index.search("the person opens the door", top_k=2, phrases=True)]))
"""


def test_import_is_light_and_the_api_searches_without_torch(world, tmp_path):
    from vidseek import Index

    Index(tmp_path / "idx").add(world["library"], model=world["plpnet"])
    r = run_blocked(API_WITHOUT_TORCH, str(tmp_path / "idx"))
    assert r.returncode == 0, r.stderr
    moments = json.loads(r.stdout.strip().splitlines()[-1])
    assert 1 <= len(moments) <= 2 and all(len(m["phrases"]) == 3 for m in moments)
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        import vidseek

        vidseek.Nothing  # noqa: B018


def test_model_choices_resolve_or_say_what_to_pass(world, tmp_path, monkeypatch):
    import vidseek.builtin
    from vidseek.library.models import ModelChoiceError, resolve_model

    monkeypatch.setitem(vidseek.builtin.BUNDLE_DIRS, "builtin", tmp_path / "no-builtin")
    with pytest.raises(ModelChoiceError, match="built-in bundle is missing"):
        resolve_model("builtin")
    monkeypatch.setitem(vidseek.builtin.BUNDLE_DIRS, "builtin", world["plpnet"])
    assert resolve_model() == resolve_model("builtin") == world["plpnet"]
    assert resolve_model(world["excl"]) == resolve_model(str(world["excl"])) == world["excl"]
    with pytest.raises(ModelChoiceError, match="no such folder.*clip:ID_OR_PATH"):
        resolve_model(str(tmp_path / "missing"))
    for choice in ("clip", "clip:"):
        with pytest.raises(ModelChoiceError, match="needs the CLIP model after the colon"):
            resolve_model(choice)
    clip_like = tmp_path / "clip-folder"
    clip_like.mkdir()
    (clip_like / "config.json").write_text(json.dumps({"model_type": "clip"}))
    with pytest.raises(ModelChoiceError, match=f"pass --model clip:{clip_like}"):
        resolve_model(str(clip_like))
    run = world["root"] / "run-plpnet"
    with pytest.raises(ModelChoiceError, match="training run: export it first"):
        resolve_model(str(run))


def test_index_cli_uses_the_builtin_bundle_by_default(world, tmp_path, monkeypatch, invoke):
    import vidseek.builtin

    monkeypatch.setitem(vidseek.builtin.BUNDLE_DIRS, "builtin", tmp_path / "no-builtin")
    r = invoke("index", world["library"], "--index", tmp_path / "idx", "--no-progress")
    assert r.exit_code == 1 and "built-in bundle is missing" in r.output and "Traceback" not in r.output
    monkeypatch.setitem(vidseek.builtin.BUNDLE_DIRS, "builtin", world["excl"])
    r = invoke("index", world["library"], "--index", tmp_path / "idx", "--no-progress")
    assert r.exit_code == 0 and "indexed 3" in r.output, r.output
    r = invoke("info", "--index", tmp_path / "idx")
    assert "--model builtin" in r.output and "integrity ok" in r.output
    r = invoke("index", world["library"], "--index", tmp_path / "idx", "--model", tmp_path / "nowhere")
    assert r.exit_code == 1 and "no such folder" in r.output
