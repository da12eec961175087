"""Fit and measure a bundle's calibration (``vidseek.engine.calibration``) on an indexed synthetic
world whose test sentences list every video where they are true (``vidseek synth``).

``collect`` searches every test sentence of the world and, as negatives, gibberish made of random
letters, and records the signals of each moment found with whether it is a true moment (IoU >= 0.5
with a window of its sentence in that video). ``fit_calibration`` fits the logistic model on such
moments; ``measure`` gives, on another world, the figures the model card reports: the share of
gibberish answered "no moment matches", the share of true sentences whose rank-1 moment is true and
kept, and the ROC AUC of the rank-1 score for "rank-1 is a true moment".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidseek.engine.calibration import Calibration, fit, roc_auc
from vidseek.spans import temporal_iou_paired

TRUE_IOU = 0.5


def gibberish(n: int, seed: int = 0) -> list[str]:
    """``n`` queries of one to three made-up words of random letters.

    >>> len(gibberish(3)), all(q.replace(" ", "").isalpha() for q in gibberish(3))
    (3, True)
    """
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return [" ".join("".join(rng.choice(letters, size=int(rng.integers(3, 9)))) for _ in range(int(rng.integers(1, 4))))
            for _ in range(n)]


@dataclass
class Observations:
    """Moments of many searches: their signals, whether each is true, and which query and rank."""

    signals: np.ndarray  # (N, 4) retrieval, span, distinct, words_per_token
    true: np.ndarray  # (N,) bool
    query: np.ndarray  # (N,) int: index of the search
    rank: np.ndarray  # (N,) int: 1 = best
    gibberish: np.ndarray  # (N,) bool: the query was gibberish


def _is_true(moment, windows: dict) -> bool:
    spans = windows.get(moment.video.rsplit("/", 1)[-1].rsplit(".", 1)[0], [])
    if not spans:
        return False
    iou = temporal_iou_paired(np.array([[moment.start, moment.end]] * len(spans), float), np.array(spans, float))
    return bool(iou.max() >= TRUE_IOU)


def collect(index, sentences: list[dict], noise: list[str], top_k: int = 10) -> Observations:
    """Search each of ``sentences`` (test records with ``query`` and ``library_windows`` {vid:
    windows}) and each of the ``noise`` queries in ``index`` (a ``vidseek.Index``), keeping every
    moment of the top ``top_k`` whatever its score (``min_score=0``)."""
    from vidseek.library.searcher import SearchTrace

    rows, true, query, rank, noisy = [], [], [], [], []
    searches = [(s["query"], s["library_windows"], False) for s in sentences] + [(q, {}, True) for q in noise]
    for q, (text, windows, is_noise) in enumerate(searches):
        trace = SearchTrace()
        for m in index.search(text, top_k=top_k, min_score=0.0, trace=trace):
            rows.append([m.retrieval, m.span, m.retrieval - trace.median_similarity, trace.words_per_token])
            true.append(not is_noise and _is_true(m, windows))
            query.append(q)
            rank.append(m.rank)
            noisy.append(is_noise)
    return Observations(np.array(rows, np.float64), np.array(true), np.array(query), np.array(rank), np.array(noisy))


def fit_calibration(obs: Observations, refuse: float = 0.99, fitted_on: dict | None = None) -> Calibration:
    """The logistic calibration fitted on every moment of ``obs`` (each search gives its top_k), with
    the lowest threshold (rounded up to 0.05) at which a ``refuse`` share of the gibberish searches
    of ``obs`` has no moment above it: as many true moments kept as rejecting nonsense allows."""
    weights, bias = fit(obs.signals, obs.true.astype(float))
    calibration = Calibration(weights=weights, bias=bias, threshold=None, fitted_on=fitted_on or {})
    relevance = calibration.relevance(obs.signals[obs.gibberish])
    best = np.array([relevance[obs.query[obs.gibberish] == q].max() for q in np.unique(obs.query[obs.gibberish])])
    threshold = float(np.ceil(np.quantile(best, refuse) * 20) / 20) if best.size else 0.5
    return Calibration(weights=weights, bias=bias, threshold=min(max(threshold, 0.05), 0.95), fitted_on=fitted_on or {})


def measure(obs: Observations, calibration: Calibration) -> dict[str, float]:
    """The figures of a calibration on ``obs`` (another world than the one it was fitted on).

    Rank 1 is taken under the calibration's own ordering (the search sorts by relevance).
    """
    relevance = calibration.relevance(obs.signals)
    top = {}
    for i, q in enumerate(obs.query):
        if q not in top or relevance[i] > relevance[top[q]]:
            top[q] = i
    first = np.array(sorted(top.values()))
    kept = relevance[first] >= (calibration.threshold or 0.0)
    noise, true_sentences = obs.gibberish[first], ~obs.gibberish[first]
    rank1_true = obs.true[first]
    return {
        "searches": int(len(first)), "gibberish": int(noise.sum()), "sentences": int(true_sentences.sum()),
        "gibberish_no_match": round(100.0 * float((~kept[noise]).mean()), 1) if noise.any() else None,
        "rank1_true": round(100.0 * float(rank1_true[true_sentences].mean()), 1),
        "rank1_true_kept": round(100.0 * float((rank1_true & kept)[true_sentences].mean()), 1),
        "sentences_no_match": round(100.0 * float((~kept[true_sentences]).mean()), 1),
        "roc_auc_rank1": round(roc_auc(relevance[first], rank1_true), 4),
    }
