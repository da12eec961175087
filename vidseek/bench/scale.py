"""The query benchmark of one library size, run in a fresh process so that its memory is its own.

``measure_library(job)`` opens the library with ``Searcher`` (the product's search path), times
searches on every backend asked for, records the process's resident memory after opening the index
and after the queries, and, when asked, the naive search, a cProfile of the query path and the
FAISS structures' latency and recall. ``run_in_fresh_process(job)`` runs it in a spawned process.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vidseek.bench.stats import folder_bytes, rss_bytes


@dataclass
class LibraryJob:
    """Everything the measuring process needs (plain values: it crosses a process boundary)."""

    folder: str
    bundle: str
    backends: list[str]  # available backends, in the order to measure (onnxruntime first)
    queries: list[str]
    warmup: int
    repeat: int
    top_k: int
    candidates: int
    run_dir: str | None = None
    threads: int | None = None
    naive_max: int = 0  # videos the naive search runs on (0: skip it)
    naive_repeat: int = 3
    faiss_queries: int = 0  # queries of the FAISS comparison (0: skip it)
    profile: int = 0  # searches profiled with cProfile (0: none)


def index_files(folder: str | Path) -> dict[str, int]:
    """Bytes of each part of an index folder (the files' sizes), and ``allocated``: what the disk
    gives all of them, whole file-system blocks (a million videos' 2M cache files of a few KB each
    take ~4 GB more than their sizes add up to on 4 KB blocks)."""
    folder = Path(folder)
    cache = folder / "cache"
    states = clips = allocated = 0
    if cache.is_dir():
        with os.scandir(cache) as entries:
            for entry in entries:
                st = entry.stat()
                if entry.name.endswith(".states.npy"):
                    states += st.st_size
                elif entry.name.endswith(".clips.npy"):
                    clips += st.st_size
                allocated += st.st_blocks * 512
    parts = [folder / f"catalog.sqlite{s}" for s in ("", "-wal", "-shm")] + [folder / "clips.faiss"]
    allocated += sum(p.stat().st_blocks * 512 for p in parts if p.is_file())
    catalog = sum(folder_bytes(p) for p in parts[:3])
    return {"catalog": catalog, "states_cache": states, "clips_cache": clips,
            "clips_faiss": folder_bytes(folder / "clips.faiss"), "allocated": allocated}


def measure_library(job: LibraryJob) -> dict:
    """Measure searches of the library in ``job.folder``; see the module docstring."""
    import faiss  # noqa: F401  (loaded before the baseline, like the sessions below)
    import onnxruntime  # noqa: F401

    from vidseek.bench.backends import open_backend
    from vidseek.bench.stages import naive_stages, profile_queries, query_stages
    from vidseek.engine.bundle import load_bundle
    from vidseek.library.searcher import Searcher

    bundle = load_bundle(job.bundle)
    out: dict = {"rss": {"start": rss_bytes()["rss"]}, "files": index_files(job.folder), "query": {}, "errors": {}}
    t0 = time.perf_counter()
    searcher = Searcher(job.folder, job.bundle)
    out["open_s"] = round(time.perf_counter() - t0, 3)
    out["index"] = searcher.clips.choice.describe()
    out["clips"] = searcher.clips.ntotal
    out["rss"]["open"] = rss_bytes()["rss"]
    default = searcher.grounder  # ONNX Runtime CPU with default threads, as `vidseek search` runs
    for name in job.backends:
        try:
            if name != "onnxruntime" or job.threads:
                searcher.grounder, _ = open_backend(name, bundle, job.run_dir, job.threads)
                if name == "onnxruntime":
                    default = searcher.grounder
            out["query"][name] = query_stages(searcher, job.queries, job.warmup, job.repeat, job.top_k, job.candidates)
        except Exception as exc:  # report and go on with the other backends
            out["errors"][name] = f"{type(exc).__name__}: {exc}"
        finally:
            searcher.grounder = default
        if name == "onnxruntime":
            out["rss"]["after_queries"] = rss_bytes()["rss"]
    if job.profile:
        out["profile"] = profile_queries(searcher, job.queries, job.profile, job.top_k, job.candidates)
    if job.naive_max:
        videos = sorted(searcher.videos.values(), key=lambda v: v.id)
        subset = [(v.id, v.steps) for v in videos[: job.naive_max]]
        out["naive"] = naive_stages(default, searcher.states, subset, len(videos), job.queries, searcher.rate,
                                    job.naive_repeat)
    out["rss"]["peak_search"] = rss_bytes()["peak"]
    if job.faiss_queries:
        library = searcher.clips
        del searcher, default
        gc.collect()
        out["faiss"] = _faiss_rows(library, job)
    return out


def _faiss_rows(library, job: LibraryJob) -> list[dict]:
    """The FAISS comparison on the library's clip vectors (read from its cache into one float32
    array, in id order: 8.7 GB for 17M 128-d clips)."""
    from vidseek.bench.stages import faiss_comparison, near_queries
    from vidseek.index.clips import WINDOW_BITS

    ids = np.sort(library.ids())
    videos, counts = np.unique(ids >> WINDOW_BITS, return_counts=True)
    vectors = np.empty((len(ids), library.dim), np.float32)
    row = 0
    for video, count in zip(videos.tolist(), counts.tolist()):  # ids of one video are its windows 0 .. count - 1
        vectors[row:row + count] = library.embeddings.get(video, shape=(count, library.dim))
        row += count
    queries = near_queries(vectors, job.faiss_queries)
    ks = tuple(sorted({10, 50, job.candidates}))  # recall@50: what the calibration's median pool sees
    return faiss_comparison(vectors, ids, queries, ks, library=library)


def _child(job_dict: dict) -> dict:
    return measure_library(LibraryJob(**job_dict))


def run_in_fresh_process(job: LibraryJob) -> dict:
    """``measure_library(job)`` in a newly spawned Python process (its RSS figures start clean)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_child, asdict(job)).result()
