"""Tests for vidseek.evaluation and `vidseek eval`: golden cases, an independent reference, real files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vidseek.cli.eval_cmd import eval_cmd
from vidseek.evaluation import (
    MR_IOU_THRESHOLDS,
    average_precision_detection,
    evaluate_files,
    grounding_metrics,
    interpolated_average_precision,
    load_jsonl,
    moment_retrieval_metrics,
)

ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"
QVH_VAL = ASSETS / "annotations" / "qvhighlights" / "highlight_val_release.jsonl"
needs_qvh = pytest.mark.skipif(
    not QVH_VAL.is_file(), reason=f"QVHighlights val annotations not found at {QVH_VAL} (shared assets absent)"
)

THRESHOLD_KEYS = ["0.5", "0.55", "0.6", "0.65", "0.7", "0.75", "0.8", "0.85", "0.9", "0.95"]
BRIEF_KEYS = [
    "MR-full-R1@0.5",
    "MR-full-R1@0.7",
    "MR-full-mAP",
    "MR-full-mAP@0.5",
    "MR-full-mAP@0.75",
    "MR-long-mAP",
    "MR-middle-mAP",
    "MR-short-mAP",
]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def perfect_predictions(gt: list[dict]) -> list[dict]:
    return [{"qid": d["qid"], "pred_relevant_windows": [[*w, 1.0] for w in d["relevant_windows"]]} for d in gt]


# ------------------------------------------------------------------------- grounding metrics


def test_grounding_metrics_hand_computed():
    # IoUs: q0 = 1.0; q1 = max(IoU([2,6],[0,4]), IoU([5,9],[0,4])) = max(2/6, 0) = 1/3; q2 = 4/10 = 0.4
    preds = [[0.0, 10.0], [0.0, 4.0], [0.0, 10.0]]
    gts = [[(0.0, 10.0)], [(2.0, 6.0), (5.0, 9.0)], [(6.0, 10.0)]]
    m = grounding_metrics(preds, gts)
    assert list(m) == ["R1@0.1", "R1@0.3", "R1@0.5", "R1@0.7", "mIoU"]
    assert m["R1@0.1"] == pytest.approx(100.0)
    assert m["R1@0.3"] == pytest.approx(100.0)
    assert m["R1@0.5"] == pytest.approx(100 / 3)
    assert m["R1@0.7"] == pytest.approx(100 / 3)
    assert m["mIoU"] == pytest.approx(100 * (1.0 + 1 / 3 + 0.4) / 3)


def test_grounding_metrics_perfect_and_custom_thresholds():
    m = grounding_metrics([[1.0, 3.0]], [[(1.0, 3.0)]], thresholds=(0.25, 0.9))
    assert m == {"R1@0.25": 100.0, "R1@0.9": 100.0, "mIoU": 100.0}


def test_grounding_metrics_input_errors():
    with pytest.raises(ValueError, match="2 predicted spans but 1 ground-truth"):
        grounding_metrics([[0, 1], [1, 2]], [[(0, 1)]])
    with pytest.raises(ValueError, match="query 0 has no ground-truth windows"):
        grounding_metrics([[0, 1]], [[]])
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        grounding_metrics([0, 1], [[(0, 1)]])


# ------------------------------------------------------------------------- average precision


def test_interpolated_ap_uses_the_precision_envelope():
    # ranks: TP, FP, TP over 2 GT -> precision 1, 1/2, 2/3; recall 1/2, 1/2, 1.
    # envelope at the two recall steps: 1 and 2/3 -> AP = 1/2 * 1 + 1/2 * 2/3 = 5/6
    assert interpolated_average_precision(np.array([1.0, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0])) == pytest.approx(
        5 / 6
    )
    # FP then TP over 1 GT: envelope raises the first rank to 1/2 -> AP = 1 * 1/2
    assert interpolated_average_precision(np.array([0.0, 0.5]), np.array([0.0, 1.0])) == pytest.approx(0.5)


def test_ap_score_ties_keep_submission_order():
    gt = [[0, 10]]
    # equal scores: the first listed window is ranked first
    assert average_precision_detection(gt, [[50, 60, 0.5], [0, 10, 0.5]], [0.5]).tolist() == [0.5]
    assert average_precision_detection(gt, [[0, 10, 0.5], [50, 60, 0.5]], [0.5]).tolist() == [1.0]


def test_ap_equal_iou_goes_to_the_later_ground_truth_window():
    # [0,20] has IoU exactly 0.5 with both GT windows; standalone_eval's descending argsort hands
    # it the later one ([10,20]), which leaves [0,10] free for the second prediction -> AP 1.
    # (Giving it the earlier window would make the second prediction a duplicate -> AP 0.5.)
    gt = [[0, 10], [10, 20]]
    assert average_precision_detection(gt, [[0, 20, 0.9], [0, 10, 0.8]], [0.5]).tolist() == [1.0]


def test_ap_without_predictions_is_zero():
    assert average_precision_detection([[0, 10]], np.zeros((0, 3)), MR_IOU_THRESHOLDS).tolist() == [0.0] * 10


# ------------------------------------------------------------------------- standalone_eval golden

GOLDEN_GT = [
    {"qid": 1, "relevant_windows": [[0, 10]]},  # length 10 -> short (0, 10]
    {"qid": 2, "relevant_windows": [[20, 40], [100, 150]]},  # 20 -> middle, 50 -> long
    {"qid": 3, "relevant_windows": [[50, 80]]},  # 30 -> middle (10, 30]
]
GOLDEN_PRED = [
    {"qid": 1, "pred_relevant_windows": [[0, 10, 0.9]]},
    {"qid": 2, "pred_relevant_windows": [[20, 40, 0.5], [100, 140, 0.9], [0, 5, 0.7]]},
    {"qid": 3, "pred_relevant_windows": [[50, 74, 0.8], [50, 80, 0.8]]},
]
# Hand computation (L = thresholds 0.5..0.8, seven of them; H = 0.85..0.95, three):
#   q1: AP 1 everywhere, top-1 IoU 1.
#   q2 ranked by score: A=[100,140] (IoU 0.8 with [100,150]), B=[0,5] (0), C=[20,40] (1 with [20,40]).
#       L: TP FP TP over 2 GT -> AP 1/2*1 + 1/2*2/3 = 5/6.  H: FP FP TP -> AP 1/2*1/3 = 1/6.
#       R1 uses the first listed window C, not the best-scored A: IoU 1.
#   q3 (tied scores keep file order): D=[50,74] (IoU 24/30 = 0.8), E=[50,80] (1).
#       L: TP, FP (GT taken) -> AP 1.  H: FP TP -> AP 1/2.  R1: IoU 0.8.
#   full:   mAP L = (1 + 5/6 + 1)/3 = 94.44, H = (1 + 1/6 + 1/2)/3 = 55.56,
#           average = (7*17/18 + 3*5/9)/10 = 149/180 = 82.78; R1 L 100, H 66.67.
#   short:  q1 only -> 100 everywhere.
#   middle: q2 keeps [20,40] only: FP FP TP -> AP 1/3; q3 as above.
#           mAP L = (1/3 + 1)/2 = 66.67, H = (1/3 + 1/2)/2 = 41.67, average = 71/120 = 59.17;
#           R1 L 100, H 50.
#   long:   q2 keeps [100,150] only: L: TP FP FP -> AP 1; H: all FP -> 0; average 70.
#           R1: first window C misses [100,150] -> 0.
GOLDEN_L = dict.fromkeys(THRESHOLD_KEYS[:7])
GOLDEN_H = dict.fromkeys(THRESHOLD_KEYS[7:])


def _per_threshold(low: float, high: float) -> dict[str, float]:
    return {**dict.fromkeys(GOLDEN_L, low), **dict.fromkeys(GOLDEN_H, high)}


def test_standalone_eval_golden_case():
    m = moment_retrieval_metrics(GOLDEN_GT, GOLDEN_PRED)
    assert list(m) == ["brief", "full", "long", "middle", "short"]
    assert m["brief"] == {
        "MR-full-R1@0.5": 100.0,
        "MR-full-R1@0.7": 100.0,
        "MR-full-mAP": 82.78,
        "MR-full-mAP@0.5": 94.44,
        "MR-full-mAP@0.75": 94.44,
        "MR-long-mAP": 70.0,
        "MR-middle-mAP": 59.17,
        "MR-short-mAP": 100.0,
    }
    assert list(m["brief"]) == BRIEF_KEYS
    assert m["full"]["MR-mAP"] == {**_per_threshold(94.44, 55.56), "average": 82.78}
    assert m["full"]["MR-R1"] == _per_threshold(100.0, 66.67)
    assert m["short"]["MR-mAP"] == {**_per_threshold(100.0, 100.0), "average": 100.0}
    assert m["short"]["MR-R1"] == _per_threshold(100.0, 100.0)
    assert m["middle"]["MR-mAP"] == {**_per_threshold(66.67, 41.67), "average": 59.17}
    assert m["middle"]["MR-R1"] == _per_threshold(100.0, 50.0)
    assert m["long"]["MR-mAP"] == {**_per_threshold(100.0, 0.0), "average": 70.0}
    assert m["long"]["MR-R1"] == _per_threshold(0.0, 0.0)


def test_only_the_first_ten_listed_windows_count_for_map():
    gt = [{"qid": 1, "relevant_windows": [[0, 10]]}]
    misses = [[100 + 2 * i, 101 + 2 * i, 0.1] for i in range(10)]
    late_hit = {"qid": 1, "pred_relevant_windows": [*misses, [0, 10, 0.99]]}  # 11th: dropped before ranking
    early_hit = {"qid": 1, "pred_relevant_windows": [*misses[:9], [0, 10, 0.99], misses[9]]}
    assert moment_retrieval_metrics(gt, [late_hit])["full"]["MR-mAP"]["average"] == 0.0
    assert moment_retrieval_metrics(gt, [early_hit])["full"]["MR-mAP"]["average"] == 100.0


def test_empty_length_bucket_reports_none():
    gt = [{"qid": "a", "relevant_windows": [[0, 4]]}]
    m = moment_retrieval_metrics(gt, perfect_predictions(gt))
    assert m["brief"]["MR-short-mAP"] == 100.0
    assert m["brief"]["MR-middle-mAP"] is None and m["brief"]["MR-long-mAP"] is None
    assert set(m["long"]["MR-R1"].values()) == {None}


@pytest.mark.parametrize(
    ("gt", "pred", "message"),
    [
        ([{"qid": 1, "relevant_windows": [[0, 5]]}, {"qid": 2, "relevant_windows": [[0, 5]]}],
         [{"qid": 1, "pred_relevant_windows": [[0, 5, 1.0]]}], r"have no prediction \(first: \[2\]\)"),
        ([{"qid": 1, "relevant_windows": [[0, 5]]}],
         [{"qid": 1, "pred_relevant_windows": [[0, 5, 1.0]]}, {"qid": 9, "pred_relevant_windows": [[0, 5, 1.0]]}],
         r"not in the ground truth \(first: \[9\]\)"),
        ([{"qid": 1, "relevant_windows": [[0, 5]]}], [{"qid": 1, "pred_relevant_windows": []}],
         r"submission\[0\] \(qid 1\).*non-empty list"),
        ([{"qid": 1, "relevant_windows": [[0, 5]]}], [{"qid": 1, "pred_relevant_windows": [[0, 5]]}],
         r"\[start, end, score\]"),
        ([{"qid": 1, "relevant_windows": [[5, 0]]}], [{"qid": 1, "pred_relevant_windows": [[0, 5, 1]]}],
         "ends before it starts"),
        ([{"qid": 1, "relevant_windows": [[0, 5]]}, {"qid": 1, "relevant_windows": [[0, 5]]}],
         [{"qid": 1, "pred_relevant_windows": [[0, 5, 1]]}], r"qid 1 already appeared at ground_truth\[0\]"),
        ([{"relevant_windows": [[0, 5]]}], [{"qid": 1, "pred_relevant_windows": [[0, 5, 1]]}],
         "'qid' must be an int or a string"),
    ],
)
def test_invalid_inputs_raise_value_errors_naming_the_problem(gt, pred, message):
    with pytest.raises(ValueError, match=message):
        moment_retrieval_metrics(gt, pred)


# ------------------------------------------------------------------------- independent reference


def _ref_iou(a, b) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else 0.0


def _ref_ap(gts, preds, thr) -> float:
    """Greedy matching then AP as the mean, over GT windows, of the best precision at or after each hit."""
    ranked = sorted(preds[:10], key=lambda w: -w[2])  # Python's sort is stable
    matched, hits = set(), []
    for w in ranked:
        candidates = [(iou, j) for j, g in enumerate(gts) if j not in matched and (iou := _ref_iou(w, g)) >= thr]
        hits.append(bool(candidates))
        if candidates:
            matched.add(max(candidates)[1])  # highest IoU; equal IoU -> higher index
    precision = [sum(hits[: k + 1]) / (k + 1) for k in range(len(hits))]
    return sum(max(precision[k:]) for k, hit in enumerate(hits) if hit) / len(gts)


def _reference_report(gt, pred) -> dict:
    pred_by_qid = {d["qid"]: d["pred_relevant_windows"] for d in pred}
    report = {}
    for name, lo, hi in [("short", 0, 10), ("middle", 10, 30), ("long", 30, 150), ("full", None, None)]:
        rows = []
        for d in gt:
            wins = d["relevant_windows"] if lo is None else [w for w in d["relevant_windows"] if lo < w[1] - w[0] <= hi]
            if wins:
                rows.append((wins, pred_by_qid[d["qid"]]))
        mr_map, mr_r1 = {}, {}
        for key, thr in zip(THRESHOLD_KEYS, MR_IOU_THRESHOLDS):
            mr_map[key] = 100 * sum(_ref_ap(w, p, thr) for w, p in rows) / len(rows)
            mr_r1[key] = 100 * sum(max(_ref_iou(p[0], g) for g in w) >= thr for w, p in rows) / len(rows)
        mr_map["average"] = sum(mr_map.values()) / len(THRESHOLD_KEYS)
        report[name] = {"MR-mAP": mr_map, "MR-R1": mr_r1}
    return report


def _random_case(rng: np.random.Generator, n_queries: int):
    """QVHighlights-like GT (2 s grid, lengths straddling the 10/30 s bucket edges) and noisy predictions."""
    gt, pred = [], []
    for qid in range(n_queries):
        windows = []
        for _ in range(rng.integers(1, 5)):
            start = 2 * int(rng.integers(0, 60))
            windows.append([start, start + 2 * int(rng.choice([1, 4, 5, 6, 14, 15, 16, 25, 40]))])
        preds = []
        for _ in range(rng.integers(1, 15)):  # sometimes more than 10
            if rng.random() < 0.6:  # near a GT window: integer or float jitter
                s, e = windows[rng.integers(len(windows))]
                jitter = rng.integers(-4, 5, 2) if rng.random() < 0.5 else rng.normal(0, 3, 2)
                s, e = sorted((float(s + jitter[0]), float(e + jitter[1])))
            else:
                s = float(rng.uniform(0, 140))
                e = s + float(rng.uniform(0, 50))
            preds.append([s, e, float(np.round(rng.random(), 1))])  # one decimal: many score ties
        gt.append({"qid": qid, "relevant_windows": windows})
        pred.append({"qid": qid, "pred_relevant_windows": preds})
    order = rng.permutation(n_queries)  # prediction file order differs from GT order
    return gt, [pred[i] for i in order]


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_an_independent_reference_on_random_files(seed):
    gt, pred = _random_case(np.random.default_rng(seed), n_queries=300)
    ours = moment_retrieval_metrics(gt, pred)
    ref = _reference_report(gt, pred)
    for bucket in ("short", "middle", "long", "full"):
        for family in ("MR-mAP", "MR-R1"):
            assert list(ours[bucket][family]) == list(ref[bucket][family])
            for key, value in ref[bucket][family].items():
                assert ours[bucket][family][key] == pytest.approx(value, abs=0.0051), (bucket, family, key)
    assert 0.0 < ours["brief"]["MR-full-mAP"] < 100.0  # the case is neither trivial nor hopeless


# ------------------------------------------------------------------------- real QVHighlights val


@needs_qvh
def test_real_val_perfect_predictions():
    gt = load_jsonl(QVH_VAL)
    m = moment_retrieval_metrics(gt, perfect_predictions(gt))
    assert set(m["full"]["MR-R1"].values()) == {100.0}
    # Only 10 windows per query are scored, so a query with G > 10 GT windows recalls 10/G.
    expected_map = round(100 * float(np.mean([min(1.0, 10 / len(d["relevant_windows"])) for d in gt])), 2)
    assert m["brief"]["MR-full-mAP"] == m["full"]["MR-mAP"]["0.95"] == expected_map
    few = [d for d in gt if len(d["relevant_windows"]) <= 10]
    assert set(moment_retrieval_metrics(few, perfect_predictions(few))["full"]["MR-mAP"].values()) == {100.0}


@needs_qvh
def test_real_val_perturbed_predictions_are_sane_and_match_reference(tmp_path):
    gt = load_jsonl(QVH_VAL)
    rng = np.random.default_rng(7)
    pred = []
    for d in gt:
        windows = [[w[0] + float(rng.normal(0, 4)), w[1] + float(rng.normal(0, 4)), float(rng.random())]
                   for w in d["relevant_windows"]]
        windows.append([0.0, float(d["duration"]), 0.05])  # a low-scored whole-video guess
        pred.append({"qid": d["qid"], "pred_relevant_windows": windows})
    report = evaluate_files(QVH_VAL, write_jsonl(tmp_path / "pred.jsonl", pred))
    ref = _reference_report(gt, pred)
    for key, value in report["brief"].items():
        assert 0.0 < value < 100.0, key
    assert report["full"]["MR-mAP"]["average"] == pytest.approx(ref["full"]["MR-mAP"]["average"], abs=0.0051)
    assert report["long"]["MR-R1"]["0.7"] == pytest.approx(ref["long"]["MR-R1"]["0.7"], abs=0.0051)
    assert report["num_queries"]["full"] == len(gt)
    assert 0.0 < report["grounding"]["R1@0.7"] < report["grounding"]["R1@0.3"] <= 100.0


# ------------------------------------------------------------------------- files and CLI


def test_evaluate_files_adds_grounding_and_counts(tmp_path):
    gt_file = write_jsonl(tmp_path / "gt.jsonl", GOLDEN_GT)
    pred_file = write_jsonl(tmp_path / "pred.jsonl", GOLDEN_PRED)
    report = evaluate_files(gt_file, pred_file)
    assert report["brief"] == moment_retrieval_metrics(GOLDEN_GT, GOLDEN_PRED)["brief"]
    # top-1 (first listed) IoUs against all GT windows: 1, 1, 0.8
    assert report["grounding"] == {"R1@0.1": 100.0, "R1@0.3": 100.0, "R1@0.5": 100.0, "R1@0.7": 100.0,
                                   "mIoU": 93.33}
    assert report["num_queries"] == {"short": 1, "middle": 2, "long": 1, "full": 3}


def test_load_jsonl_skips_blank_lines_and_names_bad_lines(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"qid": 1}\n\n{"qid": 2}\n', encoding="utf-8")
    assert load_jsonl(path) == [{"qid": 1}, {"qid": 2}]
    path.write_text('{"qid": 1}\n{"qid": 2,\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"x\.jsonl line 2 is not valid JSON"):
        load_jsonl(path)
    path.write_text('{"qid": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2 holds a JSON list"):
        load_jsonl(path)
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="contains no records"):
        load_jsonl(path)
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_jsonl(tmp_path / "missing.jsonl")


def test_evaluate_files_names_file_and_line_of_a_bad_record(tmp_path):
    gt_file = write_jsonl(tmp_path / "gt.jsonl", GOLDEN_GT)
    bad = [GOLDEN_PRED[0], {"qid": 2, "pred_relevant_windows": [[20, "forty", 0.5]]}, GOLDEN_PRED[2]]
    with pytest.raises(ValueError, match=r"pred\.jsonl line 2 \(qid 2\).*'forty'"):
        evaluate_files(gt_file, write_jsonl(tmp_path / "pred.jsonl", bad))


def test_cli_prints_a_table_and_json(tmp_path):
    gt_file = write_jsonl(tmp_path / "gt.jsonl", GOLDEN_GT)
    pred_file = write_jsonl(tmp_path / "pred.jsonl", GOLDEN_PRED)
    table = CliRunner().invoke(eval_cmd, ["--gt", str(gt_file), "--pred", str(pred_file)])
    assert table.exit_code == 0, table.output
    assert re.search(r"^MR-full-mAP +82\.78$", table.output, flags=re.M), table.output
    assert re.search(r"^MR-short-mAP +100\.00$", table.output, flags=re.M), table.output
    assert re.search(r"^grounding mIoU +93\.33$", table.output, flags=re.M), table.output
    as_json = CliRunner().invoke(eval_cmd, ["--gt", str(gt_file), "--pred", str(pred_file), "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output) == json.loads(json.dumps(evaluate_files(gt_file, pred_file)))


def test_cli_user_errors_are_messages_not_tracebacks(tmp_path):
    gt_file = write_jsonl(tmp_path / "gt.jsonl", GOLDEN_GT)
    (tmp_path / "pred.jsonl").write_text('{"qid": 1, "pred_relevant_windows": [[0, 10, 0.9]]}\n{oops\n')
    bad = CliRunner().invoke(eval_cmd, ["--gt", str(gt_file), "--pred", str(tmp_path / "pred.jsonl")])
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert "line 2 is not valid JSON" in bad.output and "Fix the file" in bad.output
    partial = write_jsonl(tmp_path / "partial.jsonl", GOLDEN_PRED[:2])
    missing_qid = CliRunner().invoke(eval_cmd, ["--gt", str(gt_file), "--pred", str(partial)])
    assert missing_qid.exit_code == 1 and "[3]" in missing_qid.output
    absent = CliRunner().invoke(eval_cmd, ["--gt", str(gt_file), "--pred", str(tmp_path / "nope.jsonl")])
    assert absent.exit_code == 2 and "does not exist" in absent.output


def test_evaluation_and_cli_import_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import vidseek.evaluation, vidseek.cli.eval_cmd, vidseek.spans\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
