"""Moment-retrieval metrics (numpy only, torch-free).

Two families of metrics live here:

* :func:`grounding_metrics` -- the single-moment grounding numbers reported by the ExCL /
  PLPNet / VSLNet papers on Charades-STA and ActivityNet Captions: ``R1@0.1``, ``R1@0.3``,
  ``R1@0.5``, ``R1@0.7`` and ``mIoU`` (all in percent) of the top-1 prediction.
* :func:`moment_retrieval_metrics` / :func:`evaluate_files` -- a re-implementation of the
  moment-retrieval part of QVHighlights' ``standalone_eval`` (Moment-DETR). It produces the same
  keys, the same nesting and the same two-decimal rounding, so its numbers can be compared
  directly with published QVHighlights results.

The ``standalone_eval`` conventions reproduced here:

* ``R1@t`` uses the *first* predicted window of a query (file order, not the highest score),
  matched against the ground-truth window it overlaps most.
* ``mAP@t`` keeps the first :data:`MAX_PRED_WINDOWS` predicted windows (file order), sorts them
  by score (stable: ties keep file order), greedily matches each to the free ground-truth window
  of highest IoU (ties go to the later window) and takes the VOC-style interpolated AP per
  query; mAP is the mean over queries, ``average`` the mean over the ten thresholds 0.5:0.05:0.95.
* Length buckets keep, per query, only the ground-truth windows whose length ``l`` satisfies
  ``lo < l <= hi`` (short (0, 10], middle (10, 30], long (30, 150] seconds) and drop queries left
  without any; predictions are not filtered. ``full`` keeps everything.
* Every value is ``100 * x`` rounded to two decimals; ``average`` is computed before rounding.

Where ``standalone_eval`` would crash (a query without predicted windows, qids that differ
between the files, a ground-truth query without windows) this module raises a ``ValueError``
that names the query. Where it would crash on an empty length bucket (e.g. a dataset without
long moments), this module reports ``None`` for that bucket's metrics instead.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from vidseek.spans import temporal_iou, temporal_iou_paired

MR_IOU_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.5 .. 0.95
MAX_PRED_WINDOWS = 10  # standalone_eval scores at most this many windows per query for mAP
LENGTH_BUCKETS: tuple[tuple[str, tuple[float, float] | None], ...] = (
    ("short", (0.0, 10.0)),  # ground-truth window length l in (0, 10] seconds
    ("middle", (10.0, 30.0)),  # (10, 30]
    ("long", (30.0, 150.0)),  # (30, 150]
    ("full", None),  # every window of every query, unfiltered
)
GROUNDING_THRESHOLDS: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7)


@dataclass(frozen=True)
class MomentQuery:
    """One query's ground truth and predictions, validated."""

    qid: int | str
    gt_windows: np.ndarray  # (G, 2) float64 (start, end) seconds, G >= 1
    pred_windows: np.ndarray  # (P, 3) float64 (start, end, score) in submission order, P >= 1


# --------------------------------------------------------------------------------------------
# Paper-style grounding metrics
# --------------------------------------------------------------------------------------------


def grounding_metrics(
    pred_spans,
    gt_windows: Sequence[Sequence[Sequence[float]]],
    thresholds: Sequence[float] = GROUNDING_THRESHOLDS,
) -> dict[str, float]:
    """Recall@1 at IoU thresholds and mean IoU, in percent (0-100), of top-1 predictions.

    Args:
        pred_spans: (N, 2) top-1 predicted ``(start, end)`` per query, in seconds.
        gt_windows: N lists of ``(start, end)`` ground-truth windows; a query scores the best
            IoU over its windows.
        thresholds: IoU thresholds; a query counts as recalled at ``t`` when IoU >= t.

    Returns:
        ``{"R1@0.1": ..., "R1@0.3": ..., "R1@0.5": ..., "R1@0.7": ..., "mIoU": ...}`` (one
        ``R1@t`` key per threshold, formatted with ``f"{t:g}"``), unrounded floats.

    >>> m = grounding_metrics([[0.0, 10.0], [0.0, 4.0]], [[(0.0, 10.0)], [(6.0, 8.0), (2.0, 6.0)]])
    >>> {k: round(v, 2) for k, v in m.items()}
    {'R1@0.1': 100.0, 'R1@0.3': 100.0, 'R1@0.5': 50.0, 'R1@0.7': 50.0, 'mIoU': 66.67}
    """
    preds = np.asarray(pred_spans, dtype=np.float64)
    if preds.ndim != 2 or preds.shape[1] != 2 or preds.shape[0] == 0:
        raise ValueError(f"pred_spans must be a non-empty (N, 2) array of (start, end), got shape {preds.shape}")
    if len(gt_windows) != preds.shape[0]:
        raise ValueError(
            f"got {preds.shape[0]} predicted spans but {len(gt_windows)} ground-truth lists; "
            "pass one list of windows per query, in the same order"
        )
    best = np.empty(preds.shape[0])  # (N,)
    for i, windows in enumerate(gt_windows):
        gt = np.asarray(windows, dtype=np.float64).reshape(-1, 2) if len(windows) else np.zeros((0, 2))
        if gt.shape[0] == 0:
            raise ValueError(f"query {i} has no ground-truth windows; every query needs at least one (start, end)")
        best[i] = temporal_iou(preds[i : i + 1], gt).max()
    out = {f"R1@{t:g}": 100.0 * float(np.mean(best >= t)) for t in thresholds}
    out["mIoU"] = 100.0 * float(np.mean(best))
    return out


# --------------------------------------------------------------------------------------------
# Detection-style average precision (ActivityNet / standalone_eval)
# --------------------------------------------------------------------------------------------


def interpolated_average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC-style interpolated AP from (P,) precision and (P,) recall at each rank.

    Precision is replaced by its running maximum from the right (the precision envelope), and
    AP is the envelope summed over the ranks where recall increases, weighted by the increase.

    >>> interpolated_average_precision(np.array([1.0, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0]))
    0.8333333333333333
    """
    prec = np.concatenate([[0.0], np.asarray(precision, dtype=np.float64), [0.0]])
    rec = np.concatenate([[0.0], np.asarray(recall, dtype=np.float64), [1.0]])
    envelope = np.maximum.accumulate(prec[::-1])[::-1]
    steps = np.flatnonzero(rec[1:] != rec[:-1]) + 1
    return float(np.sum((rec[steps] - rec[steps - 1]) * envelope[steps]))


def match_predictions(gt_windows, pred_spans, thresholds: Sequence[float] = MR_IOU_THRESHOLDS) -> np.ndarray:
    """Greedy one-to-one matching of ranked predictions to ground truth, per IoU threshold.

    Args:
        gt_windows: (G, 2) ground-truth ``(start, end)``.
        pred_spans: (P, 2) predicted ``(start, end)``, already sorted best first.
        thresholds: (T,) IoU thresholds.

    Returns:
        (T, P) bool: ``True`` where prediction ``p`` is a true positive at threshold ``t``, i.e.
        some not-yet-matched ground-truth window has IoU >= t with it. The window taken is the
        free one of highest IoU; among equal IoUs the later window, as in ``standalone_eval``.

    >>> match_predictions([[0, 10]], [[0, 10], [0, 9]], thresholds=[0.5]).tolist()
    [[True, False]]
    """
    gt = np.asarray(gt_windows, dtype=np.float64).reshape(-1, 2)
    iou = temporal_iou(pred_spans, gt)  # (P, G)
    thr = np.asarray(thresholds, dtype=np.float64)[:, None]  # (T, 1)
    taken = np.zeros((thr.shape[0], gt.shape[0]), dtype=bool)  # (T, G)
    tp = np.zeros((thr.shape[0], iou.shape[0]), dtype=bool)  # (T, P)
    if gt.shape[0] == 0:
        return tp
    for p in range(iou.shape[0]):
        order = np.argsort(iou[p], kind="stable")[::-1]  # (G,) best IoU first, ties: later first
        free = (iou[p, order][None, :] >= thr) & ~taken[:, order]  # (T, G)
        hit = free.any(axis=1)  # (T,)
        chosen = order[free.argmax(axis=1)]  # (T,)
        tp[hit, p] = True
        taken[hit, chosen[hit]] = True
    return tp


def average_precision_detection(
    gt_windows, pred_windows, thresholds: Sequence[float] = MR_IOU_THRESHOLDS
) -> np.ndarray:
    """Average precision of one query's scored predictions at each IoU threshold.

    Args:
        gt_windows: (G, 2) ground-truth ``(start, end)``, G >= 1.
        pred_windows: (P, 3) ``(start, end, score)``; ranked by score, ties keeping input order.
        thresholds: (T,) IoU thresholds.

    Returns:
        (T,) AP in [0, 1] (all zeros when there are no predictions).

    Two ground-truth windows, three predictions; ranked by score they are A, B, C:
    A matches GT 1, B duplicates GT 1 (false positive), C matches GT 2.
    Precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.

    >>> gt = [[0, 10], [20, 30]]
    >>> pred = [[20, 30, 0.5], [0, 10, 0.9], [1, 10, 0.8]]
    >>> average_precision_detection(gt, pred, thresholds=[0.5]).round(4).tolist()
    [0.8333]
    """
    gt = np.asarray(gt_windows, dtype=np.float64).reshape(-1, 2)
    pred = np.asarray(pred_windows, dtype=np.float64).reshape(-1, 3)
    if pred.shape[0] == 0 or gt.shape[0] == 0:
        return np.zeros(len(thresholds))
    ranked = pred[np.argsort(-pred[:, 2], kind="stable")]  # (P, 3)
    tp = match_predictions(gt, ranked[:, :2], thresholds)  # (T, P)
    tp_cum = np.cumsum(tp, axis=1, dtype=np.float64)  # (T, P)
    precision = tp_cum / np.arange(1, pred.shape[0] + 1)  # (T, P)
    recall = tp_cum / gt.shape[0]  # (T, P)
    return np.array([interpolated_average_precision(p, r) for p, r in zip(precision, recall)])


# --------------------------------------------------------------------------------------------
# QVHighlights standalone_eval (moment retrieval)
# --------------------------------------------------------------------------------------------


def moment_retrieval_metrics(
    ground_truth: Sequence[Mapping[str, Any]], submission: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """QVHighlights moment-retrieval metrics, keyed and rounded as Moment-DETR's ``standalone_eval``.

    Args:
        ground_truth: records with ``qid`` and ``relevant_windows`` (list of ``[start, end]``).
        submission: records with ``qid`` and ``pred_relevant_windows`` (list of
            ``[start, end, score]``, best first for R1).

    Returns:
        ``{"brief": {...}, "full": {...}, "long": {...}, "middle": {...}, "short": {...}}`` where
        each bucket is ``{"MR-mAP": {"0.5": .., ..., "0.95": .., "average": ..},
        "MR-R1": {"0.5": .., ..., "0.95": ..}}`` and ``brief`` holds ``MR-full-R1@0.5``,
        ``MR-full-R1@0.7``, ``MR-full-mAP``, ``MR-full-mAP@0.5``, ``MR-full-mAP@0.75``,
        ``MR-long-mAP``, ``MR-middle-mAP``, ``MR-short-mAP``. Values are percentages rounded
        to two decimals, or ``None`` for a bucket that has no queries.

    >>> gt = [{"qid": 1, "relevant_windows": [[0, 8]]}, {"qid": 2, "relevant_windows": [[10, 50]]}]
    >>> sub = [{"qid": 1, "pred_relevant_windows": [[0, 8, 0.9]]},
    ...        {"qid": 2, "pred_relevant_windows": [[0, 10, 0.8], [10, 50, 0.7]]}]
    >>> m = moment_retrieval_metrics(gt, sub)
    >>> m["brief"]["MR-full-R1@0.5"], m["brief"]["MR-full-mAP"], m["short"]["MR-R1"]["0.95"]
    (50.0, 75.0, 100.0)
    >>> m["middle"]["MR-mAP"]["average"] is None
    True
    """
    queries = build_queries(
        [(f"ground_truth[{i}]", r) for i, r in enumerate(ground_truth)],
        [(f"submission[{i}]", r) for i, r in enumerate(submission)],
    )
    return _moment_retrieval_report(queries)


def build_queries(
    gt_records: Sequence[tuple[str, Mapping[str, Any]]],
    pred_records: Sequence[tuple[str, Mapping[str, Any]]],
) -> list[MomentQuery]:
    """Validate ground-truth and prediction records and pair them by qid (ground-truth order).

    Each record comes with a location label (e.g. ``"gt.jsonl line 3"``) used in error messages.
    Raises ``ValueError`` for malformed records, duplicate qids, or qids present in one side only.
    """
    gt = _index_by_qid(gt_records, "relevant_windows", width=2, role="ground truth")
    pred = _index_by_qid(pred_records, "pred_relevant_windows", width=3, role="predictions")
    _check_same_qids(set(gt), set(pred))
    return [MomentQuery(qid, gt[qid], pred[qid]) for qid in gt]


def _moment_retrieval_report(queries: Sequence[MomentQuery]) -> dict[str, Any]:
    """Buckets, metrics and the ``brief`` summary for validated queries."""
    buckets = {name: _mr_bucket_metrics(_queries_in_range(queries, rng)) for name, rng in LENGTH_BUCKETS}
    brief = {
        "MR-full-mAP": buckets["full"]["MR-mAP"]["average"],
        "MR-full-mAP@0.5": buckets["full"]["MR-mAP"]["0.5"],
        "MR-full-mAP@0.75": buckets["full"]["MR-mAP"]["0.75"],
        "MR-short-mAP": buckets["short"]["MR-mAP"]["average"],
        "MR-middle-mAP": buckets["middle"]["MR-mAP"]["average"],
        "MR-long-mAP": buckets["long"]["MR-mAP"]["average"],
        "MR-full-R1@0.5": buckets["full"]["MR-R1"]["0.5"],
        "MR-full-R1@0.7": buckets["full"]["MR-R1"]["0.7"],
    }
    report: dict[str, Any] = {"brief": dict(sorted(brief.items()))}
    report.update(sorted(buckets.items()))
    return report


def _queries_in_range(queries: Sequence[MomentQuery], length_range: tuple[float, float] | None) -> list[MomentQuery]:
    """Queries restricted to ground-truth windows with length in ``(lo, hi]``; empty ones dropped."""
    if length_range is None:
        return list(queries)
    lo, hi = length_range
    kept = []
    for q in queries:
        lengths = q.gt_windows[:, 1] - q.gt_windows[:, 0]  # (G,)
        in_range = (lengths > lo) & (lengths <= hi)
        if in_range.any():
            kept.append(replace(q, gt_windows=q.gt_windows[in_range]))
    return kept


def _mr_bucket_metrics(queries: Sequence[MomentQuery]) -> dict[str, dict[str, float | None]]:
    """``{"MR-mAP": {...}, "MR-R1": {...}}`` for one bucket (all ``None`` when it is empty)."""
    keys = [str(t) for t in MR_IOU_THRESHOLDS]
    if not queries:
        return {"MR-mAP": dict.fromkeys([*keys, "average"]), "MR-R1": dict.fromkeys(keys)}
    ap = np.stack([average_precision_detection(q.gt_windows, q.pred_windows[:MAX_PRED_WINDOWS]) for q in queries])
    map_per_thd = ap.mean(axis=0)  # (T,)
    mr_map = {k: _percent(v) for k, v in zip(keys, map_per_thd)}
    mr_map["average"] = _percent(map_per_thd.mean())
    top1_iou = _top1_iou(queries)  # (Q,)
    mr_r1 = {k: _percent(np.mean(top1_iou >= t)) for k, t in zip(keys, MR_IOU_THRESHOLDS)}
    return {"MR-mAP": mr_map, "MR-R1": mr_r1}


def _top1_iou(queries: Sequence[MomentQuery]) -> np.ndarray:
    """(Q,) IoU of each query's first predicted window with its best-overlapping GT window."""
    top1 = np.stack([q.pred_windows[0, :2] for q in queries])  # (Q, 2)
    best_gt = np.stack(
        [q.gt_windows[int(np.argmax(temporal_iou(q.pred_windows[:1, :2], q.gt_windows)[0]))] for q in queries]
    )  # (Q, 2)
    return temporal_iou_paired(top1, best_gt)


def _percent(fraction: float) -> float:
    """``100 * fraction`` rounded to two decimals, the standalone_eval reporting convention."""
    return round(float(100 * fraction), 2)


# --------------------------------------------------------------------------------------------
# Files and validation
# --------------------------------------------------------------------------------------------


def load_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file into a list of objects (blank lines are skipped).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file and line
    for a line that is not a JSON object.
    """
    return [record for _, record in _read_jsonl(Path(path))]


def evaluate_files(gt_path: str | Path, pred_path: str | Path) -> dict[str, Any]:
    """Evaluate a QVHighlights-format prediction file against a ground-truth file.

    Returns the :func:`moment_retrieval_metrics` report plus two extra sections:
    ``"grounding"`` (:func:`grounding_metrics` of each query's first predicted window against
    all its ground-truth windows, rounded to two decimals) and ``"num_queries"`` (queries per
    length bucket).
    """
    return evaluate(read_located(gt_path), read_located(pred_path))


def read_located(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """``(location, object)`` of each line of a JSON-lines file, the location as ``"FILE line N"``."""
    path = Path(path)
    return [(f"{path} line {n}", record) for n, record in _read_jsonl(path)]


def evaluate(gt_records: Sequence[tuple[str, Mapping[str, Any]]],
             pred_records: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """:func:`evaluate_files` on records already read: ``(location, record)`` pairs, the location
    naming where a record came from in error messages (``"gt.jsonl line 3"``)."""
    queries = build_queries(gt_records, pred_records)
    report = _moment_retrieval_report(queries)
    grounding = grounding_metrics(
        np.stack([q.pred_windows[0, :2] for q in queries]), [q.gt_windows for q in queries]
    )
    report["grounding"] = {k: round(v, 2) for k, v in grounding.items()}
    report["num_queries"] = {name: len(_queries_in_range(queries, rng)) for name, rng in LENGTH_BUCKETS}
    return report


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSON-lines file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; pass the path of an existing .jsonl file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err}); expected a JSON-lines file") from err
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path} line {number} is not valid JSON ({err.msg} at column {err.colno}); "
                "each line must be one JSON object"
            ) from err
        if not isinstance(record, dict):
            raise ValueError(
                f"{path} line {number} holds a JSON {type(record).__name__}, expected an object like "
                '{"qid": ..., ...}'
            )
        records.append((number, record))
    if not records:
        raise ValueError(f"{path} contains no records; expected one JSON object per line")
    return records


def _index_by_qid(
    records: Iterable[tuple[str, Mapping[str, Any]]], windows_key: str, width: int, role: str
) -> dict[int | str, np.ndarray]:
    """``{qid: (K, width) windows}`` from located records, validating each one."""
    by_qid: dict[int | str, np.ndarray] = {}
    where: dict[int | str, str] = {}
    for location, record in records:
        if not isinstance(record, Mapping):
            raise ValueError(f"{location}: expected an object, got {type(record).__name__}")
        qid = record.get("qid")
        if isinstance(qid, bool) or not isinstance(qid, (int, str)):
            raise ValueError(f"{location}: 'qid' must be an int or a string, got {qid!r}")
        if qid in by_qid:
            raise ValueError(f"{location}: qid {qid!r} already appeared at {where[qid]}; each query must appear once")
        by_qid[qid] = _parse_windows(record.get(windows_key), windows_key, width, f"{location} (qid {qid!r})")
        where[qid] = location
    if not by_qid:
        raise ValueError(f"no {role} records were given")
    return by_qid


def _parse_windows(value: Any, key: str, width: int, location: str) -> np.ndarray:
    """Validate a non-empty list of ``width``-number windows and return it as (K, width) float64."""
    layout = "[start, end]" if width == 2 else "[start, end, score]"
    if not isinstance(value, list) or not value:
        got = "nothing" if value is None else repr(value)[:80]
        raise ValueError(f"{location}: '{key}' must be a non-empty list of {layout} windows, got {got}")
    for j, window in enumerate(value):
        ok = isinstance(window, list) and len(window) == width
        ok = ok and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in window)
        if not ok:
            raise ValueError(f"{location}: '{key}'[{j}] is {window!r}, expected {layout} with finite numbers")
    windows = np.asarray(value, dtype=np.float64)  # (K, width)
    if width == 2 and np.any(windows[:, 1] < windows[:, 0]):
        j = int(np.flatnonzero(windows[:, 1] < windows[:, 0])[0])
        raise ValueError(f"{location}: ground-truth window {value[j]!r} ends before it starts; expected start <= end")
    return windows


def _check_same_qids(gt_qids: set, pred_qids: set) -> None:
    """Raise a ValueError listing qids that only one side has."""
    missing = sorted(gt_qids - pred_qids, key=str)
    extra = sorted(pred_qids - gt_qids, key=str)
    if not missing and not extra:
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} ground-truth qid(s) have no prediction (first: {missing[:5]})")
    if extra:
        parts.append(f"{len(extra)} predicted qid(s) are not in the ground truth (first: {extra[:5]})")
    raise ValueError(
        "; ".join(parts) + ". Predictions must cover exactly the ground-truth queries: predict every "
        "query of the split you evaluate, and check that the ground-truth file is that split"
    )


# --------------------------------------------------------------------------- library-wide (VCMR)

VCMR_THRESHOLDS = (0.5, 0.7)
VCMR_RANKS = (1, 5, 10)  # R5: "found in the top 5", the compositional aim of the model card


def vcmr_metrics(ground_truth: list[dict[str, Any]], predictions: list[dict[str, Any]],
                 same_sentence: bool = False, library: bool = False) -> dict[str, float]:
    """Video corpus moment retrieval, as TVR's evaluation counts it: a query is a hit at rank k and
    IoU t when one of its first k predicted moments is in the right video and overlaps one of the
    ground-truth windows with IoU >= t. Keys ``VCMR-R{k}@{t}`` in percent.

    ``same_sentence``: a moment is also right in any other video annotated with the very same
    sentence (case and surrounding spaces ignored), for libraries where one sentence describes
    moments in many videos ("person opens the door"); keys ``VCMR-any-R{k}@{t}``.

    ``library``: a moment is right in any video where the sentence is true, as the ground truth's
    ``library_windows`` ({vid: windows}, which ``vidseek synth`` writes for test sentences) lists
    them: what a user of a library where many videos show the same thing counts; keys ``VCMR-true-R{k}@{t}``.

    ground_truth: records with ``qid``, ``vid``, ``relevant_windows``; predictions: records with
    ``qid`` and ``pred_moments`` ``[[vid, start, end, score], ...]`` best first.

    >>> gt = [{"qid": 1, "vid": "a", "relevant_windows": [[0, 10]]}]
    >>> vcmr_metrics(gt, [{"qid": 1, "pred_moments": [["b", 0, 10, 0.9], ["a", 1, 10, 0.8]]}])["VCMR-R1@0.5"]
    0.0
    >>> vcmr_metrics(gt, [{"qid": 1, "pred_moments": [["b", 0, 10, 0.9], ["a", 1, 10, 0.8]]}])["VCMR-R10@0.7"]
    100.0
    >>> gt2 = [{"qid": 1, "query": "waves", "vid": "a", "relevant_windows": [[0, 10]]},
    ...        {"qid": 2, "query": "Waves ", "vid": "b", "relevant_windows": [[2, 4]]}]
    >>> pred = [{"qid": 1, "pred_moments": [["b", 2, 4, 0.9]]}, {"qid": 2, "pred_moments": [["a", 0, 9, 0.9]]}]
    >>> vcmr_metrics(gt2, pred)["VCMR-R1@0.5"], vcmr_metrics(gt2, pred, same_sentence=True)["VCMR-any-R1@0.5"]
    (0.0, 100.0)
    >>> gt3 = [{"qid": 1, "vid": "a", "relevant_windows": [[0, 10]], "library_windows": {"a": [[0, 10]], "b": [[2, 4]]}}]
    >>> vcmr_metrics(gt3, [{"qid": 1, "pred_moments": [["b", 2, 4, 0.9]]}], library=True)["VCMR-true-R1@0.5"]
    100.0
    """
    preds = {str(p["qid"]): p for p in predictions}
    missing = [str(g["qid"]) for g in ground_truth if str(g["qid"]) not in preds]
    if missing:
        raise ValueError(f"{len(missing)} ground-truth queries have no prediction, e.g. qid {missing[0]}")
    if same_sentence and library:
        raise ValueError("vcmr_metrics: same_sentence and library are two ways of counting; ask for one")
    truth: dict[tuple[str, str], list] = {}  # (sentence key, vid) -> windows
    for g in ground_truth:
        key = str(g.get("query", "")).strip().lower() if same_sentence else str(g["qid"])
        if library:
            if not isinstance(g.get("library_windows"), dict):
                raise ValueError(f"ground-truth query {g['qid']} has no library_windows ({{vid: windows}} of every "
                                 f"video where it is true): only synthetic test sentences carry them")
            for vid, windows in g["library_windows"].items():
                truth.setdefault((key, str(vid)), []).extend(windows)
        else:
            truth.setdefault((key, str(g["vid"])), []).extend(g["relevant_windows"])
    hits = {(k, t): 0 for k in VCMR_RANKS for t in VCMR_THRESHOLDS}
    for g in ground_truth:
        key = str(g.get("query", "")).strip().lower() if same_sentence else str(g["qid"])
        best = []  # best IoU within a right video, per predicted rank
        for moment in preds[str(g["qid"])].get("pred_moments", []):
            vid, start, end = str(moment[0]), float(moment[1]), float(moment[2])
            windows = truth.get((key, vid))
            gt = np.asarray(windows, np.float64).reshape(-1, 2) if windows else None
            best.append(float(temporal_iou(np.array([[start, end]]), gt).max()) if gt is not None else 0.0)
        for k in VCMR_RANKS:
            top = max(best[:k], default=0.0)
            for t in VCMR_THRESHOLDS:
                hits[(k, t)] += top >= t
    n = max(len(ground_truth), 1)
    name = "VCMR-any" if same_sentence else "VCMR-true" if library else "VCMR"
    return {f"{name}-R{k}@{t}": round(100.0 * hits[(k, t)] / n, 2) for k in VCMR_RANKS for t in VCMR_THRESHOLDS}


def vcmr_ceiling(ground_truth: list[dict[str, Any]]) -> dict[str, float]:
    """The best right-video VCMR-R{k} (percent) a ranking can expect when each query is true in the
    videos its ``library_windows`` lists: a model that knows the sentence is true there has nothing
    to prefer the annotated video by, so with n such videos it puts it in the top k with chance
    min(1, k / n). Keys ``VCMR-ceiling-R{k}``.

    >>> vcmr_ceiling([{"library_windows": {"a": [[0, 1]]}}, {"library_windows": {v: [[0, 1]] for v in "abcd"}}])
    {'VCMR-ceiling-R1': 62.5, 'VCMR-ceiling-R5': 100.0, 'VCMR-ceiling-R10': 100.0}
    """
    counts = []
    for g in ground_truth:
        if not isinstance(g.get("library_windows"), dict):
            raise ValueError(f"ground-truth query {g.get('qid')} has no library_windows: the ceiling needs them")
        counts.append(max(len(g["library_windows"]), 1))
    n = np.asarray(counts, np.float64)
    return {f"VCMR-ceiling-R{k}": round(100.0 * float(np.minimum(1.0, k / n).mean()), 2) if len(n) else 0.0
            for k in VCMR_RANKS}
