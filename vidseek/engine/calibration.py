"""A score that means something: a bundle's calibration maps the raw signals of a moment to a
relevance in [0, 1] that behaves like the probability that it is a true moment. Numpy only.

The signals of a moment (``SIGNALS``), all available to every bundle at search time:

- ``retrieval``: cosine similarity of the query and the moment's best clip;
- ``span``: the head's confidence in the span (zero-shot: the peak frame-query similarity);
- ``distinct``: how far that clip stands out from the query's other candidates (``retrieval``
  minus the median similarity of the clips FAISS returned): a query that matches nothing in
  particular is about as close to every clip;
- ``words_per_token``: the query's words per token the tokenizer made of them (special tokens
  left out): 1 for words the vocabulary knows whole, low for gibberish cut into pieces;
- ``known_words``: the share of the query's words that the bundle's training sentences used
  (``words.vocabulary`` of bundle.json, see ``vidseek.vocabulary.known_share``): a model trained on a closed world
  has never learnt what "dog" looks like, however well its text encoder knows the word. 1 for a
  bundle that records no vocabulary (open-vocabulary models such as CLIP).

The calibration is a logistic model over them, fitted on held-out data of the bundle's training
domain (``fit``; ``scripts/calibrate_builtin.py``) and stored in bundle.json under ``calibration``
with the threshold below which search answers "no moment matches"::

    {"kind": "logistic", "signals": [...], "weights": [...], "bias": b, "threshold": t, "fitted_on": {...}}

``signals`` names the signals it uses, in the order of its weights (any of ``SIGNALS``).

A bundle without one gets ``UNCALIBRATED``: relevance = the mean of retrieval and span (the
ranking vidseek always had), no threshold.

>>> c = Calibration(weights=(4.0, 2.0), bias=-3.0, threshold=0.5, signals=("retrieval", "span"))
>>> [round(float(x), 3) for x in c.relevance(np.array([[0.9, 0.8, 0.1, 1.0, 1.0], [0.1, 0.1, 0.0, 0.3, 1.0]]))]
[0.9, 0.083]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

SIGNALS = ("retrieval", "span", "distinct", "words_per_token", "known_words")


@dataclass(frozen=True)
class Calibration:
    """Relevance = sigmoid(bias + weights . signals); ``threshold`` (None: none) is the relevance
    below which a moment does not count as a match."""

    weights: tuple[float, ...]
    bias: float
    threshold: float | None
    kind: str = "logistic"  # "logistic", or "mean" (UNCALIBRATED: the mean of retrieval and span)
    signals: tuple[str, ...] = SIGNALS
    fitted_on: dict = field(default_factory=dict)  # what it was fitted on (world, queries, figures)

    @classmethod
    def from_meta(cls, meta: dict) -> Calibration:
        """The calibration of a bundle.json (``UNCALIBRATED`` when it has none)."""
        stored = meta.get("calibration")
        if stored is None:
            return UNCALIBRATED
        return cls(tuple(float(w) for w in stored["weights"]), float(stored["bias"]),
                   None if stored.get("threshold") is None else float(stored["threshold"]),
                   stored.get("kind", "logistic"), tuple(stored.get("signals", SIGNALS[:len(stored["weights"])])),
                   stored.get("fitted_on", {}))

    def to_meta(self) -> dict:
        d = asdict(self)
        return {**d, "weights": list(self.weights), "signals": list(self.signals)}

    @property
    def calibrated(self) -> bool:
        return self.kind == "logistic"

    def relevance(self, signals: np.ndarray) -> np.ndarray:
        """(N, len(SIGNALS)) signals, in the order of SIGNALS -> (N,) relevance in [0, 1]."""
        x = np.asarray(signals, np.float64)
        if self.kind == "mean":
            return np.clip((x[:, 0] + x[:, 1]) / 2, 0.0, 1.0)
        x = x[:, [SIGNALS.index(name) for name in self.signals]]
        z = self.bias + x @ np.asarray(self.weights, np.float64)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


UNCALIBRATED = Calibration(weights=(0.5, 0.5), bias=0.0, threshold=None, kind="mean", signals=("retrieval", "span"))


def problems(stored) -> list[str]:
    """What is wrong with a bundle.json ``calibration`` entry (empty: it can be used)."""
    if stored is None:
        return []
    if not isinstance(stored, dict):
        return [f"'calibration' must be an object, got {stored!r}"]
    out = []
    weights = stored.get("weights")
    signals = stored.get("signals", SIGNALS[:len(weights)] if isinstance(weights, list) else SIGNALS)
    if not (isinstance(signals, list | tuple) and signals and all(name in SIGNALS for name in signals)
            and len(set(signals)) == len(signals)):
        out.append(f"calibration.signals must name signals among {list(SIGNALS)}, each once, got {signals!r}")
        signals = SIGNALS
    if not (isinstance(weights, list) and len(weights) == len(signals)
            and all(isinstance(w, (int, float)) and np.isfinite(w) for w in weights)):
        out.append(f"calibration.weights must be {len(signals)} finite numbers (one per signal), got {weights!r}")
    if not (isinstance(stored.get("bias"), (int, float)) and np.isfinite(stored["bias"])):
        out.append(f"calibration.bias must be a finite number, got {stored.get('bias')!r}")
    threshold = stored.get("threshold")
    if threshold is not None and not (isinstance(threshold, (int, float)) and 0 <= threshold <= 1):
        out.append(f"calibration.threshold must be a number in [0, 1], got {threshold!r}")
    return out


def words_per_token(query: str, n_tokens: int) -> float:
    """Words of ``query`` per token of it (special tokens not counted), at most 1.

    >>> words_per_token("person opens door", 3), words_per_token("qwzx", 4)
    (1.0, 0.25)
    """
    return min(1.0, len(query.split()) / max(1, n_tokens))


def fit(signals: np.ndarray, labels: np.ndarray, l2: float = 1e-3, steps: int = 50) -> tuple[tuple[float, ...], float]:
    """Logistic regression of ``labels`` (N,) 0/1 on ``signals`` (N, K) by Newton's method with a
    small L2 penalty on the weights: ``(weights, bias)``.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2000, 1)); y = (rng.random(2000) < 1 / (1 + np.exp(-(3 * x[:, 0] - 1)))).astype(float)
    >>> w, b = fit(x, y); round(w[0]), round(b)
    (3, -1)
    """
    x = np.concatenate([np.asarray(signals, np.float64), np.ones((len(signals), 1))], axis=1)
    y = np.asarray(labels, np.float64)
    beta = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2 * len(y))
    penalty[-1] = 0.0  # no penalty on the bias
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ beta, -50, 50)))
        gradient = x.T @ (p - y) + penalty * beta
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty)
        step = np.linalg.solve(hessian + 1e-9 * np.eye(len(beta)), gradient)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return tuple(float(v) for v in beta[:-1]), float(beta[-1])


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the 0/1 ``labels`` (the Mann-Whitney statistic,
    ties counted half).

    >>> roc_auc(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 0, 1, 0]))
    0.75
    """
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        raise ValueError("ROC AUC needs both positive and negative examples")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))
