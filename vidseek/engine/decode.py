"""Turn model outputs into ranked spans in seconds (numpy only, torch-free).

Every backend (PyTorch, onnxruntime, TensorRT) calls these functions, so post-processing
cannot drift between them. Index spans are inclusive (see ``vidseek.spans``).
"""

from __future__ import annotations

import numpy as np

from vidseek.engine.registry import family, objective
from vidseek.spans import index_to_seconds, normalized_to_seconds, temporal_nms


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max()
    return x - np.log(np.exp(x).sum())


def span_log_probs(start_logits: np.ndarray, end_logits: np.ndarray, length: int | None = None) -> np.ndarray:
    """Joint log-probability log P_start(i) + log P_end(j) of every index span, -inf where j < i.

    start_logits, end_logits: (T,) scores of one sequence whose first ``length`` steps are valid.
    Returns (length, length). This is ExCL's eqs. 2-4: argmax of S_start(i) + S_end(j), i <= j.

    >>> lp = span_log_probs(np.array([0., 5., 0.]), np.array([0., 0., 5.]))
    >>> tuple(int(i) for i in np.unravel_index(np.argmax(lp), lp.shape))
    (1, 2)
    """
    n = len(start_logits) if length is None else int(length)
    if n < 1:
        raise ValueError("cannot decode a span from an empty sequence")
    ls = _log_softmax(np.asarray(start_logits, np.float64)[:n])
    le = _log_softmax(np.asarray(end_logits, np.float64)[:n])
    joint = ls[:, None] + le[None, :]
    joint[np.tril_indices(n, -1)] = -np.inf
    return joint


def topk_index_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    length: int | None = None,
    k: int = 10,
    nms_iou: float | None = 0.7,
) -> list[tuple[int, int, float]]:
    """The k most probable index spans ``(i_s, i_e, probability)``, best first, i_s <= i_e.

    Near-duplicates are removed by temporal NMS at ``nms_iou`` (None keeps them).

    >>> topk_index_spans(np.array([0., 9., 0., 0.]), np.array([0., 0., 9., 0.]), k=1)[0][:2]
    (1, 2)
    """
    joint = span_log_probs(start_logits, end_logits, length)
    n = joint.shape[0]
    flat = joint.ravel()
    pool = min(flat.size, max(k * 20, 50))
    cand = np.argpartition(-flat, pool - 1)[:pool]
    cand = cand[np.isfinite(flat[cand])]
    cand = cand[np.argsort(-flat[cand], kind="stable")]
    spans = np.stack([cand // n, cand % n], 1)
    scores = np.exp(flat[cand])
    if nms_iou is not None and len(spans) > 1:
        keep = temporal_nms(np.stack([spans[:, 0], spans[:, 1] + 1], 1).astype(np.float64), scores, nms_iou, top_k=k)
    else:
        keep = np.arange(min(k, len(spans)))
    return [(int(spans[i, 0]), int(spans[i, 1]), float(scores[i])) for i in keep[:k]]


def best_index_spans(start_logits: np.ndarray, end_logits: np.ndarray,
                     lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The most probable index span of every row of a batch, at once: ``(B, 2)`` inclusive steps
    and ``(B,)`` joint probabilities, as ``topk_index_spans(row, k=1)`` finds for each row (among
    exactly tied spans, this takes the earliest).

    start_logits, end_logits: (B, T); row b is valid on its first ``lengths[b]`` (>= 1) steps.

    >>> spans, p = best_index_spans(np.array([[0., 9., 0.], [9., 0., 0.]]), np.array([[0., 0., 9.], [0., 9., 0.]]),
    ...                             np.array([3, 2]))
    >>> spans.tolist(), p.round(3).tolist()
    ([[1, 2], [0, 1]], [1.0, 1.0])
    """
    s, e = np.asarray(start_logits, np.float64), np.asarray(end_logits, np.float64)
    lengths = np.asarray(lengths, np.int64)
    if s.ndim != 2 or s.shape != e.shape or lengths.shape != s.shape[:1]:
        raise ValueError(f"expected (B, T) start and end logits and (B,) lengths, got {s.shape}, {e.shape}, {lengths.shape}")
    if len(lengths) and not (1 <= lengths.min() and lengths.max() <= s.shape[1]):
        raise ValueError(f"every length must lie in [1, {s.shape[1]}], got {lengths.min()}..{lengths.max()}")
    t = s.shape[1]
    valid = np.arange(t)[None, :] < lengths[:, None]

    def log_softmax(x):
        x = np.where(valid, x, -np.inf)
        x = x - x.max(1, keepdims=True)
        return x - np.log(np.exp(x).sum(1, keepdims=True))

    joint = log_softmax(s)[:, :, None] + log_softmax(e)[:, None, :]  # (B, T start, T end)
    joint = np.where(np.triu(np.ones((t, t), bool)), joint, -np.inf).reshape(len(s), t * t)
    best = joint.argmax(1)
    return np.stack([best // t, best % t], 1), np.exp(joint[np.arange(len(s)), best])


def expected_span(start_logits: np.ndarray, end_logits: np.ndarray, length: int | None = None) -> tuple[float, float]:
    """ExCL-reg inference (eqs. 5-8): expected start and end, normalised to [0, 1].

    t_s = E_{P_start}[t], t_e = E_{P_start}[E_{P_end|start}[t]] where P_end|start is the softmax of
    the end scores over j >= i. Step i starts at i/length and ends at (i+1)/length.
    """
    n = len(start_logits) if length is None else int(length)
    s = np.asarray(start_logits, np.float64)[:n]
    e = np.asarray(end_logits, np.float64)[:n]
    p_s = np.exp(_log_softmax(s))
    t_start = np.arange(n) / n
    t_end = (np.arange(n) + 1) / n
    cond = np.where(np.triu(np.ones((n, n), bool)), e[None, :], -np.inf)  # (i, j), j >= i
    cond = np.exp(cond - cond.max(1, keepdims=True))
    cond /= cond.sum(1, keepdims=True)
    ts = float(p_s @ t_start)
    te = float(p_s @ (cond @ t_end))
    return ts, te


def decode_start_end(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    duration: float,
    length: int | None = None,
    objective: str = "clf",
    k: int = 10,
) -> list[list[float]]:
    """Ranked windows ``[[start_s, end_s, score], ...]`` in seconds from ExCL start/end scores.

    ``clf``: the k most probable spans. ``reg``: the expected span first (score 1.0), then the
    most probable discrete spans as lower-ranked alternatives (their joint probability < 1).
    """
    n = len(start_logits) if length is None else int(length)
    windows = [[*index_to_seconds((i, j), duration, n), p] for i, j, p in topk_index_spans(start_logits, end_logits, n, k)]
    if objective == "reg":
        ts, te = expected_span(start_logits, end_logits, n)
        windows = [[*normalized_to_seconds((ts, te), duration), 1.0]] + windows[: k - 1]
    elif objective != "clf":
        raise ValueError(f"objective must be 'clf' or 'reg', got {objective!r}")
    return [[round(a, 4), round(b, 4), round(float(p), 6)] for a, b, p in windows]


def attention_mass(frame_att: np.ndarray, span: tuple[float, float], length: int | None = None) -> float:
    """Share of the frame attention (T,) that falls inside a normalised span, in [0, 1].

    >>> attention_mass(np.array([0.1, 0.4, 0.4, 0.1]), (0.25, 0.75))
    0.8
    """
    n = len(frame_att) if length is None else int(length)
    att = np.asarray(frame_att, np.float64)[:n]
    centers = (np.arange(n) + 0.5) / n
    inside = (centers >= span[0]) & (centers <= span[1])
    total = att.sum()
    return round(float(att[inside].sum() / total), 6) if total > 0 else 0.0


def decode_regression(
    span: np.ndarray,
    frame_att: np.ndarray,
    duration: float,
    length: int | None = None,
) -> list[list[float]]:
    """PLPNet: the regressed sentence span in seconds, scored by the frame attention mass inside it."""
    a, b = sorted(float(x) for x in np.clip(span, 0.0, 1.0))
    s, e = normalized_to_seconds((a, b), duration)
    return [[round(s, 4), round(e, 4), attention_mass(frame_att, (a, b), length)]]


def _special(token: str) -> bool:
    """A tokenizer's marker rather than a word: [CLS], [SEP], <|endoftext|>, <pad>, ..."""
    return (token.startswith("[") and token.endswith("]")) or (token.startswith("<") and token.endswith(">"))


PHRASE_FOCUS = 1.0  # a phrase's word: attended to more than this many times an even spread over the words


def decode_phrases(
    phrase_spans: np.ndarray,
    word_att: np.ndarray,
    phrase_weights: np.ndarray,
    tokens: list[str],
    duration: float,
) -> list[dict]:
    """PLPNet phrases: each phrase's span in seconds, its weight γ, and the words that formed it.

    phrase_spans (N, 2) normalised, word_att (N, M) word attention α, phrase_weights (N,) γ. A
    phrase's words are those it attends to more than an even spread over the sentence's words would
    (``PHRASE_FOCUS`` / words), in sentence order; a phrase whose attention is spread evenly (over
    the special tokens too) is the whole sentence, and says so by listing every word.

    >>> tokens = ["[CLS]", "someone", "opens", "the", "door", "[SEP]"]
    >>> att = np.array([[0.0, 0.1, 0.5, 0.1, 0.3, 0.0], [1 / 6] * 6])
    >>> [p["words"] for p in decode_phrases(np.array([[0.1, 0.4], [0.0, 1.0]]), att, np.array([0.6, 0.4]), tokens, 10.0)]
    [['opens', 'door'], ['someone', 'opens', 'the', 'door']]
    """
    out = []
    words_of = [i for i, t in enumerate(tokens) if not _special(t)]
    for n, (span, alpha) in enumerate(zip(phrase_spans, word_att)):
        s, e = normalized_to_seconds(sorted(float(x) for x in span), duration)
        weights = [round(float(a), 4) for a in alpha[: len(tokens)]]
        focus = PHRASE_FOCUS / max(len(words_of), 1)
        top = [tokens[i] for i in words_of if weights[i] > focus] or [tokens[i] for i in words_of]
        out.append({"phrase": n, "span": [round(s, 4), round(e, 4)], "weight": round(float(phrase_weights[n]), 4),
                    "words": top, "word_weights": [[t, w] for t, w in zip(tokens, weights)]})
    return out


SIMILARITY_SMOOTH = 3  # zero-shot: steps of the centred moving average (0.6 s at 5 steps/s)
SIMILARITY_ALPHA = 0.5  # zero-shot: the span threshold lies this far from the curve's median to its peak


def smooth_curve(curve: np.ndarray, width: int = SIMILARITY_SMOOTH) -> np.ndarray:
    """Centred moving average over ``width`` steps (odd); near the ends, over the steps that exist.

    >>> smooth_curve(np.array([0., 3., 0., 0.]), 3).tolist()
    [1.5, 1.0, 1.0, 0.0]
    """
    if width < 1 or width % 2 == 0:
        raise ValueError(f"the smoothing width must be an odd number of steps >= 1, got {width}")
    x = np.asarray(curve, np.float64)
    kernel = np.ones(width)
    return np.convolve(x, kernel, "same") / np.convolve(np.ones_like(x), kernel, "same")


def similarity_span(curve: np.ndarray, smooth: int = SIMILARITY_SMOOTH,
                    alpha: float = SIMILARITY_ALPHA) -> tuple[int, int, float]:
    """Zero-shot span of a frame-query similarity curve (T,): ``(first step, last step inclusive, peak)``.

    The rule: smooth the curve with a centred moving average of ``smooth`` steps (``smooth_curve``);
    the peak is the smoothed maximum (the first on ties); the threshold is
    ``median + alpha * (peak - median)`` of the smoothed curve; the span is the contiguous run of
    steps around the peak whose smoothed similarity stays at or above the threshold. A flat curve
    (peak = median) gives the whole curve. The returned peak is the smoothed maximum, the span's
    confidence.

    >>> curve = np.array([0.1, 0.1, 0.2, 0.8, 0.9, 0.85, 0.2, 0.1, 0.1])
    >>> similarity_span(curve, smooth=1)  # median 0.2, threshold 0.55
    (3, 5, 0.9)
    >>> similarity_span(np.array([0.2, 0.2, 0.3, 0.3, 0.7, 0.2, 0.3, 0.3, 0.2]))  # a one-step spike is flattened
    (3, 5, 0.4333)
    """
    x = np.asarray(curve, np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"expected a non-empty 1-d similarity curve, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("the similarity curve has non-finite values")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    s = smooth_curve(x, min(smooth, 2 * ((len(x) - 1) // 2) + 1))  # a window no wider than the curve
    peak = int(np.argmax(s))
    threshold = np.median(s) + alpha * (s[peak] - np.median(s))
    below = s < threshold - 1e-12  # the tolerance keeps a flat curve whole despite rounding
    left = peak - int(np.argmax(below[:peak][::-1])) if below[:peak].any() else 0
    right = peak + int(np.argmax(below[peak:])) - 1 if below[peak:].any() else len(s) - 1
    return left, right, round(float(s[peak]), 4)


def decode_similarity(similarity: np.ndarray, duration: float, length: int | None = None) -> list[list[float]]:
    """Zero-shot: the span of the first ``length`` steps of a similarity curve, in seconds, scored by its peak.

    >>> decode_similarity(np.array([0.1, 0.1, 0.2, 0.8, 0.9, 0.85, 0.2, 0.1, 0.1, 0.0]), 9.0, 9)
    [[3.0, 6.0, 0.85]]
    """
    n = len(similarity) if length is None else int(length)
    i, j, peak = similarity_span(np.asarray(similarity)[:n])
    s, e = index_to_seconds((i, j), duration, n)
    return [[round(s, 4), round(e, 4), peak]]


def decode_best(model_name: str, out: dict[str, np.ndarray], durations, lengths) -> list[tuple[float, float, float]]:
    """The best window ``(start_s, end_s, score)`` of every row b of a batch of outputs, as
    ``decode_windows(model_name, row b, durations[b], lengths[b], k=1)[0]`` gives it; ExCL-clf rows
    are decoded all at once (``best_index_spans``), other models row by row.
    """
    if objective(model_name) == "clf":
        spans, probs = best_index_spans(out["start_logits"], out["end_logits"], lengths)
        return [(*(round(x, 4) for x in index_to_seconds((int(i), int(j)), float(d), int(n))), round(float(p), 6))
                for (i, j), p, d, n in zip(spans, probs, durations, lengths)]
    return [tuple(decode_windows(model_name, {k: v[b] for k, v in out.items()}, float(durations[b]), int(lengths[b]), 1)[0])
            for b in range(len(lengths))]


def decode_windows(model_name: str, out: dict[str, np.ndarray], duration: float, length: int, k: int = 10) -> list[list[float]]:
    """Ranked windows in seconds for ONE item's outputs (PyTorch or any runtime), by model family.

    out holds that item's arrays: start_logits/end_logits (T,) for ExCL, span (2,) and frame_att (T,) for PLPNet,
    similarity (T,) for the zero-shot CLIP model (``clip-zero-shot`` in ``vidseek.engine.registry``).
    """
    kind = family(model_name).spans
    if kind == "regression":
        return decode_regression(out["span"], out["frame_att"], duration, length)
    if kind == "similarity":
        return decode_similarity(out["similarity"], duration, length)
    return decode_start_end(out["start_logits"], out["end_logits"], duration, length, objective(model_name), k)
