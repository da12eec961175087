"""FAISS index of clip embeddings: windows of a few seconds, in the joint text-video space.

A clip is a window of a video's steps (``windows``); its embedding (E,) is L2-normalised, so the
inner product is the cosine similarity. FAISS ids are ``video_id * 2**20 + window_number``
(``encode_ids`` / ``decode_ids``). The index is an ``IndexIDMap2`` over Flat, HNSW or IVF
(``choose_index``); it is derived data, always rebuildable from ``cache/<id>.clips.npy``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidseek.index import IndexStorageError
from vidseek.index.cache import FeatureCache, atomic_write

INDEX_FILE = "clips.faiss"
WINDOW_BITS = 20  # window numbers < 2**20 per video: 12 days of video at a 1 s stride
MAX_WINDOWS = 1 << WINDOW_BITS

# Exact search up to this many clips: a brute-force scan of 50k 512-d vectors is ~25M multiply-adds,
# about a millisecond per query on one CPU core, and needs no training or tuning.
FLAT_MAX_VECTORS = 50_000
# HNSW (CPU, above FLAT_MAX_VECTORS): M=32 links per node, efConstruction=80, efSearch=128. On
# unstructured random vectors (a worst case; real embeddings cluster) this gives recall@10 >= 0.95
# against exact search (measured, see tests/test_index_storage.py) at well under a millisecond per
# query; FAISS's default efSearch=16 gives ~0.6 there.
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 128
# IVF (GPU, where FAISS has no HNSW): nlist = 4 * sqrt(n) lists (FAISS's guideline range is 4..16
# sqrt(n)), at least 39 training points per list; nprobe = nlist / 4 (at least 32) lists visited per
# query, which keeps recall@10 >= 0.95 even on random vectors and is cheap on a GPU.
IVF_LISTS_PER_SQRT_N, IVF_MIN_POINTS_PER_LIST, IVF_PROBE_FRACTION, IVF_MIN_PROBE = 4, 39, 4, 32


class ClipIndexError(IndexStorageError):
    """A clip index that cannot be used as it is (wrong dimension, unreadable, bad input)."""


# ---- windows and ids -----------------------------------------------------------------------------
def windows(n_steps: int, rate: float, length_s: float, stride_s: float) -> list[tuple[int, int]]:
    """Windows ``(start_step, end_step)`` covering all ``n_steps`` steps sampled at ``rate`` steps/s.

    ``end_step`` is exclusive: ``states[start:end]`` is the window, spanning ``start / rate`` to
    ``end / rate`` seconds (unlike the inclusive index spans of ``vidseek.spans``). Windows are
    ``round(length_s * rate)`` steps long and start every ``round(stride_s * rate)`` steps; the last
    one is aligned to the end of the video, and a video shorter than one window gets one window.

    >>> windows(23, 1.0, 10, 5)
    [(0, 10), (5, 15), (10, 20), (13, 23)]
    >>> windows(20, 1.0, 10, 5)
    [(0, 10), (5, 15), (10, 20)]
    >>> windows(4, 5.0, 4.0, 2.0)
    [(0, 4)]
    >>> windows(0, 5.0, 4.0, 2.0)
    []
    """
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    if not (rate > 0 and length_s > 0 and stride_s > 0):
        raise ValueError(f"rate, length_s and stride_s must be > 0, got {rate}, {length_s}, {stride_s}")
    if stride_s > length_s:
        raise ValueError(f"stride {stride_s} s is longer than the window {length_s} s, which would leave "
                         "parts of the video in no window; use a stride <= the window length")
    length = max(1, round(length_s * rate))
    stride = max(1, min(length, round(stride_s * rate)))
    if n_steps == 0:
        return []
    if n_steps <= length:
        return [(0, n_steps)]
    out = [(s, s + length) for s in range(0, n_steps - length + 1, stride)]
    if out[-1][1] < n_steps:
        out.append((n_steps - length, n_steps))
    return out


def encode_ids(video_id: int, window_numbers: np.ndarray) -> np.ndarray:
    """FAISS ids (W,) int64 of windows ``window_numbers`` (W,) of one video.

    >>> encode_ids(3, np.arange(2)).tolist()
    [3145728, 3145729]
    """
    window_numbers = np.asarray(window_numbers, np.int64)
    if video_id < 0 or video_id >= 1 << (63 - WINDOW_BITS):
        raise ClipIndexError(f"video id {video_id} is outside 0 .. 2**{63 - WINDOW_BITS}")
    if window_numbers.size and (window_numbers.min() < 0 or window_numbers.max() >= MAX_WINDOWS):
        raise ClipIndexError(f"window numbers must be in 0 .. {MAX_WINDOWS - 1}, got up to {window_numbers.max()}; "
                             "the video is too long for the stride: use a longer --stride")
    return (np.int64(video_id) << WINDOW_BITS) + window_numbers


def decode_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(video ids, window numbers) of FAISS ids, same shape; -1 (no result) stays -1 in both.

    >>> v, w = decode_ids(np.array([3145729, -1]))
    >>> v.tolist(), w.tolist()
    ([3, -1], [1, -1])
    """
    ids = np.asarray(ids, np.int64)
    missing = ids < 0
    video = np.where(missing, -1, ids >> WINDOW_BITS)
    window = np.where(missing, -1, ids & (MAX_WINDOWS - 1))
    return video, window


# ---- index choice --------------------------------------------------------------------------------
@dataclass(frozen=True)
class IndexChoice:
    """Which FAISS structure to build for ``n`` vectors, and its search parameters."""

    kind: str  # "flat" (exact) | "hnsw" (graph, CPU) | "ivf" (inverted lists, GPU)
    gpu: bool  # search on a GPU copy of the index
    nlist: int = 0  # IVF: number of inverted lists (k-means centroids)
    nprobe: int = 0  # IVF: lists visited per query
    m: int = 0  # HNSW: links per node
    ef_construction: int = 0  # HNSW: candidate list size while building
    ef_search: int = 0  # HNSW: candidate list size while searching (>= k)

    def describe(self) -> str:
        where = "GPU" if self.gpu else "CPU"
        if self.kind == "ivf":
            return f"IVF{self.nlist},Flat nprobe={self.nprobe} ({where})"
        if self.kind == "hnsw":
            return f"HNSW{self.m} efConstruction={self.ef_construction} efSearch={self.ef_search} ({where})"
        return f"Flat, exact ({where})"


def gpu_available() -> bool:
    """True when this faiss build has GPU support and sees at least one GPU."""
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def choose_index(n_vectors: int, dim: int, flat_max: int = FLAT_MAX_VECTORS, gpu: bool | None = None) -> IndexChoice:
    """The index for ``n_vectors`` clips of dimension ``dim``.

    Flat (exact) up to ``flat_max`` vectors; above it HNSW on CPU, IVF on GPU (FAISS has no GPU
    HNSW). ``gpu=None`` uses a GPU when faiss-gpu is installed and sees one.

    >>> choose_index(1000, 256, gpu=False).kind, choose_index(100_000, 256, gpu=False).kind
    ('flat', 'hnsw')
    >>> choose_index(1_000_000, 256, gpu=True).describe()
    'IVF4000,Flat nprobe=1000 (GPU)'
    """
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    gpu = gpu_available() if gpu is None else gpu
    if n_vectors <= flat_max:
        return IndexChoice("flat", gpu)
    if gpu:
        nlist = max(1, min(round(IVF_LISTS_PER_SQRT_N * math.sqrt(n_vectors)), n_vectors // IVF_MIN_POINTS_PER_LIST))
        nprobe = min(nlist, max(IVF_MIN_PROBE, nlist // IVF_PROBE_FRACTION))
        return IndexChoice("ivf", True, nlist=nlist, nprobe=nprobe)
    return IndexChoice("hnsw", False, m=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION, ef_search=HNSW_EF_SEARCH)


def _build(choice: IndexChoice, dim: int, train: np.ndarray | None = None):
    """An empty CPU ``IndexIDMap2`` for ``choice`` (IVF is trained on ``train`` (N, dim))."""
    import faiss

    if choice.kind == "flat":
        inner = faiss.IndexFlatIP(dim)
    elif choice.kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, choice.m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = choice.ef_construction
        inner.hnsw.efSearch = choice.ef_search
    elif choice.kind == "ivf":
        quantizer = faiss.IndexFlatIP(dim)
        inner = faiss.IndexIVFFlat(quantizer, dim, choice.nlist, faiss.METRIC_INNER_PRODUCT)
        inner.own_fields = True
        quantizer.this.disown()
        inner.train(train)
        inner.nprobe = choice.nprobe
    else:
        raise ValueError(f"unknown index kind {choice.kind!r}")
    index = faiss.IndexIDMap2(inner)
    index.own_fields = True
    inner.this.disown()
    return index


def _normalise(x: np.ndarray, what: str, dim: int) -> np.ndarray:
    """(N, dim) float32 rows scaled to unit L2 norm; refuses wrong shapes and zero rows."""
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ClipIndexError(f"{what}: expected shape (N, {dim}), got {x.shape}")
    if not np.isfinite(x).all():
        raise ClipIndexError(f"{what}: the array has NaN or inf values")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ClipIndexError(f"{what}: {int((norms == 0).sum())} rows are all zeros and have no direction")
    return np.ascontiguousarray(x / norms)


# ---- the index -----------------------------------------------------------------------------------
class ClipIndex:
    """Inner-product FAISS index of L2-normalised clip embeddings (E = ``dim``) of a library.

    ``add`` also stores each video's embeddings as float16 in ``cache/<id>.clips.npy``; the vectors
    indexed are exactly those float16 values, so a rebuild from the cache gives identical scores.
    The structure follows ``choose_index(ntotal)`` and is rebuilt when it should change (Flat to
    HNSW/IVF past ``flat_max``, IVF re-trained when the library has grown 4x).
    """

    def __init__(self, index_dir: str | Path, dim: int, flat_max: int = FLAT_MAX_VECTORS, gpu: bool | None = None):
        self.path = Path(index_dir) / INDEX_FILE
        self.dim = int(dim)
        self.flat_max = int(flat_max)
        self.gpu = gpu_available() if gpu is None else bool(gpu)
        self.embeddings = FeatureCache(index_dir, kind="clips")
        self.choice = choose_index(0, self.dim, self.flat_max, self.gpu)
        self._index = _build(self.choice, self.dim)
        self._gpu_index = None  # search copy on the GPU, dropped on every change

    # -- state --------------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        """All FAISS ids (N,) int64 in the index."""
        import faiss

        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def video_ids(self) -> set[int]:
        """Ids of the videos that have clips in the index."""
        return set(np.unique(self.ids() >> WINDOW_BITS).tolist())

    def _changed(self) -> None:
        self._gpu_index = None

    # -- writes -------------------------------------------------------------------------------
    def add(self, video_id: int, embeddings: np.ndarray) -> None:
        """Store and index the clip embeddings (W, E) of one video, window w getting id
        ``encode_ids(video_id, w)``; replaces what the video had."""
        unit = _normalise(embeddings, f"clip embeddings of video {video_id}", self.dim)
        if unit.shape[0] == 0:
            raise ClipIndexError(f"clip embeddings of video {video_id}: got 0 windows; every video has at least one")
        ids = encode_ids(video_id, np.arange(unit.shape[0]))
        self.embeddings.put(video_id, unit)
        stored = unit.astype(np.float16).astype(np.float32)
        if self.choice.kind == "hnsw" and video_id in self.video_ids():
            self.rebuild()  # HNSW cannot remove: rebuild from the cache, which now has the new vectors
            return
        self._remove_from_index([video_id])
        self._index.add_with_ids(stored, ids)
        self._changed()
        if self._needs_new_structure():
            self.rebuild()

    def remove_video(self, video_id: int) -> None:
        """Drop every clip of ``video_id`` from the index (its cache file stays; see ``forget``)."""
        self.remove_videos([video_id])

    def remove_videos(self, video_ids) -> None:
        """Drop every clip of these videos (HNSW: one rebuild from the cache for all of them)."""
        present = self.video_ids()
        gone = [int(v) for v in video_ids if int(v) in present]
        if not gone:
            return
        if self.choice.kind == "hnsw":
            self.rebuild(sorted(present - set(gone)))
        else:
            self._remove_from_index(gone)
            self._changed()

    def forget(self, video_id: int) -> bool:
        """Delete the stored embeddings of a video the catalog no longer lists."""
        return self.embeddings.remove(video_id)

    def _remove_from_index(self, video_ids: list[int]) -> None:
        import faiss

        for v in video_ids:  # IDMap2 translates the selector to its internal ids
            lo = int(v) << WINDOW_BITS
            self._index.remove_ids(faiss.IDSelectorRange(lo, lo + MAX_WINDOWS))

    def _needs_new_structure(self) -> bool:
        wanted = choose_index(self.ntotal, self.dim, self.flat_max, self.gpu)
        if wanted.kind != self.choice.kind:
            return True
        return wanted.kind == "ivf" and wanted.nlist >= 2 * self.choice.nlist

    def rebuild(self, video_ids=None) -> None:
        """Re-create the index from the stored embeddings of ``video_ids`` (default: the videos in
        the index now), with the structure ``choose_index`` picks for their count."""
        video_ids = sorted(self.video_ids() if video_ids is None else {int(v) for v in video_ids})
        parts = [np.asarray(self.embeddings.get(v, shape=(None, self.dim)), np.float32) for v in video_ids]
        vectors = np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)
        ids = np.concatenate([encode_ids(v, np.arange(len(p))) for v, p in zip(video_ids, parts)]) if parts \
            else np.zeros(0, np.int64)
        choice = choose_index(len(vectors), self.dim, self.flat_max, self.gpu)
        index = _build(choice, self.dim, train=vectors if choice.kind == "ivf" else None)
        if len(vectors):
            index.add_with_ids(vectors, ids)
        self._index, self.choice = index, choice
        self._changed()

    def reconcile(self, ok_video_ids) -> tuple[list[int], list[int]]:
        """Make the index hold exactly the videos ``ok_video_ids`` (the catalog's ``ok`` videos):
        drops the others and adds missing ones from the cache. Returns (added, removed) ids.

        After a crash the saved index may lag behind the catalog; this repairs it in memory
        (a writer then ``save``s it)."""
        wanted, present = {int(v) for v in ok_video_ids}, self.video_ids()
        added, removed = sorted(wanted - present), sorted(present - wanted)
        if self.choice.kind == "hnsw" and removed:
            self.rebuild(wanted)
            return added, removed
        self.remove_videos(removed)
        for v in added:
            vectors = np.asarray(self.embeddings.get(v, shape=(None, self.dim)), np.float32)
            self._index.add_with_ids(vectors, encode_ids(v, np.arange(len(vectors))))
            self._changed()
        if self._needs_new_structure():
            self.rebuild()
        return added, removed

    # -- search -------------------------------------------------------------------------------
    def _searcher(self):
        if not self.gpu or self.choice.kind == "hnsw":
            return self._index
        if self._gpu_index is None:
            import faiss

            self._gpu_resources = getattr(self, "_gpu_resources", None) or faiss.StandardGpuResources()
            self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self._index)
            if self.choice.kind == "ivf":
                faiss.GpuParameterSpace().set_index_parameter(self._gpu_index, "nprobe", self.choice.nprobe)
        return self._gpu_index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``k`` clips nearest to each query (Q, E) (normalised here).

        Returns scores (Q, k) float32 (cosine similarity, best first), video ids (Q, k) int64 and
        window numbers (Q, k) int64; missing results (fewer than k clips) are -inf, -1, -1.
        """
        import faiss

        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = _normalise(queries, "queries", self.dim)
        if self.ntotal == 0:
            return (np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1, np.int64),
                    np.full((len(q), k), -1, np.int64))
        if self.choice.kind == "hnsw":
            faiss.downcast_index(self._index.index).hnsw.efSearch = max(self.choice.ef_search, k)
        scores, ids = self._searcher().search(q, k)
        video, window = decode_ids(ids)
        scores = np.where(ids < 0, -np.inf, scores).astype(np.float32)
        return scores, video, window

    # -- files --------------------------------------------------------------------------------
    def save(self) -> Path:
        """Write the index to ``index_dir/clips.faiss`` atomically (temporary file + os.replace)."""
        import faiss

        return atomic_write(self.path, lambda tmp: faiss.write_index(self._index, str(tmp)))

    def load(self) -> bool:
        """Read ``clips.faiss`` if it exists (False when there is none, leaving the index empty)."""
        if not self.path.is_file():
            return False
        index = read_index(self.path)
        if index.d != self.dim:
            raise ClipIndexError(f"{self.path} holds {index.d}-d clip embeddings but this index expects "
                                 f"{self.dim}-d ones (another model?): re-index with `vidseek index --rebuild`")
        self._index, self.choice = index, _choice_of(index, self.gpu)
        self._changed()
        return True


def read_index(path: str | Path):
    """The ``IndexIDMap2`` stored at ``path``; ``ClipIndexError`` when it is not one or unreadable."""
    import faiss

    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unknown error"
        raise ClipIndexError(f"{path} is unreadable ({first}); delete it: `vidseek index` rebuilds it "
                             "from the cached clip embeddings") from None
    if not isinstance(index, faiss.IndexIDMap2):
        index = faiss.downcast_index(index)
        if not isinstance(index, faiss.IndexIDMap2):
            raise ClipIndexError(f"{path} holds a {type(index).__name__}, not a vidseek clip index "
                                 "(IndexIDMap2); delete it and re-run `vidseek index`")
    return index


def stored_ids(index_dir: str | Path) -> np.ndarray | None:
    """FAISS ids (N,) in ``index_dir/clips.faiss``, or None when there is no such file."""
    import faiss

    path = Path(index_dir) / INDEX_FILE
    if not path.is_file():
        return None
    return faiss.vector_to_array(read_index(path).id_map).astype(np.int64)


def _choice_of(index, gpu: bool) -> IndexChoice:
    """The ``IndexChoice`` describing a loaded index, with vidseek's search parameters applied."""
    import faiss

    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = max(inner.hnsw.efSearch, HNSW_EF_SEARCH)
        return IndexChoice("hnsw", False, m=HNSW_M, ef_construction=inner.hnsw.efConstruction,
                           ef_search=inner.hnsw.efSearch)
    if isinstance(inner, faiss.IndexIVF):
        return IndexChoice("ivf", gpu, nlist=int(inner.nlist), nprobe=int(inner.nprobe))
    if isinstance(inner, faiss.IndexFlat):
        return IndexChoice("flat", gpu)
    raise ClipIndexError(f"unsupported inner index {type(inner).__name__} in a clip index; "
                         "delete clips.faiss and re-run `vidseek index`")
