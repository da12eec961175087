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
