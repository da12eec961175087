"""Span and timeline utilities shared by trainer, engine and evaluation (numpy only, torch-free).

Conventions
-----------
* A span is ``(start, end)`` in seconds with ``start <= end``.
* A feature sequence of length ``L`` covering a video of ``duration`` seconds is a set of
  equal bins: step ``i`` covers ``[i * duration / L, (i + 1) * duration / L)``.
* Index spans are inclusive: ``(i_s, i_e)`` covers steps ``i_s .. i_e``.
"""

from __future__ import annotations

import numpy as np


def resample_features(feats: np.ndarray, length: int) -> np.ndarray:
    """Resample a (T, D) feature sequence to (length, D) by averaging equal time bins.

    Bin ``i`` averages source steps ``floor(i*T/L) .. max(floor((i+1)*T/L), floor(i*T/L)+1)``,
    which pools when ``T > L`` and repeats steps when ``T < L`` (the LGI/VSLNet scheme).

    >>> x = np.arange(8, dtype=np.float32).reshape(8, 1)
    >>> resample_features(x, 4)[:, 0].tolist()
    [0.5, 2.5, 4.5, 6.5]
    >>> resample_features(x[:2], 4)[:, 0].tolist()
    [0.0, 0.0, 1.0, 1.0]
    """
    feats = np.asarray(feats)
    if feats.ndim != 2 or feats.shape[0] == 0:
        raise ValueError(f"expected a non-empty (T, D) feature array, got shape {feats.shape}")
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    t = feats.shape[0]
    starts = np.floor(np.arange(length) * t / length).astype(np.int64)
    ends = np.maximum(np.floor(np.arange(1, length + 1) * t / length).astype(np.int64), starts + 1)
    ends = np.minimum(ends, t)
    csum = np.concatenate([np.zeros((1, feats.shape[1]), np.float64), np.cumsum(feats, 0, dtype=np.float64)])
    out = (csum[ends] - csum[starts]) / (ends - starts)[:, None]
    return out.astype(feats.dtype if np.issubdtype(feats.dtype, np.floating) else np.float32)


def seconds_to_index(span: tuple[float, float], duration: float, length: int) -> tuple[int, int]:
    """Map a span in seconds to the inclusive index span of the bins it touches.

    >>> seconds_to_index((2.0, 4.0), 10.0, 10)
    (2, 3)
    >>> seconds_to_index((0.0, 10.0), 10.0, 5)
    (0, 4)
    """
    if duration <= 0:
        raise ValueError(f"duration must be > 0, got {duration}")
    s, e = float(span[0]), float(span[1])
    i_s = int(np.floor(s / duration * length))
    i_e = int(np.ceil(e / duration * length)) - 1
    i_s = min(max(i_s, 0), length - 1)
    i_e = min(max(i_e, i_s), length - 1)
    return i_s, i_e


def index_to_seconds(span: tuple[int, int], duration: float, length: int) -> tuple[float, float]:
    """Map an inclusive index span back to seconds: the start of bin i_s to the end of bin i_e.

    >>> index_to_seconds((2, 3), 10.0, 10)
    (2.0, 4.0)
    """
    step = duration / length
    return float(span[0] * step), float((span[1] + 1) * step)


def normalized_to_seconds(span, duration: float) -> tuple[float, float]:
    """Map a span normalised to [0, 1] of the video to seconds, clipped and ordered.

    >>> normalized_to_seconds((0.25, 0.5), 8.0)
    (2.0, 4.0)
    >>> normalized_to_seconds((0.6, 0.4), 10.0)
    (4.0, 6.0)
    """
    a, b = sorted((min(max(float(span[0]), 0.0), 1.0), min(max(float(span[1]), 0.0), 1.0)))
    return a * duration, b * duration


def span_xx_to_cw(spans) -> np.ndarray:
    """Convert (..., 2) spans from ``(start, end)`` to ``(center, width)``.

    >>> span_xx_to_cw([[0.0, 1.0], [2.0, 6.0]]).tolist()
    [[0.5, 1.0], [4.0, 4.0]]
    """
    xx = _as_span_array(spans, "spans")
    center = (xx[..., 0] + xx[..., 1]) * 0.5
    width = xx[..., 1] - xx[..., 0]
    return np.stack([center, width], axis=-1)


def span_cw_to_xx(spans) -> np.ndarray:
    """Convert (..., 2) spans from ``(center, width)`` to ``(start, end)``.

    >>> span_cw_to_xx([[0.5, 1.0], [4.0, 4.0]]).tolist()
    [[0.0, 1.0], [2.0, 6.0]]
    """
    cw = _as_span_array(spans, "spans")
    half = cw[..., 1] * 0.5
    return np.stack([cw[..., 0] - half, cw[..., 0] + half], axis=-1)


def temporal_iou(a, b) -> np.ndarray:
    """Pairwise temporal IoU between every span of ``a`` (N, 2) and of ``b`` (M, 2) -> (N, M).

    Spans are ``(start, end)``. A pair whose union is not positive (two empty spans, or a
    reversed span) gets IoU 0, so the result always lies in [0, 1].

    >>> temporal_iou([[0.0, 2.0], [5.0, 10.0]], [[0.0, 3.0], [0.0, 10.0]]).round(4).tolist()
    [[0.6667, 0.2], [0.0, 0.5]]
    >>> temporal_iou(np.zeros((0, 2)), [[0.0, 1.0]]).shape
    (0, 1)
    """
    a = _as_span_array(a, "a", ndim=2)  # (N, 2)
    b = _as_span_array(b, "b", ndim=2)  # (M, 2)
    len_a = a[:, 1] - a[:, 0]  # (N,)
    len_b = b[:, 1] - b[:, 0]  # (M,)
    left = np.maximum(a[:, None, 0], b[None, :, 0])  # (N, M)
    right = np.minimum(a[:, None, 1], b[None, :, 1])  # (N, M)
    inter = np.clip(right - left, 0.0, None)  # (N, M)
    union = len_a[:, None] + len_b[None, :] - inter  # (N, M)
    return _safe_ratio(inter, union)


def temporal_iou_paired(a, b) -> np.ndarray:
    """Elementwise temporal IoU between ``a[i]`` and ``b[i]``: (N, 2), (N, 2) -> (N,).

    The union is taken as the hull ``max(end) - min(start)``, which equals the true union
    whenever the spans overlap (and the IoU is 0 otherwise); this is the form QVHighlights'
    ``standalone_eval`` uses for R1, so threshold comparisons match it bit for bit.

    >>> temporal_iou_paired([[0.0, 2.0], [5.0, 10.0]], [[0.0, 3.0], [0.0, 10.0]]).round(4).tolist()
    [0.6667, 0.5]
    >>> temporal_iou_paired([[0.0, 1.0]], [[3.0, 4.0]]).tolist()
    [0.0]
    """
    a = _as_span_array(a, "a", ndim=2)
    b = _as_span_array(b, "b", ndim=2)
    if a.shape != b.shape:
        raise ValueError(
            f"temporal_iou_paired needs two (N, 2) arrays of the same shape, got {a.shape} and "
            f"{b.shape}; use temporal_iou for all pairs between different-sized sets"
        )
    inter = np.clip(np.minimum(a[:, 1], b[:, 1]) - np.maximum(a[:, 0], b[:, 0]), 0.0, None)  # (N,)
    hull = np.maximum(a[:, 1], b[:, 1]) - np.minimum(a[:, 0], b[:, 0])  # (N,)
    return _safe_ratio(inter, hull)


def temporal_nms(windows, scores, iou_threshold: float, top_k: int | None = None) -> np.ndarray:
    """Greedy non-maximum suppression over (N, 2) windows with (N,) scores.

    Windows are visited from the highest score down (ties keep input order); a window is
    dropped when its IoU with an already kept window is strictly greater than
    ``iou_threshold`` (the Moment-DETR convention), so kept windows are pairwise
    ``<= iou_threshold``. Returns the (K,) int64 indices of kept windows, best score first,
    at most ``top_k`` of them.

    >>> w = [[0.0, 10.0], [1.0, 10.0], [20.0, 30.0], [0.0, 9.0]]
    >>> temporal_nms(w, [0.9, 0.8, 0.7, 0.95], iou_threshold=0.5).tolist()
    [3, 2]
    >>> temporal_nms(w, [0.9, 0.8, 0.7, 0.95], iou_threshold=1.0, top_k=2).tolist()
    [3, 0]
    """
    windows = _as_span_array(windows, "windows", ndim=2)  # (N, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)  # (N,)
    if scores.shape[0] != windows.shape[0]:
        raise ValueError(f"got {windows.shape[0]} windows but {scores.shape[0]} scores; pass one score per window")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be >= 0 or None, got {top_k}")
    limit = windows.shape[0] if top_k is None else min(top_k, windows.shape[0])
    order = np.argsort(-scores, kind="stable")  # (N,) best first, ties in input order
    iou = temporal_iou(windows, windows)  # (N, N)
    alive = np.ones(windows.shape[0], dtype=bool)
    kept: list[int] = []
    for i in order:
        if len(kept) >= limit:
            break
        if not alive[i]:
            continue
        kept.append(int(i))
        alive &= iou[i] <= iou_threshold
    return np.asarray(kept, dtype=np.int64)


def _as_span_array(spans, name: str, ndim: int | None = None) -> np.ndarray:
    """Return ``spans`` as a float64 array whose last axis has size 2, or raise a clear error."""
    arr = np.asarray(spans, dtype=np.float64)
    if ndim == 2 and arr.shape == (0,):
        arr = arr.reshape(0, 2)
    if arr.ndim == 0 or arr.shape[-1] != 2 or (ndim is not None and arr.ndim != ndim):
        want = "(N, 2)" if ndim == 2 else "(..., 2)"
        raise ValueError(f"{name} must be a {want} array of (start, end) or (center, width) pairs, got shape {arr.shape}")
    return arr


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` where ``den > 0``, else 0."""
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)
