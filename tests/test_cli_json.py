"""`--json` on every command that reports something, and how the CLI tells a user error from a bug.

The library is three real clips (shared/assets) and one broken file, indexed with the built-in
bundle: `index --json`, `info --json`, `doctor --json`, `bench --json` and `eval --json` print one
JSON document; `search --json` prints JSON Lines, one moment per line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from vidseek.cli.common import user_errors
from vidseek.cli.main import cli
from vidseek.errors import VidseekError

ASSETS = Path(__file__).resolve().parents[2] / "shared" / "assets" / "videos"
CLIPS = ("mmaction2__demo.mp4", "mmaction2__demo_spatiotemporal_det.mp4", "mmaction2__tests_test.mp4")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    if not all((ASSETS / name).is_file() for name in CLIPS):
        pytest.skip(f"the real clips of shared/assets are not at {ASSETS}")
    root = tmp_path_factory.mktemp("json")
    videos = root / "videos"
    videos.mkdir()
    for name in CLIPS:
        shutil.copy(ASSETS / name, videos / name)
    (videos / "broken.mp4").write_bytes(b"not a video at all")
    r = run("index", videos, "--index", root / "index", "--no-progress", "--json")
    assert r.exit_code == 0, r.output + r.stderr
    return root, json.loads(r.stdout)


def test_index_json_is_one_document_with_the_report(library):
    root, report = library
    assert report["index"] == str(root / "index")
    assert sorted(report["indexed"]) == sorted(CLIPS)
    assert [e["path"] for e in report["errors"]] == ["broken.mp4"] and report["errors"][0]["error"]
    assert report["video_seconds"] > 25 and report["realtime"] > 0 and report["removed"] == 0
    again = run("index", root / "videos", "--index", root / "index", "--no-progress", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["indexed"] == []


def test_info_json_counts_videos_by_status_and_lists_failed_files(library):
    root, _ = library
    r = run("info", "--index", root / "index", "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["counts"] == {"ok": 3, "error": 1, "pending": 0}
    assert [f["path"] for f in info["failed"]] == ["broken.mp4"] and "Error" in info["failed"][0]["error"]
    assert info["problems"] == [] and info["model"] == "builtin" and info["duration"] > 25
    assert info["domain"] == "synthetic"  # the built-in bundle says what it has seen
    human = run("info", "--index", root / "index")
    assert "trained on synthetic video only" in human.stdout
    assert info["library"] == str((root / "videos").resolve()) and info["dim"] > 0


def test_search_json_is_one_moment_per_line(library):
    root, _ = library
    r = run("search", "a person walks", "--index", root / "index", "--top-k", 4, "--json")
    assert r.exit_code == 0, r.output
    moments = [json.loads(line) for line in r.stdout.splitlines()]
    table = run("search", "a person walks", "--index", root / "index", "--top-k", 1)
    assert table.exit_code == 0 and table.stderr.count("only seen vidseek's synthetic world") == 1
    assert "--model clip:ID_OR_PATH" in table.stderr
    assert [m["rank"] for m in moments] == list(range(1, len(moments) + 1)) and 1 <= len(moments) <= 4
    assert all(m["video"] in CLIPS and 0 <= m["start"] <= m["end"] for m in moments)


def test_doctor_json_is_one_document_of_findings(library):
    root, _ = library
    r = run("doctor", "--index", root / "index", "--json")
    report = json.loads(r.stdout)
    assert r.exit_code == (1 if report["problems"] else 0)
    assert report["index"] == str(root / "index")
    levels = {f["level"] for f in report["findings"]}
    assert levels <= {"ok", "info", "warn", "fail"}
    assert any(f["topic"] == "integrity" and f["level"] == "ok" for f in report["findings"])


def test_bench_json_prints_the_report_and_keeps_tables_off_stdout():
    r = run("bench", "--parts", "graphs", "--backends", "onnxruntime", "--warmup", 0, "--repeat", 2, "--json")
    assert r.exit_code == 0, r.output + r.stderr
    report = json.loads(r.stdout)
    assert report["bundle"]["model"] and "graphs" in json.dumps(report)
    assert "p50" in r.stderr  # the human tables went to stderr


def test_eval_json(tmp_path):
    gt = tmp_path / "gt.jsonl"
    pred = tmp_path / "pred.jsonl"
    gt.write_text(json.dumps({"qid": 1, "query": "q", "vid": "a", "duration": 30, "relevant_windows": [[2, 8]]}) + "\n")
    pred.write_text(json.dumps({"qid": 1, "pred_relevant_windows": [[2, 8, 0.9]]}) + "\n")
    r = run("eval", "--gt", gt, "--pred", pred, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["brief"]["MR-full-R1@0.5"] == 100.0


def test_a_user_error_is_a_message_and_a_bug_keeps_its_traceback(tmp_path):
    r = run("info", "--index", tmp_path / "nothing-here")
    assert r.exit_code == 1 and "no index in" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(click.ClickException, match="what to do"):
        with user_errors():
            raise VidseekError("what was wrong; what to do")
    with pytest.raises(RuntimeError):  # not a user error: the CLI must not hide it behind a message
        with user_errors():
            raise RuntimeError("a bug")


def test_the_cli_names_the_annotation_formats_the_readers_have():
    from vidseek.cli.common import DATASETS as cli
    from vidseek.trainer.data.annotations import DATASETS as readers

    assert cli == readers
