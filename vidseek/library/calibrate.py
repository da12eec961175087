"""Fit and measure a bundle's calibration (``vidseek.engine.calibration``) on an indexed synthetic
world whose test sentences list every video where they are true (``vidseek synth``).

``collect`` searches every test sentence of the world and, as negatives, gibberish made of random
letters (``gibberish``) and plain sentences about things the world does not hold ("a dog", "someone
flips a pancake": ``unseen_queries``), and records the signals of each moment found with whether
it is a true moment (IoU >= 0.5 with a window of its sentence in that video). ``fit_calibration``
fits the logistic model on such moments; ``measure`` gives, on another world, the figures the
model card reports: the share of gibberish and of unseen-word queries answered "no moment
matches", the share of true sentences whose rank-1 moment is true and kept, and the ROC AUC of
the rank-1 score for "rank-1 is a true moment".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidseek.engine.calibration import SIGNALS, Calibration, fit, roc_auc
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


# Real things and doings a closed synthetic world does not hold (words its sentences never use are
# kept by ``unseen_queries``): the out-of-domain queries a user types ("a dog", "fire").
UNSEEN_NOUNS = ("dog", "cat", "bird", "horse", "car", "bicycle", "guitar", "pancake", "fire", "pizza", "phone",
                "baby", "tree", "snow", "ocean", "knife", "bread", "coffee", "flower", "piano", "kitchen", "football",
                "umbrella", "bus", "rain", "candle", "cake", "sofa", "mirror", "bottle")
UNSEEN_VERBS = ("feeds", "rides", "plays", "cooks", "flips", "drives", "eats", "cuts", "paints", "washes", "kicks",
                "carries", "pets", "hugs", "fixes")


def unseen_queries(n: int, vocabulary: frozenset[str] | set[str], seed: int = 0) -> list[str]:
    """``n`` plain queries, each with at least one word not in ``vocabulary`` (the training
    sentences' words): "a dog", "fire", "someone feeds the cat", "a person flips a pancake".

    >>> qs = unseen_queries(4, {"a", "person", "the", "someone"}, seed=1)
    >>> len(qs), all(any(w not in {"a", "person", "the", "someone"} for w in q.split()) for q in qs)
    (4, True)
    """
    rng = np.random.default_rng(seed)
    nouns = [w for w in UNSEEN_NOUNS if w not in vocabulary]
    verbs = [w for w in UNSEEN_VERBS if w not in vocabulary]
    subjects = [w for w in ("a person", "someone", "the person", "a man", "a woman") if w.split()[-1] in vocabulary] \
        or ["someone"]
    forms = ("{noun}", "a {noun}", "the {noun}", "{subject} {verb} the {noun}", "{subject} {verb} a {noun}",
             "a {noun} on the floor", "{verb} a {noun}")
    out = []
    for _ in range(n):
        form = forms[int(rng.integers(len(forms)))]
        out.append(form.format(noun=nouns[int(rng.integers(len(nouns)))], verb=verbs[int(rng.integers(len(verbs)))],
                               subject=subjects[int(rng.integers(len(subjects)))]))
    return out


@dataclass
class Observations:
    """Moments of many searches: their signals, whether each is true, and which query and rank."""

    signals: np.ndarray  # (N, len(SIGNALS)) in the order of vidseek.engine.calibration.SIGNALS
    true: np.ndarray  # (N,) bool
    query: np.ndarray  # (N,) int: index of the search
    rank: np.ndarray  # (N,) int: 1 = best
    gibberish: np.ndarray  # (N,) bool: the query was gibberish
    unseen: np.ndarray  # (N,) bool: the query was about things the world does not hold (``unseen_queries``)


def _is_true(moment, windows: dict) -> bool:
    spans = windows.get(moment.video.rsplit("/", 1)[-1].rsplit(".", 1)[0], [])
    if not spans:
        return False
    iou = temporal_iou_paired(np.array([[moment.start, moment.end]] * len(spans), float), np.array(spans, float))
    return bool(iou.max() >= TRUE_IOU)


def collect(index, sentences: list[dict], noise: list[str], unseen: list[str] = (), top_k: int = 10) -> Observations:
    """Search each of ``sentences`` (test records with ``query`` and ``library_windows`` {vid:
    windows}), each of the ``noise`` (gibberish) and ``unseen`` (``unseen_queries``) queries in
    ``index`` (a ``vidseek.Index``), keeping every moment of the top ``top_k`` whatever its score
    (``min_score=0``); the moments of noise and unseen queries are all false."""
    from vidseek.library.searcher import SearchTrace

    rows, true, query, rank, kinds = [], [], [], [], []
    searches = ([(s["query"], s["library_windows"], "sentence") for s in sentences]
                + [(q, {}, "gibberish") for q in noise] + [(q, {}, "unseen") for q in unseen])
    for q, (text, windows, kind) in enumerate(searches):
        trace = SearchTrace()
        for m in index.search(text, top_k=top_k, min_score=0.0, trace=trace):
            rows.append([m.retrieval, m.span, m.retrieval - trace.median_similarity, trace.words_per_token,
                         trace.known_words])
            true.append(kind == "sentence" and _is_true(m, windows))
            query.append(q)
            rank.append(m.rank)
            kinds.append(kind)
    kinds = np.array(kinds)
    return Observations(np.array(rows, np.float64).reshape(-1, len(SIGNALS)), np.array(true, bool), np.array(query),
                        np.array(rank), kinds == "gibberish", kinds == "unseen")


def fit_calibration(obs: Observations, refuse: float = 0.99, refuse_unseen: float = 0.9,
                    fitted_on: dict | None = None) -> Calibration:
    """The logistic calibration fitted on every moment of ``obs`` (each search gives its top_k), with
    the lowest threshold (rounded up to 0.05) at which a ``refuse`` share of the gibberish searches
    and a ``refuse_unseen`` share of the unseen-word searches of ``obs`` have no moment above it: as
    many true moments kept as rejecting nonsense allows. (Unseen-word queries share words with true
    ones, "someone feeds the cat"; refusing 99 % of them too would refuse true sentences as well.)
    Signals that do not vary in ``obs`` (``known_words`` without unseen queries) are left out."""
    used = [i for i in range(obs.signals.shape[1]) if np.ptp(obs.signals[:, i]) > 0]
    weights, bias = fit(obs.signals[:, used], obs.true.astype(float))
    signals = tuple(SIGNALS[i] for i in used)
    calibration = Calibration(weights=weights, bias=bias, threshold=None, signals=signals, fitted_on=fitted_on or {})
    relevance = calibration.relevance(obs.signals)
    threshold = 0.05
    for kind, share in ((obs.gibberish, refuse), (obs.unseen, refuse_unseen)):
        best = np.array([relevance[kind & (obs.query == q)].max() for q in np.unique(obs.query[kind])])
        if best.size:
            threshold = max(threshold, float(np.ceil(np.quantile(best, share) * 20) / 20))
    return Calibration(weights=weights, bias=bias, threshold=min(threshold, 0.95), signals=signals,
                       fitted_on=fitted_on or {})


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
    noise, unseen = obs.gibberish[first], obs.unseen[first]
    true_sentences = ~noise & ~unseen
    rank1_true = obs.true[first]
    return {
        "searches": int(len(first)), "gibberish": int(noise.sum()), "unseen": int(unseen.sum()),
        "sentences": int(true_sentences.sum()),
        "gibberish_no_match": round(100.0 * float((~kept[noise]).mean()), 1) if noise.any() else None,
        "unseen_no_match": round(100.0 * float((~kept[unseen]).mean()), 1) if unseen.any() else None,
        "rank1_true": round(100.0 * float(rank1_true[true_sentences].mean()), 1),
        "rank1_true_kept": round(100.0 * float((rank1_true & kept)[true_sentences].mean()), 1),
        "sentences_no_match": round(100.0 * float((~kept[true_sentences]).mean()), 1),
        "roc_auc_rank1": round(roc_auc(relevance[first], rank1_true), 4),
    }
