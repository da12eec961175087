"""Index a video folder and search it: `vidseek index`, `vidseek search`, `vidseek info` (mechanics).

The bundle here is trained for a handful of steps, so these tests check the machinery (files,
incremental updates, errors, torch-free search), not accuracy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from blocking import run_blocked

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT.parent / "shared" / "assets" / "videos"


@pytest.fixture(scope="module")
def world(excl_world, tmp_path_factory):
    """The shared tiny ExCL world and a copy of its videos to index."""
    library = tmp_path_factory.mktemp("library") / "lib"
    shutil.copytree(excl_world / "syn" / "videos", library)
    return excl_world, library


def test_index_search_info(world, tmp_path, invoke):
    root, library = world
    index = tmp_path / "idx"
    r = invoke("index", library, "--index", index, "--model", root / "bundle", "--no-progress")
    assert r.exit_code == 0, r.output
    assert "6 new" in r.output and "indexed 6" in r.output and "errors 0" in r.output
    r = invoke("search", "the person opens the door", "--index", index, "--top-k", 3, "--json")
    assert r.exit_code == 0, r.output
    moments = [json.loads(x) for x in r.output.splitlines()]
    assert 1 <= len(moments) <= 3 and [m["rank"] for m in moments] == list(range(1, len(moments) + 1))
    assert all(0 <= m["start"] <= m["end"] and m["video"].endswith(".mp4") for m in moments)
    assert [m["score"] for m in moments] == sorted((m["score"] for m in moments), reverse=True)
    one = moments[0]["video"]
    r = invoke("search", "the person opens the door", "--index", index, "--video", one, "--json")
    assert r.exit_code == 0 and {json.loads(x)["video"] for x in r.output.splitlines()} == {one}
    r = invoke("info", "--index", index)
    assert r.exit_code == 0 and "6 ok" in r.output and "integrity ok" in r.output
    r = invoke("search", "   ", "--index", index)
    assert r.exit_code == 2 and "is empty" in r.output


def test_states_stored_in_fewer_bytes_give_the_same_moments(world, tmp_path, invoke):
    from vidseek.index.cache import FeatureCache

    root, library = world
    found, sizes = {}, {}
    for states in ("float16", "int8", "int4"):
        index = tmp_path / states
        r = invoke("index", library, "--index", index, "--model", root / "bundle", "--states", states, "--no-progress")
        assert r.exit_code == 0 and "indexed 6" in r.output, r.output
        r = invoke("search", "the person opens the door", "--index", index, "--top-k", 3, "--json", "--min-score", 0)
        found[states] = [json.loads(x) for x in r.output.splitlines()]
        sizes[states] = sum(FeatureCache(index).path(v).stat().st_size for v in FeatureCache(index).video_ids())
        r = invoke("info", "--index", index)
        assert f"states {states}" in r.output and "integrity ok" in r.output, r.output
    assert sizes["int4"] < sizes["int8"] < sizes["float16"]  # (the tiny world's 8-d states: the scales weigh)
    for states in ("int8", "int4"):  # the same videos and nearly the same spans
        assert [m["video"] for m in found[states]] == [m["video"] for m in found["float16"]]
        for a, b in zip(found[states], found["float16"]):
            assert abs(a["start"] - b["start"]) <= 1.0 and abs(a["end"] - b["end"]) <= 1.0
    r = invoke("index", library, "--index", tmp_path / "int8", "--model", root / "bundle", "--states", "int4")
    assert r.exit_code == 1 and "states='int8'" in r.output and "--rebuild" in r.output, r.output
    r = invoke("index", library, "--index", tmp_path / "int8", "--model", root / "bundle", "--no-progress")
    assert r.exit_code == 0 and "indexed 0" in r.output  # an index keeps its own
    r = invoke("index", library, "--index", tmp_path / "int8", "--model", root / "bundle", "--states", "int4",
               "--rebuild", "--no-progress")
    assert r.exit_code == 0 and "indexed 6" in r.output, r.output


def test_incremental_reindex_and_bad_files(world, tmp_path, invoke):
    root, library = world
    lib = tmp_path / "lib"
    shutil.copytree(library, lib)
    index = tmp_path / "idx"
    assert invoke("index", lib, "--index", index, "--model", root / "bundle", "--no-progress").exit_code == 0
    videos = sorted(lib.glob("*.mp4"))
    shutil.copy(videos[0], lib / "added.mp4")  # new
    shutil.copy(videos[2], videos[1])  # changed content
    videos[3].unlink()  # deleted
    (lib / "notes.mp4").write_text("not a video")  # corrupt
    r = invoke("index", lib, "--index", index, "--model", root / "bundle", "--no-progress")
    assert r.exit_code == 0, r.output
    assert "2 new, 1 changed, 4 unchanged, 1 deleted" in r.output and "indexed 2" in r.output  # no re-encoding
    assert "skipped notes.mp4" in r.output and "errors 1" in r.output
    r = invoke("info", "--index", index)
    assert "6 ok" in r.output and "1 error" in r.output and "notes.mp4" in r.output and "integrity ok" in r.output
    r = invoke("index", lib, "--index", index, "--model", root / "bundle", "--no-progress")
    assert "0 new, 0 changed" in r.output and "indexed 0" in r.output


def test_index_built_with_another_bundle_is_refused_then_rebuilt(world, tmp_path, invoke):
    """An index of bundle A refuses bundle B, naming both fingerprints and --rebuild; `--rebuild
    --model B` indexes the library again with B, after which search works and B adds incrementally."""
    root, library = world
    other = tmp_path / "other"
    shutil.copytree(root / "bundle", other)
    meta = json.loads((other / "bundle.json").read_text())
    (other / "tokenizer.json").write_text((other / "tokenizer.json").read_text().replace("<unk>", "<unk>", 1) + " ")
    import hashlib

    meta["files"]["tokenizer.json"] = hashlib.sha256((other / "tokenizer.json").read_bytes()).hexdigest()
    (other / "bundle.json").write_text(json.dumps(meta))
    index = tmp_path / "idx"
    assert invoke("index", library, "--index", index, "--model", root / "bundle", "--no-progress").exit_code == 0
    r = invoke("index", library, "--index", index, "--model", other, "--no-progress")
    assert r.exit_code == 1 and "--rebuild" in r.output, r.output
    from vidseek.engine.bundle import load_bundle

    first, second = load_bundle(root / "bundle").fingerprint, load_bundle(other).fingerprint
    assert first in r.output and second in r.output, r.output
    r = invoke("index", library, "--index", index, "--model", other, "--rebuild", "--no-progress")
    assert r.exit_code == 0 and "6 new" in r.output and "indexed 6" in r.output and "errors 0" in r.output, r.output
    r = invoke("info", "--index", index)
    assert r.exit_code == 0 and f"fingerprint {second}" in r.output and "6 ok" in r.output, r.output
    assert "integrity ok" in r.output and str(other) in r.output, r.output
    r = invoke("search", "the person opens the door", "--index", index, "--top-k", 3, "--json")
    assert r.exit_code == 0 and 1 <= len(r.output.splitlines()) <= 3, r.output
    r = invoke("index", library, "--index", index, "--model", other, "--no-progress")
    assert r.exit_code == 0 and "0 new, 0 changed, 6 unchanged" in r.output and "indexed 0" in r.output, r.output
    r = invoke("index", library, "--index", index, "--model", root / "bundle", "--no-progress")
    assert r.exit_code == 1 and first in r.output and second in r.output, r.output  # now A is the other one


def test_bundle_without_retrieval_cannot_index(world, tmp_path, invoke):
    root, library = world
    syn = tmp_path / "s"
    r = invoke("export", root / "run", "--out", tmp_path / "b", "--no-check")
    meta = json.loads((tmp_path / "b" / "bundle.json").read_text())
    meta["retrieval_dim"] = 0
    (tmp_path / "b" / "bundle.json").write_text(json.dumps(meta))
    r = invoke("index", library, "--index", syn, "--model", tmp_path / "b", "--no-progress")
    assert r.exit_code == 1 and "no retrieval embedding" in r.output


SEARCH_WITHOUT_TORCH = """
import sys
from vidseek.cli.main import cli
cli.main(["search", "someone waves", "--index", sys.argv[1], "--json", "--top-k", "2"])
"""


def test_search_runs_without_torch_or_the_trainer(world, tmp_path, invoke):
    root, library = world
    index = tmp_path / "idx"
    assert invoke("index", library, "--index", index, "--model", root / "bundle", "--no-progress").exit_code == 0
    r = run_blocked(SEARCH_WITHOUT_TORCH, str(index))
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) == 2


@pytest.mark.skipif(not ASSETS.is_dir(), reason="needs ../shared/assets/videos (the real test clips)")
def test_real_clips_index_without_errors(world, tmp_path, invoke):
    root, _ = world
    index = tmp_path / "idx"
    r = invoke("index", ASSETS, "--index", index, "--model", root / "bundle", "--no-progress")
    assert r.exit_code == 0, r.output
    n = len([p for p in ASSETS.iterdir() if p.suffix in (".mp4", ".mkv", ".webm")])
    assert f"indexed {n}" in r.output and "errors 0" in r.output


def test_batch_search_and_vcmr_evaluation(world, tmp_path, invoke):
    root, library = world
    index = tmp_path / "idx"
    assert invoke("index", library, "--index", index, "--model", root / "bundle", "--no-progress").exit_code == 0
    queries = root / "syn" / "train.jsonl"
    r = invoke("search", "--queries", queries, "--out", tmp_path / "lib.jsonl", "--index", index)
    assert r.exit_code == 0, r.output
    preds = [json.loads(x) for x in (tmp_path / "lib.jsonl").read_text().splitlines()]
    assert preds and all(len(p["pred_moments"]) <= 10 and len(p["pred_moments"][0]) == 4 for p in preds)
    r = invoke("eval", "--gt", queries, "--pred", tmp_path / "lib.jsonl", "--json")
    assert r.exit_code == 0, r.output
    keys = {f"VCMR{kind}-R{k}@{t}" for kind in ("", "-any") for k in (1, 5, 10) for t in (0.5, 0.7)}
    assert set(json.loads(r.output)) == keys  # the right video, and any video annotated with the same sentence
    lines = [json.loads(x) for x in queries.read_text().splitlines()]  # as synth's test sentences carry it:
    lib_gt = tmp_path / "lib-gt.jsonl"  # every video where the sentence is true (here only its own)
    lib_gt.write_text("".join(json.dumps({**g, "library_windows": {g["vid"]: g["relevant_windows"]}}) + "\n" for g in lines))
    r = invoke("eval", "--gt", lib_gt, "--pred", tmp_path / "lib.jsonl", "--json")
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)
    assert set(m) == keys | {f"VCMR-true-R{k}@{t}" for k in (1, 5, 10) for t in (0.5, 0.7)} | {
        "VCMR-ceiling-R1", "VCMR-ceiling-R5", "VCMR-ceiling-R10"}
    assert all(m[f"VCMR-true-R{k}@{t}"] == m[f"VCMR-R{k}@{t}"] for k in (1, 5, 10) for t in (0.5, 0.7))
    assert m["VCMR-ceiling-R1"] == 100.0
    r = invoke("search", "--queries", queries, "--out", tmp_path / "pv.jsonl", "--index", index, "--per-video")
    assert r.exit_code == 0, r.output
    r = invoke("eval", "--gt", queries, "--pred", tmp_path / "pv.jsonl", "--json")
    assert r.exit_code == 0 and "MR-full-mAP" in json.loads(r.output)["brief"]
    r = invoke("search", "--index", index)
    assert r.exit_code == 2 and "give a QUERY" in r.output


def test_vcmr_counts_the_right_video_only():
    from vidseek.evaluation import vcmr_metrics

    gt = [{"qid": "q1", "vid": "a", "relevant_windows": [[10, 20]]}, {"qid": "q2", "vid": "b", "relevant_windows": [[0, 4]]}]
    preds = [{"qid": "q1", "pred_moments": [["a", 11, 20, 0.9]]},  # IoU 0.9, right video
             {"qid": "q2", "pred_moments": [["a", 0, 4, 0.9]] + [["c", 0, 1, 0.1]] * 8 + [["b", 0, 3, 0.05]]}]  # rank 10, IoU 0.75
    m = vcmr_metrics(gt, preds)
    assert m == {"VCMR-R1@0.5": 50.0, "VCMR-R1@0.7": 50.0, "VCMR-R5@0.5": 50.0, "VCMR-R5@0.7": 50.0,
                 "VCMR-R10@0.5": 100.0, "VCMR-R10@0.7": 100.0}


def test_vcmr_true_counts_every_video_where_the_sentence_is_true_and_the_ceiling_follows():
    from vidseek.evaluation import vcmr_ceiling, vcmr_metrics

    gt = [{"qid": "q1", "vid": "a", "relevant_windows": [[10, 20]],
           "library_windows": {"a": [[10, 20]], "b": [[0, 4]], "c": [[5, 9]]}},
          {"qid": "q2", "vid": "b", "relevant_windows": [[0, 4]], "library_windows": {"b": [[0, 4]]}}]
    preds = [{"qid": "q1", "pred_moments": [["b", 0, 3.5, 0.9], ["a", 10, 20, 0.8]]},  # another true video first
             {"qid": "q2", "pred_moments": [["a", 0, 4, 0.9], ["b", 0, 4, 0.8]]}]  # a: not true there
    assert vcmr_metrics(gt, preds)["VCMR-R1@0.5"] == 0.0
    true = vcmr_metrics(gt, preds, library=True)
    assert true["VCMR-true-R1@0.5"] == 50.0 and true["VCMR-true-R1@0.7"] == 50.0 and true["VCMR-true-R10@0.5"] == 100.0
    assert vcmr_ceiling(gt) == {"VCMR-ceiling-R1": round(100 * (1 / 3 + 1) / 2, 2), "VCMR-ceiling-R5": 100.0,
                                "VCMR-ceiling-R10": 100.0}
    with pytest.raises(ValueError, match="library_windows"):
        vcmr_metrics([{"qid": "q1", "vid": "a", "relevant_windows": [[0, 1]]}], preds[:1], library=True)
    with pytest.raises(ValueError, match="one"):
        vcmr_metrics(gt, preds, same_sentence=True, library=True)
