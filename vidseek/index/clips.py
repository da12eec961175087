"""FAISS index of clip embeddings: windows of a few seconds, in the joint text-video space.

A clip is a window of a video's steps (``IndexSettings.windows``); its embedding (E,) is L2-normalised, so the
inner product is the cosine similarity. FAISS ids are ``video_id * 2**20 + window_number``
(``encode_ids`` / ``decode_ids``). The structure depends on the library size (``choose_index``):
an ``IndexIDMap2`` over Flat (exact) or HNSW, or an ``IndexIVFFlat`` or ``IndexIVFPQFastScan`` (re-ranked
exactly from the cached embeddings) that holds the ids itself (FAISS's IDMap cannot remove from IVF). The index is derived data: ``cache/<id>.clips.npy`` holds
every video's embeddings, so it can always be rebuilt.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from vidseek.index import IndexStorageError
from vidseek.atomic import atomic_write, atomic_write_text
from vidseek.index.cache import CacheError, FeatureCache, storage_errors
from vidseek.index.catalog import OK_KEY_MODULUS

INDEX_FILE = "clips.faiss"
KEY_FILE = "clips.key.json"  # ClipIndex.video_key of the clips.faiss saved beside it, with its (inode, size, mtime)
WINDOW_BITS = 20  # window numbers < 2**20 per video: 12 days of video at a 1 s stride
MAX_WINDOWS = 1 << WINDOW_BITS

# Exact search up to this many clips: a brute-force scan of 50k 512-d vectors is ~25M multiply-adds,
# a few milliseconds per query on one CPU core, and needs no training or tuning.
FLAT_MAX_VECTORS = 50_000
# Above it on CPU: HNSW, M=32 links per node, efConstruction=80, efSearch by size (below). Measured
# recall@10 against exact search (200 queries near stored clips), added the writer's way (one video
# at a time, threshold lowered), on clustered random vectors: 100 windows per video around a random
# centre, within-video cosine ~0.8, every new video a direction never seen before (a worst case):
#   n=3k d=32: 1.000 (1.000 on unstructured random vectors); n=40k d=64: 0.989 at 0.2 ms/query.
# HNSW cannot remove vectors: removal rebuilds it from the cache (batch them: ``remove_videos``), so
# its build cost matters. `vidseek bench` (docs/benchmarks.md), 169k 256-d clips of 10k synthetic
# videos, one loaded 2-core CPU, 100 queries near stored clips, recall@10 / recall@50 vs exact:
#   efConstruction=200: build 500 s; efSearch 64/128/256/512: 0.995/0.998/1.000/1.000 and
#                       0.90/0.94/0.97/0.99 at 0.7-5 ms per query
#   efConstruction=80:  build 134 s; efSearch 64/128/256/512: 0.996/0.997/0.999/1.000 and
#                       0.84/0.87/0.92/0.96 at 0.5-3.4 ms per query
#   efConstruction=40:  build  95 s; recall@50 0.76-0.92
# The top 10 (the clips of the matching video) are found either way; ranks beyond are near-ties of
# unrelated clips. 80 builds 3.7x faster, which decides whether a removal at 100k videos (1.7M
# clips) takes half an hour or two on such a machine; the wider search (efSearch 512 above
# HNSW_EF_SMALL_N clips) buys the deeper ranks back for ~2 ms.
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 256
HNSW_EF_SMALL_N, HNSW_EF_SEARCH_LARGE = 100_000, 512
# Above it on GPU (FAISS has no GPU HNSW): IVF-Flat, nlist = 4 * sqrt(n) lists (at least 39 training
# points each), nprobe = nlist / 4 (at least 32) lists per query, which is cheap on a GPU. IVF
# centroids do not follow new kinds of content, so it is re-trained whenever the library has doubled
# since its training. Same measurement: n=3k d=32: 0.986 (0.968 unstructured); n=40k d=64: 0.90,
# because new clusters kept arriving after training (one training on all 40k gives 0.99).
IVF_LISTS_PER_SQRT_N, IVF_MIN_POINTS_PER_LIST, IVF_PROBE_DIVISOR, IVF_MIN_PROBE = 4, 39, 4, 32
IVF_RETRAIN_GROWTH = 2.0
# Above this many clips on CPU: IVF-SQ8, because HNSW keeps every vector in float32 plus its graph
# (~(4 * dim + 8 * M) bytes a clip: ~1 KB for 128-d, 17 GB for the 17M clips of a million videos),
# while IVF-SQ8 keeps each clip as dim bytes (8-bit scalar quantization) and an 8-byte id (136 bytes
# for 128-d: 2.2 GB at 17M). Its inner products are within ~5e-3 of the exact ones, so it needs no
# re-ranking: a search reads nothing but the index. Measured on 1M clustered 128-d clips (60k
# videos of 17 windows, the bench's distribution), 200 queries near stored clips, one thread,
# recall@10 / @20 / @50 against exact search, by lists probed of 4039:
#   IVF-SQ8 (as built): 64: 0.94 / 0.86 / 0.52 at 0.31 ms; 256: 0.97 / 0.92 / 0.70 at 1.0 ms;
#                       512: 0.98 / 0.95 / 0.80 at 2.0 ms; 1009: 0.98 / 0.98 / 0.90 at 4.1 ms (~16 ns a code)
#   IVF-PQ64x4fs, the shortlist of 400 re-ranked from float16 vectors in memory: the same recall
#                       (+-0.01) at 0.36 / 0.77 / 1.3 / 2.1 ms (~8 ns a code), and 40 bytes a clip;
#   IVF-PQ64x8, re-ranked alike: the same recall at 0.9 / 2.9 / 5.4 / 12.6 ms.
# IVF-PQ's re-ranking reads each shortlisted clip's float16 embeddings from its video's file in the
# cache: on a million videos those are ~400 files a query that the page cache rarely holds (measured:
# ~0.5 ms a cold file, 200 ms a query), so past HNSW the default is IVF-SQ8; IVF-PQ (large="ivfpq")
# remains for machines whose memory cannot hold 136 bytes a clip. Recall follows the probes: lists as
# IVF-Flat, probes nlist / 4 too, but at most IVF_SCAN_CODES clips a query: at 17M clips nlist / 4
# would scan 4M (~65 ms) for the ranks past 20, which are near-ties of unrelated clips.
HNSW_MAX_VECTORS = 2_000_000
PQ_DIMS_PER_CODE, PQ_BITS, RERANK_FACTOR = 2, 4, 8
IVF_SCAN_CODES = 600_000  # IVF-SQ8 / IVF-PQ on CPU: clips scanned a query at most (the probes' share)
REBUILD_CHUNK = 100_000  # clips added at a time by a rebuild
# An IVF rebuild trains its lists (and PQ codebooks) on a sample of whole videos, drawn with a fixed
# seed, of at least this many clips per list (FAISS's k-means itself takes at most 256 a centroid),
# then adds every clip REBUILD_CHUNK at a time: 17M 128-d clips need ~1 GB of training vectors rather
# than 8.7 GB for all of them.
IVF_TRAIN_PER_LIST, IVF_TRAIN_MIN = 64, 65_536
# Fewer queries than this are searched on one OpenMP thread (FAISS parallelises over queries).
SERIAL_QUERIES = 2
LARGE_KINDS = ("auto", "hnsw", "ivf", "ivfsq", "ivfpq")
IVF_KINDS = ("ivf", "ivfsq", "ivfpq")  # trained on the vectors they hold: re-trained as the library grows


class ClipIndexError(IndexStorageError):
    """A clip index that cannot be used as it is (wrong dimension, unreadable, bad input)."""


# ---- windows and ids -----------------------------------------------------------------------------
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

    kind: str  # "flat" (exact) | "ivf" (inverted lists) | "ivfsq" (lists of 8-bit codes) | "ivfpq" (lists of PQ
    #            codes, re-ranked) | "hnsw" (graph)
    gpu: bool  # search on a GPU copy of the index
    nlist: int = 0  # IVF: number of inverted lists (k-means centroids)
    nprobe: int = 0  # IVF: lists visited per query
    m: int = 0  # HNSW: links per node
    ef_construction: int = 0  # HNSW: candidate list size while building
    ef_search: int = 0  # HNSW: candidate list size while searching (>= k)
    pq_m: int = 0  # IVF-PQ: sub-quantizers
    pq_bits: int = 0  # IVF-PQ: bits a sub-quantizer (4: fast-scan codes)

    def describe(self) -> str:
        where = "GPU" if self.gpu else "CPU"
        if self.kind == "ivfpq":
            fast = "fs" if self.pq_bits == PQ_BITS else ""
            return f"IVF{self.nlist},PQ{self.pq_m}x{self.pq_bits}{fast} nprobe={self.nprobe}, re-ranked exactly ({where})"
        if self.kind == "ivfsq":
            return f"IVF{self.nlist},SQ8 nprobe={self.nprobe} ({where})"
        if self.kind == "ivf":
            return f"IVF{self.nlist},Flat nprobe={self.nprobe} ({where})"
        if self.kind == "hnsw":
            return f"HNSW{self.m} efConstruction={self.ef_construction} efSearch={self.ef_search} ({where})"
        return f"Flat, exact ({where})"


def gpu_available() -> bool:
    """True when this faiss build has GPU support and sees at least one GPU."""
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def hnsw_ef_search(n_vectors: int) -> int:
    """The HNSW search breadth (efSearch) for an index of ``n_vectors`` clips (see the constants).

    >>> hnsw_ef_search(80_000), hnsw_ef_search(2_000_000)
    (256, 512)
    """
    return HNSW_EF_SEARCH if n_vectors <= HNSW_EF_SMALL_N else HNSW_EF_SEARCH_LARGE


def pq_codes(dim: int) -> int:
    """IVF-PQ sub-quantizers for ``dim``: dim / PQ_DIMS_PER_CODE, or the largest divisor of dim below it.

    >>> pq_codes(128), pq_codes(256), pq_codes(30)
    (64, 128, 15)
    """
    target = max(1, dim // PQ_DIMS_PER_CODE)
    return next(m for m in range(target, 0, -1) if dim % m == 0)


def choose_index(n_vectors: int, dim: int, flat_max: int = FLAT_MAX_VECTORS, gpu: bool | None = None,
                 large: str = "auto", hnsw_max: int = HNSW_MAX_VECTORS) -> IndexChoice:
    """The index for ``n_vectors`` clips of dimension ``dim``.

    Flat (exact) up to ``flat_max`` vectors; above it ``large``: "auto" is HNSW on CPU up to
    ``hnsw_max`` vectors and IVF-SQ8 beyond, and IVF on GPU (see the constants above for parameters
    and measured recall). ``gpu=None`` searches on a GPU when faiss-gpu is installed and sees one;
    HNSW, IVF-SQ8 and IVF-PQ (built for the CPU's memory) always run on CPU.

    >>> choose_index(1000, 256, gpu=False).describe()
    'Flat, exact (CPU)'
    >>> choose_index(80_000, 256, gpu=False).describe()
    'HNSW32 efConstruction=80 efSearch=256 (CPU)'
    >>> choose_index(2_000_000, 256, gpu=False).describe()
    'HNSW32 efConstruction=80 efSearch=512 (CPU)'
    >>> choose_index(1_000_000, 256, gpu=True).describe()
    'IVF4000,Flat nprobe=1000 (GPU)'
    >>> choose_index(17_000_000, 128, gpu=False).describe()
    'IVF16492,SQ8 nprobe=582 (CPU)'
    >>> choose_index(170_000, 128, gpu=False, large="ivfpq").describe()
    'IVF1649,PQ64x4fs nprobe=412, re-ranked exactly (CPU)'
    """
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    if large not in LARGE_KINDS:
        raise ValueError(f"large={large!r}: expected one of {', '.join(LARGE_KINDS)}")
    gpu = gpu_available() if gpu is None else gpu
    if n_vectors <= flat_max:
        return IndexChoice("flat", gpu)
    if large == "auto" and not gpu and n_vectors > hnsw_max:
        large = "ivfsq"
    if large == "hnsw" or (large == "auto" and not gpu):
        return IndexChoice("hnsw", False, m=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION,
                           ef_search=hnsw_ef_search(n_vectors))
    nlist = max(1, min(round(IVF_LISTS_PER_SQRT_N * math.sqrt(n_vectors)), n_vectors // IVF_MIN_POINTS_PER_LIST))
    nprobe = min(nlist, max(IVF_MIN_PROBE, nlist // IVF_PROBE_DIVISOR))
    if large in ("ivfsq", "ivfpq"):
        nprobe = min(nprobe, max(IVF_MIN_PROBE, IVF_SCAN_CODES * nlist // n_vectors))
        if large == "ivfsq":
            return IndexChoice("ivfsq", False, nlist=nlist, nprobe=nprobe)
        return IndexChoice("ivfpq", False, nlist=nlist, nprobe=nprobe, pq_m=pq_codes(dim), pq_bits=PQ_BITS)
    return IndexChoice("ivf", gpu, nlist=nlist, nprobe=nprobe)


def _build(choice: IndexChoice, dim: int, train: np.ndarray | None = None):
    """An empty CPU index for ``choice`` that takes ids: ``IndexIDMap2`` over Flat or HNSW, or an
    ``IndexIVFFlat`` trained on ``train`` (N, dim)."""
    import faiss

    if choice.kind in IVF_KINDS:
        quantizer = faiss.IndexFlatIP(dim)
        if choice.kind == "ivfpq":
            index = faiss.IndexIVFPQFastScan(quantizer, dim, choice.nlist, choice.pq_m, choice.pq_bits,
                                             faiss.METRIC_INNER_PRODUCT)
        elif choice.kind == "ivfsq":
            # the vectors themselves (not their residuals), one 8-bit range for every dimension: clips of
            # content that came after the training fall inside it (per-list or per-dimension ranges
            # clip them: recall@10 0.77-0.95 against 0.98 on the test of an index that doubled)
            index = faiss.IndexIVFScalarQuantizer(quantizer, dim, choice.nlist, faiss.ScalarQuantizer.QT_8bit_uniform,
                                                  faiss.METRIC_INNER_PRODUCT, False)
        else:
            index = faiss.IndexIVFFlat(quantizer, dim, choice.nlist, faiss.METRIC_INNER_PRODUCT)
        index.own_fields = True
        quantizer.this.disown()
        index.train(train)
        index.nprobe = choice.nprobe
        return index
    if choice.kind == "flat":
        inner = faiss.IndexFlatIP(dim)
    elif choice.kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, choice.m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = choice.ef_construction
        inner.hnsw.efSearch = choice.ef_search
    else:
        raise ValueError(f"unknown index kind {choice.kind!r}")
    index = faiss.IndexIDMap2(inner)
    index.own_fields = True
    inner.this.disown()
    return index


def _ids_for(video_ids: list[int], counts: list[int]) -> np.ndarray:
    """FAISS ids (N,) of ``counts[i]`` windows of each video ``video_ids[i]``, in that order."""
    if not video_ids:
        return np.zeros(0, np.int64)
    return np.concatenate([encode_ids(v, np.arange(n)) for v, n in zip(video_ids, counts)])


def _ids_of(index) -> np.ndarray:
    """Every id (N,) int64 held by an index made by ``_build``."""
    import faiss

    if isinstance(index, faiss.IndexIVF):
        parts = [np.zeros(0, np.int64)]
        for lst in range(index.nlist):
            n = index.invlists.list_size(lst)
            if n:
                ptr = index.invlists.get_ids(lst)
                parts.append(faiss.rev_swig_ptr(ptr, n).astype(np.int64))
                index.invlists.release_ids(lst, ptr)
        return np.concatenate(parts)
    return faiss.vector_to_array(index.id_map).astype(np.int64)


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
class Reconciled(NamedTuple):
    """What ``ClipIndex.reconcile`` changed: video ids added, removed, and ok but not stored."""

    added: list[int]
    removed: list[int]
    missing: list[int]


class ClipIndex:
    """Inner-product FAISS index of the L2-normalised clip embeddings (E = ``dim``) of a library.

    ``add`` also stores each video's embeddings as float16 in ``cache/<id>.clips.npy``; the vectors
    indexed are exactly those float16 values, so a rebuild from the cache gives identical scores.
    The structure follows ``choose_index(ntotal, dim, flat_max, gpu, large)`` and is rebuilt when
    it should change (Flat to HNSW/IVF past ``flat_max``; IVF re-trained when the library has
    doubled). Not thread-safe; one writer (``WriterLock``), any number of readers of the saved file.
    """

    def __init__(self, index_dir: str | Path, dim: int, flat_max: int = FLAT_MAX_VECTORS, gpu: bool | None = None,
                 large: str = "auto", hnsw_max: int = HNSW_MAX_VECTORS):
        self.path = Path(index_dir) / INDEX_FILE
        self.dim = int(dim)
        self.flat_max = int(flat_max)
        self.gpu = gpu_available() if gpu is None else bool(gpu)
        self.large, self.hnsw_max = large, hnsw_max
        self.embeddings = FeatureCache(index_dir, kind="clips")
        self.choice = self._wanted(0)
        self._index = _build(self.choice, self.dim)
        self._trained_on = 0  # vectors the IVF was trained with (0: not an IVF)
        self._videos: set[int] | None = set()  # video ids in the index (None: recompute from the ids)
        self._gpu_index = None  # search copy on the GPU, dropped on every change
        self._mapped = False  # the IVF lists are clips.faiss memory-mapped read-only (load(mmap=True))
        self._file: tuple[int, int, int] | None = None  # (inode, size, mtime_ns) of the clips.faiss loaded, unchanged

    # -- state --------------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    @property
    def faiss_index(self):
        """The FAISS index searched on the CPU (``IndexIDMap2`` or ``IndexIVFFlat``); read it, do not
        change it (``add``/``remove_videos`` keep the bookkeeping)."""
        return self._index

    def ids(self) -> np.ndarray:
        """Every FAISS id (N,) int64 in the index, in no particular order."""
        return _ids_of(self._index)

    def video_ids(self) -> set[int]:
        """Ids of the videos that have clips in the index."""
        return set(self._video_set())

    def video_key(self) -> list[int]:
        """``Catalog.ok_key`` of the videos in the index: as ``save`` recorded it in ``KEY_FILE`` when
        the index is the file loaded and the record names that very file (reading a million
        videos' 17M ids takes ~1 s), else from the index's window-0 clips (every video has one)."""
        if self._file is not None:
            try:
                stored = json.loads(self.path.with_name(KEY_FILE).read_text())
                if stored["file"] == list(self._file):
                    return [int(v) for v in stored["key"]]
            except (OSError, ValueError, KeyError, TypeError):
                pass  # missing, unreadable or another file's: count them
        if self._videos is not None:
            videos = np.fromiter(self._videos, np.int64, len(self._videos))
        else:
            ids = self.ids()
            videos = ids[(ids & (MAX_WINDOWS - 1)) == 0] >> WINDOW_BITS
        rest = videos % OK_KEY_MODULUS
        return [int(videos.size), int(videos.sum()), int((rest * rest).sum())]

    def _video_set(self) -> set[int]:
        """The index's own set of video ids (not a copy: do not change it)."""
        if self._videos is None:
            self._videos = set(np.unique(self.ids() >> WINDOW_BITS).tolist())
        return self._videos

    def _holds(self, video_id: int) -> bool:
        return int(video_id) in self._video_set()

    def _changed(self) -> None:
        self._gpu_index = None
        self._file = None  # no longer the file loaded

    def _wanted(self, n_vectors: int) -> IndexChoice:
        return choose_index(n_vectors, self.dim, self.flat_max, self.gpu, self.large, self.hnsw_max)

    def _needs_new_structure(self) -> bool:
        wanted = self._wanted(self.ntotal)
        if wanted.kind != self.choice.kind:
            return True
        return wanted.kind in IVF_KINDS and self.ntotal >= IVF_RETRAIN_GROWTH * self._trained_on

    # -- writes -------------------------------------------------------------------------------
    def add(self, video_id: int, embeddings: np.ndarray) -> None:
        """Store and index the clip embeddings (W, E) of one video, window w getting the id
        ``encode_ids(video_id, w)``; replaces what the video had (HNSW: by a rebuild)."""
        unit = _normalise(embeddings, f"clip embeddings of video {video_id}", self.dim)
        if unit.shape[0] == 0:
            raise ClipIndexError(f"clip embeddings of video {video_id}: got 0 windows; every video has at least one")
        ids = encode_ids(video_id, np.arange(unit.shape[0]))
        self.embeddings.put(video_id, unit)  # first, so that a rebuild from the cache has it
        present = self._holds(video_id)
        if present and self.choice.kind == "hnsw":
            self.rebuild()  # HNSW cannot remove: rebuild from the cache, which has the new vectors
            return
        if present:
            self._remove_from_index([video_id])
        self._add_vectors(unit.astype(np.float16).astype(np.float32), ids)
        if self._needs_new_structure():
            self.rebuild()

    def _writable(self) -> None:
        """Read a memory-mapped index into memory before a change (FAISS cannot change mapped lists)."""
        if self._mapped:
            self._index, self._mapped = read_index(self.path), False
            self._videos = None

    def _add_vectors(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        self._writable()
        self._index.add_with_ids(np.ascontiguousarray(vectors, np.float32), np.ascontiguousarray(ids, np.int64))
        if self._videos is not None:
            self._videos.update(np.unique(ids >> WINDOW_BITS).tolist())
        self._changed()

    def remove_video(self, video_id: int) -> None:
        """Drop every clip of ``video_id`` from the index; its stored embeddings stay until
        ``forget`` (delete them once the catalog no longer lists the video)."""
        self.remove_videos([video_id])

    def remove_videos(self, video_ids: Iterable[int]) -> None:
        """Drop every clip of these videos (HNSW: one rebuild from the cache for all of them)."""
        present = self.video_ids()
        gone = sorted({int(v) for v in video_ids} & present)
        if not gone:
            return
        if self.choice.kind == "hnsw":
            self.rebuild(present - set(gone))
        else:
            self._remove_from_index(gone)

    def forget(self, video_id: int) -> bool:
        """Delete the stored embeddings of a video; True when there were some."""
        return self.embeddings.remove(video_id)

    def _remove_from_index(self, video_ids: list[int]) -> None:
        """Flat (through IDMap2) and IVF remove in place; never called for HNSW."""
        import faiss

        self._writable()
        ids = self.ids()
        doomed = np.ascontiguousarray(ids[np.isin(ids >> WINDOW_BITS, video_ids)])
        if doomed.size:
            self._index.remove_ids(faiss.IDSelectorBatch(doomed.size, faiss.swig_ptr(doomed)))
            if self._videos is not None:
                self._videos.difference_update(video_ids)
            self._changed()

    def rebuild(self, video_ids: Iterable[int] | None = None) -> None:
        """Re-create the index from the stored embeddings of ``video_ids`` (default: the videos in
        the index now), with the structure ``choose_index`` picks for their count.

        The index is filled ``REBUILD_CHUNK`` clips at a time straight from the cache, so a rebuild
        holds little more than the index itself (1.7M 256-d clips: ~2 GB rather than three float32
        copies); an IVF index is first trained on a sample of the videos (``_training_sample``).
        """
        video_ids = sorted(self.video_ids() if video_ids is None else {int(v) for v in video_ids})
        counts = [self.embeddings.get(v, shape=(None, self.dim)).shape[0] for v in video_ids]
        choice = self._wanted(sum(counts))
        if choice.kind in IVF_KINDS:
            self._index = _build(choice, self.dim, train=self._training_sample(video_ids, counts, choice.nlist))
            self._mapped = False
            self.choice, self._trained_on, self._videos = choice, sum(counts), set()
        else:
            self._index, self._mapped = _build(choice, self.dim), False
            self.choice, self._trained_on, self._videos = choice, 0, set()
        start = 0
        while start < len(video_ids):
            end, size = start, 0
            while end < len(video_ids) and (end == start or size + counts[end] <= REBUILD_CHUNK):
                size += counts[end]
                end += 1
            chunk = video_ids[start:end]
            self._add_vectors(self._stack(chunk, counts[start:end]), _ids_for(chunk, counts[start:end]))
            start = end
        self._changed()

    def _training_sample(self, video_ids: list[int], counts: list[int], nlist: int) -> np.ndarray:
        """The clips an IVF index of ``nlist`` lists is trained on: every clip of ``video_ids`` when
        they are few, else those of whole videos drawn with a fixed seed until there are
        ``max(IVF_TRAIN_PER_LIST * nlist, IVF_TRAIN_MIN)``."""
        want = max(IVF_TRAIN_PER_LIST * nlist, IVF_TRAIN_MIN)
        if sum(counts) <= want:
            return self._stack(video_ids, counts)
        chosen, total = [], 0
        for i in np.random.default_rng(0).permutation(len(video_ids)):
            chosen.append(i)
            total += counts[i]
            if total >= want:
                break
        chosen.sort()
        return self._stack([video_ids[i] for i in chosen], [counts[i] for i in chosen])

    def _stack(self, video_ids: list[int], counts: list[int]) -> np.ndarray:
        """The stored embeddings of these videos (``counts[i]`` clips each), one after the other, as
        one (N, dim) float32 array. Each file is copied and let go at once: holding every memory map
        holds a file descriptor each (a training sample of 60k videos ran out of them)."""
        out = np.empty((sum(counts), self.dim), np.float32)
        row = 0
        for video_id, n in zip(video_ids, counts):
            out[row:row + n] = self.embeddings.get(video_id, shape=(n, self.dim))
            row += n
        return out

    def reconcile(self, ok_video_ids: Iterable[int]) -> Reconciled:
        """Make the index hold exactly the videos ``ok_video_ids`` (the catalog's ``ok`` videos) that
        have stored embeddings: drops the others, adds missing ones from the cache.

        After a crash the saved index may lag behind the catalog; this repairs it in memory (a
        writer then ``save``s it). Videos without stored embeddings are reported in ``missing``
        (``vidseek.index.integrity.check`` names them too); re-encode them.
        """
        wanted, present = {int(v) for v in ok_video_ids}, self.video_ids()
        absent = wanted - present  # listing the cache folder (one entry per file) only when needed
        missing = sorted(absent - set(self.embeddings.video_ids())) if absent else []
        wanted -= set(missing)
        result = Reconciled(added=sorted(wanted - present), removed=sorted(present - wanted), missing=missing)
        if self.choice.kind == "hnsw" and result.removed:
            self.rebuild(wanted)  # one rebuild does both
            return result
        self.remove_videos(result.removed)
        for v in result.added:
            vectors = np.asarray(self.embeddings.get(v, shape=(None, self.dim)), np.float32)
            self._add_vectors(vectors, encode_ids(v, np.arange(len(vectors))))
        if self._needs_new_structure():
            self.rebuild()
        return result

    # -- search -------------------------------------------------------------------------------
    def _searcher(self):
        """The index to search: a GPU copy (made on first use after a change) or the CPU index."""
        if not self.choice.gpu:  # HNSW, IVF-SQ8 and IVF-PQ are CPU kinds even where a GPU is
            return self._index
        if self._gpu_index is None:
            import faiss

            if getattr(self, "_gpu_resources", None) is None:
                self._gpu_resources = faiss.StandardGpuResources()
            self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self._index)
            if self.choice.kind in IVF_KINDS:
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
        wanted, k = k, (min(self.ntotal, RERANK_FACTOR * k) if self.choice.kind == "ivfpq" else k)
        searcher = self._searcher()
        threads = faiss.omp_get_max_threads()
        if len(q) < SERIAL_QUERIES and threads > 1 and searcher is self._index:
            # FAISS splits work across queries, so a lone query gains nothing from OpenMP threads,
            # while waking them costs up to a scheduler slice on a busy CPU (measured: p95 0.06 ms
            # serial vs 28 ms with 2 threads on a loaded 2-core machine).
            faiss.omp_set_num_threads(1)
            try:
                scores, ids = searcher.search(q, k)
            finally:
                faiss.omp_set_num_threads(threads)
        else:
            scores, ids = searcher.search(q, k)
        if self.choice.kind == "ivfpq":
            scores, ids = self._rerank(q, ids, wanted)
        video, window = decode_ids(ids)
        return np.where(ids < 0, -np.inf, scores).astype(np.float32), video, window

    def _rerank(self, q: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` of each query's shortlist ``ids`` (Q, K) by the exact cosine of the clips'
        stored embeddings (PQ distances only choose the shortlist)."""
        scores = np.full((len(q), k), -np.inf, np.float32)
        best = np.full((len(q), k), -1, np.int64)
        video, window = decode_ids(ids)
        stored = {}
        for v in np.unique(video[video >= 0]):
            try:
                stored[int(v)] = self.embeddings.get(int(v), shape=(None, self.dim))
            except CacheError:  # a damaged or missing clips file: its clips drop out (the searcher says why)
                pass
        for i in range(len(q)):
            keep = np.array([int(v) in stored and 0 <= w < len(stored[int(v)]) for v, w in zip(video[i], window[i])],
                            bool)
            if not keep.any():
                continue
            rows = np.stack([stored[int(v)][int(w)] for v, w in zip(video[i][keep], window[i][keep])]).astype(np.float32)
            exact = rows @ q[i]
            order = np.argsort(-exact, kind="stable")[:k]
            scores[i, :len(order)], best[i, :len(order)] = exact[order], ids[i][keep][order]
        return scores, best

    # -- files --------------------------------------------------------------------------------
    def save(self, on_written: Callable[[Path], None] | None = None) -> Path:
        """Write the index to ``index_dir/clips.faiss`` atomically (temporary file + os.replace);
        ``on_written(temporary)`` is called once the new file is written, before it replaces the old."""
        import faiss

        def write(tmp: Path) -> None:
            faiss.write_index(self._index, str(tmp))
            if on_written is not None:
                on_written(tmp)

        with storage_errors(self.path):
            path = atomic_write(self.path, write)
            key = self.video_key()
            atomic_write_text(self.path.with_name(KEY_FILE), json.dumps({"file": list(_stat(path)), "key": key}))
            return path

    def load(self, mmap: bool = False) -> bool:
        """Read ``clips.faiss`` if it exists (False when there is none, leaving the index empty).

        ``mmap``: an IVF index's lists stay in the file, memory-mapped read-only (a reader opens
        the 2 GB index of a million videos at once, and its memory holds the lists searched, not
        all of them); the first change reads the file into memory (``_writable``). Other kinds are
        read into memory either way."""
        if not self.path.is_file():
            return False
        before = _stat(self.path)
        index = read_index(self.path, mmap=mmap)
        if index.d != self.dim:
            raise ClipIndexError(f"{self.path} holds {index.d}-d clip embeddings but this index expects "
                                 f"{self.dim}-d ones (another model?): re-index with `vidseek index --rebuild`")
        self._index, self.choice = index, _choice_of(index, self.gpu)
        self._mapped = mmap and self.choice.kind in IVF_KINDS
        self._trained_on = self.ntotal if self.choice.kind in IVF_KINDS else 0
        self._videos = None
        self._changed()
        self._file = before if _stat(self.path) == before else None  # replaced while read: its key is unknown
        return True


def _stat(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime_ns) of a file, or None when it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def file_crc32(path: str | Path) -> int:
    """CRC-32 of a file's bytes (the writer stores that of clips.faiss, to tell damage from lag)."""
    crc = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            crc = zlib.crc32(block, crc)
    return crc


def read_index(path: str | Path, mmap: bool = False):
    """The clip index stored at ``path`` (IndexIDMap2 or IndexIVF); ``ClipIndexError`` when the
    file is unreadable or holds something else. ``mmap``: IVF lists memory-mapped, read-only."""
    import faiss

    flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
    try:
        index = faiss.read_index(str(path), flags)  # returned as its concrete class (IndexIDMap2, IndexIVFFlat)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unknown error"
        raise ClipIndexError(f"{path} is unreadable ({first}); delete it: `vidseek index` rebuilds it "
                             "from the cached clip embeddings") from None
    if not isinstance(index, (faiss.IndexIDMap2, faiss.IndexIVF)):
        raise ClipIndexError(f"{path} holds a {type(index).__name__}, not a vidseek clip index; "
                             "delete it and re-run `vidseek index`")
    return index


def read_ids(index_dir: str | Path) -> tuple[int, np.ndarray] | None:
    """(dimension, FAISS ids (N,) int64) of ``index_dir/clips.faiss``, or None when there is none."""
    path = Path(index_dir) / INDEX_FILE
    if not path.is_file():
        return None
    index = read_index(path)
    return int(index.d), _ids_of(index)


def _choice_of(index, gpu: bool) -> IndexChoice:
    """The ``IndexChoice`` describing a loaded index, with vidseek's search parameters applied."""
    import faiss

    if isinstance(index, faiss.IndexIVFScalarQuantizer):
        return IndexChoice("ivfsq", False, nlist=int(index.nlist), nprobe=int(index.nprobe))
    if isinstance(index, (faiss.IndexIVFPQ, faiss.IndexIVFPQFastScan)):  # 8-bit codes: built before fast-scan
        return IndexChoice("ivfpq", False, nlist=int(index.nlist), nprobe=int(index.nprobe), pq_m=int(index.pq.M),
                           pq_bits=int(index.pq.nbits))
    if isinstance(index, faiss.IndexIVF):
        return IndexChoice("ivf", gpu, nlist=int(index.nlist), nprobe=int(index.nprobe))
    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = max(inner.hnsw.efSearch, hnsw_ef_search(int(index.ntotal)))
        return IndexChoice("hnsw", False, m=int(inner.hnsw.nb_neighbors(1)),
                           ef_construction=int(inner.hnsw.efConstruction), ef_search=int(inner.hnsw.efSearch))
    if isinstance(inner, faiss.IndexFlat):
        return IndexChoice("flat", gpu)
    raise ClipIndexError(f"unsupported index {type(inner).__name__} inside a clip index; "
                         "delete clips.faiss and re-run `vidseek index`")
