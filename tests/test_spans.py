"""Property and example tests for vidseek.spans (numpy only, seeded, offline)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidseek.spans import (
    index_to_seconds,
    normalized_to_seconds,
    resample_features,
    seconds_to_index,
    span_cw_to_xx,
    span_xx_to_cw,
    temporal_iou,
    temporal_iou_paired,
    temporal_nms,
)

# Derandomized: the same examples every run, no example database written to disk.
SEEDED = settings(derandomize=True, database=None, deadline=None, max_examples=150)

coord = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)


@st.composite
def span_arrays(draw, min_size: int = 1, max_size: int = 8) -> np.ndarray:
    """(N, 2) float64 spans with start <= end."""
    pairs = draw(st.lists(st.tuples(coord, coord), min_size=min_size, max_size=max_size))
    return np.sort(np.asarray(pairs, dtype=np.float64).reshape(-1, 2), axis=1)


# ------------------------------------------------------------------------------------ IoU


@SEEDED
@given(span_arrays(), span_arrays())
def test_iou_is_symmetric_and_bounded(a, b):
    iou = temporal_iou(a, b)
    assert iou.shape == (len(a), len(b))
    np.testing.assert_array_equal(iou, temporal_iou(b, a).T)
    assert np.all((iou >= 0.0) & (iou <= 1.0))


@SEEDED
@given(span_arrays())
def test_iou_with_itself_is_one_for_non_degenerate_spans(a):
    a = a[a[:, 1] > a[:, 0]]
    np.testing.assert_array_equal(np.diag(temporal_iou(a, a)), np.ones(len(a)))
    np.testing.assert_array_equal(temporal_iou_paired(a, a), np.ones(len(a)))


@SEEDED
@given(st.integers(1, 8).flatmap(lambda n: st.tuples(span_arrays(n, n), span_arrays(n, n))))
def test_paired_iou_is_the_diagonal_of_pairwise_iou(pair):
    a, b = pair
    paired = temporal_iou_paired(a, b)
    assert np.all((paired >= 0.0) & (paired <= 1.0))
    np.testing.assert_allclose(paired, np.diag(temporal_iou(a, b)), rtol=1e-12, atol=1e-12)


def test_iou_known_values():
    a = [[0.0, 10.0], [5.0, 15.0], [20.0, 20.0]]
    b = [[0.0, 10.0], [10.0, 20.0]]
    expected = [[1.0, 0.0], [1 / 3, 1 / 3], [0.0, 0.0]]  # touching spans and empty spans score 0
    np.testing.assert_allclose(temporal_iou(a, b), expected)


def test_iou_rejects_wrong_shapes_with_the_shape_received():
    with pytest.raises(ValueError, match=r"\(N, 2\).*\(3,\)"):
        temporal_iou([0.0, 1.0, 2.0], [[0.0, 1.0]])
    with pytest.raises(ValueError, match="same shape"):
        temporal_iou_paired([[0.0, 1.0]], [[0.0, 1.0], [1.0, 2.0]])


# ------------------------------------------------------------------------------------ NMS


@st.composite
def grid_span_arrays(draw, max_size: int = 12) -> np.ndarray:
    """(N, 2) spans on a small integer grid, so exact IoU ties with the threshold are common."""
    pairs = draw(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), max_size=max_size))
    return np.sort(np.asarray(pairs, dtype=np.float64).reshape(-1, 2), axis=1)


@SEEDED
@given(
    st.one_of(span_arrays(min_size=0, max_size=12), grid_span_arrays()),
    st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.floats(0.0, 1.0)),
    st.one_of(st.none(), st.integers(0, 12)),
    st.randoms(use_true_random=False),
)
def test_nms_keeps_mutually_separated_windows_best_first(windows, threshold, top_k, rnd):
    scores = np.array([rnd.choice([0.1, 0.5, 0.9, rnd.random()]) for _ in range(len(windows))])  # with ties
    kept = temporal_nms(windows, scores, threshold, top_k=top_k)
    assert kept.dtype == np.int64 and len(set(kept.tolist())) == len(kept)
    if top_k is not None:
        assert len(kept) <= top_k
    assert np.all(np.diff(scores[kept]) <= 0), "kept indices must be sorted by descending score"
    iou = temporal_iou(windows[kept], windows[kept])
    off_diag = iou[~np.eye(len(kept), dtype=bool)]
    assert np.all(off_diag <= threshold)
    if top_k is None:  # greedy completeness: every dropped window overlaps a kept one too much
        dropped = np.setdiff1d(np.arange(len(windows)), kept)
        if len(dropped):
            assert np.all(temporal_iou(windows[dropped], windows[kept]).max(axis=1) > threshold)


def test_nms_keeps_windows_whose_iou_equals_the_threshold():
    # IoU([0,10], [5,10]) = 0.5: only IoU strictly above the threshold suppresses (Moment-DETR rule)
    assert temporal_nms([[0.0, 10.0], [5.0, 10.0]], [0.9, 0.8], iou_threshold=0.5).tolist() == [0, 1]
    assert temporal_nms([[0.0, 10.0], [5.0, 10.0]], [0.9, 0.8], iou_threshold=0.49).tolist() == [0]


def test_nms_breaks_score_ties_by_input_order():
    windows = [[0.0, 10.0], [0.0, 10.0], [50.0, 60.0]]
    assert temporal_nms(windows, [0.5, 0.5, 0.5], iou_threshold=0.7).tolist() == [0, 2]


def test_nms_validates_its_arguments():
    with pytest.raises(ValueError, match="2 windows but 1 scores"):
        temporal_nms([[0, 1], [1, 2]], [0.5], 0.5)
    with pytest.raises(ValueError, match="iou_threshold"):
        temporal_nms([[0, 1]], [0.5], 1.5)
    assert temporal_nms(np.zeros((0, 2)), [], 0.5).tolist() == []


# ------------------------------------------------------------------------------------ formats


@SEEDED
@given(span_arrays())
def test_center_width_round_trip(xx):
    cw = span_xx_to_cw(xx)
    assert np.all(cw[:, 1] >= 0)
    np.testing.assert_allclose(span_cw_to_xx(cw), xx, rtol=1e-12, atol=1e-9)


def test_center_width_accepts_any_leading_shape():
    xx = np.array([[[0.0, 4.0], [2.0, 3.0]]])  # (1, 2, 2)
    assert span_xx_to_cw(xx).tolist() == [[[2.0, 4.0], [2.5, 1.0]]]
    assert span_cw_to_xx((2.0, 4.0)).tolist() == [0.0, 4.0]


# ------------------------------------------------------------------------------------ timeline


@st.composite
def timeline_cases(draw):
    duration = draw(st.floats(0.5, 600.0))
    length = draw(st.integers(1, 256))
    a, b = sorted(draw(st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0))))
    return (a * duration, b * duration), duration, length


@SEEDED
@given(timeline_cases())
def test_seconds_index_round_trip_covers_span_within_one_bin(case):
    span, duration, length = case
    i_s, i_e = seconds_to_index(span, duration, length)
    assert 0 <= i_s <= i_e <= length - 1
    start, end = index_to_seconds((i_s, i_e), duration, length)
    step = duration / length
    eps = 1e-9 * duration  # float rounding of s / duration * length
    assert start <= span[0] + eps and end >= span[1] - eps, "the bins must cover the span"
    assert span[0] - start <= step + eps and end - span[1] <= step + eps, "at most one bin wider per side"


@SEEDED
@given(st.integers(1, 64), st.integers(1, 64), st.floats(-5.0, 5.0))
def test_resample_keeps_a_constant_signal_constant(t, length, value):
    feats = np.full((t, 3), value, dtype=np.float32)
    out = resample_features(feats, length)
    assert out.shape == (length, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, value, rtol=1e-6, atol=1e-6)


@SEEDED
@given(st.integers(1, 16), st.integers(1, 8), st.booleans(), st.integers(0, 2**32 - 1))
def test_resample_preserves_the_mean_when_bins_tile_evenly(base, factor, pool, seed):
    feats = np.random.default_rng(seed).normal(size=(base * factor if pool else base, 4))
    length = base if pool else base * factor  # pool factor:1 or repeat 1:factor
    out = resample_features(feats, length)
    np.testing.assert_allclose(out.mean(axis=0), feats.mean(axis=0), rtol=1e-9, atol=1e-9)


def test_resample_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(T, D\)"):
        resample_features(np.zeros(5), 3)
    with pytest.raises(ValueError, match="length must be >= 1"):
        resample_features(np.zeros((5, 2)), 0)


@SEEDED
@given(st.floats(-0.5, 1.5), st.floats(-0.5, 1.5), st.floats(0.1, 1000.0))
def test_normalized_to_seconds_is_ordered_and_inside_the_video(a, b, duration):
    s, e = normalized_to_seconds((a, b), duration)
    assert 0.0 <= s <= e <= duration
