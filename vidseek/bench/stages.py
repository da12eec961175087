"""What the benchmark times: graphs in isolation, the index-time stages per video, the query-time
stages of a library search, the naive search (the head on every video), and FAISS structures.

Stages are timed on the product's own code through its public timing hooks: the ``timings`` of
``Grounder.video_features`` at index time, and the ``SearchTrace`` of ``Searcher.search`` at query
time (tokenize, text encoder, FAISS, cache reads, head, and ``post``: filling the head's batch,
span decoding, fusion, NMS, ranking). End-to-end latencies are measured separately, without a trace.
"""

from __future__ import annotations

import time
from itertools import cycle
from pathlib import Path

import numpy as np

from vidseek.bench.stats import measure, summarise
from vidseek.engine.decode import decode_windows
from vidseek.engine.bundle import Bundle
from vidseek.engine.grounder import Grounder, QueryError

# Queries in the synthetic world's language (`vidseek synth`): every subject with every action, so a
# benchmark cycles through many distinct queries (whose candidates fall in different videos) rather
# than repeating a few whose windows stay in the cache.
SUBJECTS = ("the person", "someone", "a person in a red shirt", "the tall person", "somebody",
            "the person in the blue shirt", "a short person", "the person in the white shirt")
ACTIONS = ("opens the door", "picks up the red box", "sits on the chair", "waves hello", "walks into the room",
           "switches on the light", "leaves the room", "gets up from the chair", "puts the ball on the floor",
           "waves at the camera", "takes the yellow box", "pulls the door open", "sits down",
           "lowers a green ball to the floor", "walks out of the room", "flips on the light switch",
           "sets down the box", "takes a seat", "lifts a ball", "comes into the room", "swings the door open",
           "turns off the light", "holds the orange ball", "closes the door", "waves a hand")
_ALL_QUERIES = [f"{s} {a}" for a in ACTIONS for s in SUBJECTS]
QUERIES = tuple(_ALL_QUERIES[(i * 77) % len(_ALL_QUERIES)] for i in range(len(_ALL_QUERIES)))  # 77: coprime, mixes
QUERY_STAGES = ("tokenize", "text_encoder", "faiss", "cache", "head", "post")
INDEX_STAGES = ("decode", "frame_encoder", "video_encoder")
FRAME_BATCH = 64  # frames per frame-encoder call when a graph is timed alone
TYPICAL_SECONDS = 35.0  # video length used when the video encoder is timed alone (mean of 10-60 s)


def known_queries(grounder: Grounder, queries: tuple[str, ...] = QUERIES) -> list[str]:
    """The queries the bundle's tokenizer can read; when none (a tiny learned vocabulary), queries
    made of the vocabulary's own words."""
    readable = []
    for q in queries:
        try:
            grounder.tokenize([q])
        except QueryError:
            continue
        readable.append(q)
    if readable:
        return readable
    words = [w for w, _ in sorted(grounder.tokenizer.get_vocab().items(), key=lambda kv: kv[1])
             if w.isalpha() and not w.startswith("<")]
    if not words:
        raise ValueError("the bundle's tokenizer knows no words to build benchmark queries from")
    return [" ".join(words[i:i + 4]) for i in range(0, max(1, min(len(words), 32)), 4)]


# ---- graphs alone -------------------------------------------------------------------------------
def graph_feeds(bundle: Bundle, reference: Grounder, query: str, candidates: int, window_steps: int,
                rate: float, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """One input of each graph at its typical query- or index-time shape, the same for every backend.

    frame_encoder: a chunk of 64 frames; video_encoder: one video of ~35 s; text_encoder: one query;
    head: ``candidates`` windows of ``3 * window_steps`` steps (a clip and one window of context on
    each side, as the search feeds it).
    """
    from vidseek.bench.library import bundle_dims

    rng = np.random.default_rng(seed)
    d, h, _ = bundle_dims(bundle)
    feeds: dict[str, dict[str, np.ndarray]] = {}
    fe = bundle.meta["features"].get("frame_encoder")
    if fe and "frame_encoder" in bundle.graphs:
        from vidseek.engine.preprocess import FrameSpec

        spec = FrameSpec.from_dict(fe["spec"])
        feeds["frame_encoder"] = {"pixels": rng.normal(size=(FRAME_BATCH, 3, spec.height, spec.width)).astype(np.float32)}
    steps = max(1, round(TYPICAL_SECONDS * rate))
    feeds["video_encoder"] = {"features": rng.normal(size=(1, steps, d)).astype(np.float32),
                              "video_mask": np.ones((1, steps), bool)}
    feeds["text_encoder"] = reference.tokenize([query])[0]
    key = reference.family.head_text
    text = reference.sessions["text_encoder"].run(feeds["text_encoder"])[key]
    width = 3 * window_steps
    feeds["head"] = {"video_states": np.clip(rng.normal(0, 0.3, size=(candidates, width, h)), -1, 1).astype(np.float32),
                     "video_mask": np.ones((candidates, width), bool), key: np.repeat(text, candidates, 0)}
    return feeds


def graph_stages(grounder: Grounder, feeds: dict[str, dict[str, np.ndarray]], warmup: int, repeat: int) -> dict:
    """Latency of each graph's session on ``feeds`` ({graph: {"shape": ..., "stats": ...}})."""
    out = {}
    for graph, feed in feeds.items():
        session = grounder.sessions[graph]
        stats = measure(lambda s=session, f=feed: s.run(f), warmup, repeat)
        out[graph] = {"shapes": {k: list(v.shape) for k, v in feed.items()}, **stats.to_dict()}
    return out


# ---- index time ---------------------------------------------------------------------------------
def index_stages(grounder: Grounder, videos: list[Path], warmup: int, repeat: int) -> dict:
    """Decode (+ sampling and preprocessing), frame encoder and video encoder per video, as
    ``vidseek index`` runs them (``Grounder.video_features`` then ``video_outputs``).

    Returns per-stage stats (ms per video), videos/s and real-time factors (seconds of video per
    second of work) overall and per stage.
    """
    rows = []
    for _ in range(warmup):
        for path in videos:
            feats, _ = grounder.video_features(path)
            grounder.video_outputs(feats[None])
    for _ in range(max(1, repeat)):
        for path in videos:
            timings: dict[str, float] = {}
            t0 = time.perf_counter()
            feats, info = grounder.video_features(path, timings=timings)
            t1 = time.perf_counter()
            grounder.video_outputs(feats[None])
            t2 = time.perf_counter()
            rows.append({"decode": timings["decode"], "frame_encoder": timings["frame_encoder"],
                         "video_encoder": t2 - t1, "total": t2 - t0, "duration": info.duration, "steps": len(feats)})
    video_s = sum(r["duration"] for r in rows)
    out = {"videos": len(videos), "runs": len(rows), "video_seconds": round(video_s / max(1, repeat), 3),
           "steps": int(sum(r["steps"] for r in rows) / max(1, repeat))}
    for stage in (*INDEX_STAGES, "total"):
        seconds = sum(r[stage] for r in rows)
        out[stage] = {**summarise([r[stage] for r in rows]).to_dict(),
                      "rtf": round(video_s / seconds, 2) if seconds > 0 else None}
    total = sum(r["total"] for r in rows)
    out["videos_per_s"] = round(len(rows) / total, 3) if total > 0 else None
    out["rtf"] = out["total"]["rtf"]
    return out


# ---- query time ---------------------------------------------------------------------------------
def query_stages(searcher, queries: list[str], warmup: int, repeat: int, top_k: int, candidates: int) -> dict:
    """End-to-end latency of ``searcher.search`` (warm, untraced; plus the very first call), then
    the per-stage breakdown of as many searches, each with a ``SearchTrace``."""
    from vidseek.library.searcher import SearchTrace

    order = cycle(queries)
    t0 = time.perf_counter()
    searcher.search(next(order), top_k=top_k, candidates=candidates)
    first = time.perf_counter() - t0
    e2e = measure(lambda: searcher.search(next(order), top_k=top_k, candidates=candidates), warmup, repeat)
    traces, found = [], []
    for _ in range(max(1, repeat)):
        trace = SearchTrace()
        found.append(len(searcher.search(next(order), top_k=top_k, candidates=candidates, trace=trace)))
        traces.append(trace)
    return {"first_ms": round(first * 1e3, 3), "end_to_end": e2e.to_dict(),
            "stages": {s: summarise([t.seconds.get(s, 0.0) for t in traces]).to_dict() for s in QUERY_STAGES},
            "moments": int(np.median(found)), "head_rows": int(np.median([t.head_rows for t in traces])),
            "head_steps": int(np.median([t.head_steps for t in traces])),
            "candidate_videos": int(np.median([t.candidate_videos for t in traces]))}


def profile_queries(searcher, queries: list[str], n: int, top_k: int, candidates: int, lines: int = 25) -> str:
    """cProfile of ``n`` warm searches: the functions with the most own time, as text."""
    import cProfile
    import io
    import pstats

    order = cycle(queries)
    for _ in range(3):
        searcher.search(next(order), top_k=top_k, candidates=candidates)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        searcher.search(next(order), top_k=top_k, candidates=candidates)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(lines)
    return text.getvalue()


# ---- the naive approach -------------------------------------------------------------------------
def naive_search(grounder: Grounder, states, videos: list[tuple[int, int]], query: str, rate: float,
                 batch: int = 32, top_k: int = 10) -> list[tuple[float, int, float, float]]:
    """The search without a clip index: the head on every whole video (batches of ``batch`` videos
    padded to the longest), the best span of each, ranked. ``videos``: (video id, steps).

    Returns (score, video id, start s, end s) of the ``top_k`` best videos.
    """
    text = {k: v for k, v in grounder.encode_text([query]).items() if k != "tokens"}
    h = states.get(videos[0][0]).shape[1]
    best = []
    for i in range(0, len(videos), batch):
        chunk = videos[i:i + batch]
        longest = max(steps for _, steps in chunk)
        x = np.zeros((len(chunk), longest, h), np.float32)
        mask = np.zeros((len(chunk), longest), bool)
        for j, (vid, steps) in enumerate(chunk):
            x[j, :steps] = states.get(vid)
            mask[j, :steps] = True
        out = grounder.head(x, mask, text)
        for j, (vid, steps) in enumerate(chunk):
            s, e, conf = decode_windows(grounder.model_name, {k: v[j] for k, v in out.items()}, steps / rate, steps, 1)[0]
            best.append((float(conf), vid, float(s), float(e)))
    best.sort(key=lambda r: -r[0])
    return best[:top_k]


def naive_stages(grounder: Grounder, states, videos: list[tuple[int, int]], library_videos: int, queries: list[str],
                 rate: float, repeat: int) -> dict:
    """Latency of ``naive_search`` over ``videos`` (a prefix of the library when it is large), with
    the per-query time extrapolated linearly to all ``library_videos`` videos."""
    order = cycle(queries)
    stats = measure(lambda: naive_search(grounder, states, videos, next(order), rate), 1, repeat)
    scale = library_videos / len(videos)
    return {"videos_measured": len(videos), "library_videos": library_videos, "measured": stats.to_dict(),
            "p50_ms": round(stats.p50 * scale, 3), "extrapolated": scale != 1.0}


# ---- FAISS structures ---------------------------------------------------------------------------
def near_queries(vectors: np.ndarray, n: int, seed: int = 0, noise: float = 0.5) -> np.ndarray:
    """``n`` unit queries near stored vectors (each a random stored clip plus noise of relative
    norm ``noise``, cosine ~0.9 with it): the case a query that has an answer in the library makes."""
    rng = np.random.default_rng(seed)
    picked = vectors[rng.integers(0, len(vectors), size=n)]
    q = picked + rng.normal(0, noise / np.sqrt(vectors.shape[1]), size=picked.shape)
    return np.ascontiguousarray(q / np.linalg.norm(q, axis=1, keepdims=True), np.float32)


def _recall(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean share of the exact top-k ids found in the approximate top-k."""
    hits = [len(set(f[:k].tolist()) & set(e[:k].tolist())) for f, e in zip(found, exact)]
    return float(np.mean(hits)) / k


def _timed_search(search, queries: np.ndarray, k: int) -> tuple[np.ndarray, list[float]]:
    """Ids (Q, k) found and the seconds of each single-query ``search(query (1, E), k)`` (a FAISS
    index's ``search``, or anything returning (scores, ids) alike), on one OpenMP thread as
    ``ClipIndex.search`` runs a lone query."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    ids, seconds = [], []
    try:
        for q in queries:
            t0 = time.perf_counter()
            _, found = search(q[None], k)
            seconds.append(time.perf_counter() - t0)
            ids.append(found[0])
    finally:
        faiss.omp_set_num_threads(threads)
    return np.stack(ids), seconds


SIDE_INDEX_MAX = 2_000_000  # the comparison builds its own HNSW/IVF/IVF-PQ up to this many clips
EXACT_TIMED_MAX = 20  # single-query exact searches timed past SIDE_INDEX_MAX clips (each scans them all)


def faiss_comparison(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, ks: tuple[int, ...],
                     library=None, hnsw_ef: tuple[int, ...] = (64, 128, 256, 512),
                     ivf_probe: tuple[int, ...] = (8, 32, 128), max_ivf_lists: int = 2048,
                     probe_factors: tuple[float, ...] = (0.25, 0.5, 1, 2, 4)) -> list[dict]:
    """Per-query latency and recall@k against exact search of Flat, HNSW, IVF-Flat, IVF-SQ8 and IVF-PQ (re-ranked) indexes of
    ``vectors`` (N, E) unit rows, one query at a time.

    ``ids`` (N,) ascending are the rows' FAISS ids. ``library``, the library's own ``ClipIndex``
    holding them, is measured as searches use it: an HNSW one instead of building an HNSW (a 2-core
    CPU takes many minutes for millions of clips), an IVF-SQ8 or IVF-PQ one through its own search
    (IVF-PQ's re-ranking included) at ``probe_factors`` times its probes. Past ``SIDE_INDEX_MAX`` clips nothing else is built (hours
    of k-means), and exact search is timed on ``EXACT_TIMED_MAX`` queries (its recall is by
    definition 1; the ground truth comes from one batched scan). IVF uses ``choose_index``'s list
    count capped at ``max_ivf_lists`` (k-means cost), trained on at most 64 points per list.
    """
    import faiss

    from vidseek.index.clips import (HNSW_EF_CONSTRUCTION, HNSW_M, PQ_BITS, RERANK_FACTOR, WINDOW_BITS, IndexChoice,
                                     _build, choose_index, pq_codes)

    k = max(ks)
    n, dim = vectors.shape
    small = n <= SIDE_INDEX_MAX
    _, exact = faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)  # no copy of the vectors
    if small:
        flat = faiss.IndexFlatIP(dim)
        flat.add(vectors)
        seconds = _timed_search(flat.search, queries, k)[1]
        del flat
    else:  # each query scans every vector: a few are enough, and no copy of them is made
        seconds = _timed_search(lambda q, kk: faiss.knn(q, vectors, kk, metric=faiss.METRIC_INNER_PRODUCT),
                                queries[:EXACT_TIMED_MAX], k)[1]
    own = None if library is None else library.choice
    rows = [{"index": "Flat (exact)", "kind": "flat", "param": None, "build_s": None, **summarise(seconds).to_dict(),
             **{f"recall@{x}": 1.0 for x in ks}, "library": own is not None and own.kind == "flat"}]

    def row_numbers(found: np.ndarray) -> np.ndarray:  # FAISS ids -> row numbers of ``vectors``
        rows_of = np.minimum(np.searchsorted(ids, found), n - 1)
        return np.where(ids[rows_of] == found, rows_of, -1)

    if own is not None and own.kind in ("ivfsq", "ivfpq"):
        index = library.faiss_index
        for probe in sorted({min(own.nlist, max(1, round(own.nprobe * f))) for f in probe_factors}):
            index.nprobe = probe
            found, seconds = [], []
            for q in queries:
                t0 = time.perf_counter()
                _, video, window = library.search(q[None], k)
                seconds.append(time.perf_counter() - t0)
                found.append(np.where(video[0] < 0, -1, (video[0] << WINDOW_BITS) + window[0]))
            found = row_numbers(np.array(found))
            label = own.describe().replace(f"nprobe={own.nprobe}", f"nprobe={probe}")
            code_bytes = own.pq_m * own.pq_bits / 8 if own.kind == "ivfpq" else dim
            rows.append({"index": label + (" (the library's)" if probe == own.nprobe else ""), "kind": own.kind,
                         "param": probe, "build_s": None, "bytes_per_clip": code_bytes + 8,
                         **summarise(seconds).to_dict(),
                         **{f"recall@{x}": round(_recall(found, exact, x), 4) for x in ks}, "library": probe == own.nprobe})
        index.nprobe = own.nprobe
    inner = faiss.downcast_index(library.faiss_index.index) if own is not None and own.kind == "hnsw" else None
    ef_search = inner.hnsw.efSearch if inner is not None else 0
    if inner is not None:
        hnsw, build_s = library.faiss_index, None
    elif small:
        inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        t0 = time.perf_counter()
        inner.add(vectors)
        hnsw, build_s = inner, round(time.perf_counter() - t0, 2)
    for ef in sorted({max(ef, k) for ef in hnsw_ef}) if inner is not None else ():
        inner.hnsw.efSearch = ef
        found, seconds = _timed_search(hnsw.search, queries, k)
        if hnsw is not inner:
            found = row_numbers(found)
        rows.append({"index": f"HNSW{HNSW_M} efSearch={ef}", "kind": "hnsw", "param": ef, "build_s": build_s,
                     **summarise(seconds).to_dict(), **{f"recall@{x}": round(_recall(found, exact, x), 4) for x in ks},
                     "library": hnsw is not inner and ef == max(own.ef_search, k)})
    if ef_search:
        inner.hnsw.efSearch = ef_search  # left as searches use it
    nlist = min(max_ivf_lists, choose_index(max(n, 2), dim, flat_max=0, gpu=True, large="ivf").nlist)
    if nlist >= 2 and small:
        sample = vectors[np.random.default_rng(0).permutation(n)[: 64 * nlist]]
        for kind, name in (("ivf", "Flat"), ("ivfsq", "SQ8")):
            t0 = time.perf_counter()
            ivf = _build(IndexChoice(kind, False, nlist=nlist, nprobe=1), dim, train=sample)  # as the clip index
            ivf.add(vectors)
            build_s = round(time.perf_counter() - t0, 2)
            for probe in sorted({min(p, nlist) for p in (*ivf_probe, max(1, nlist // 4))}):
                ivf.nprobe = probe
                found, seconds = _timed_search(ivf.search, queries, k)
                rows.append({"index": f"IVF{nlist},{name} nprobe={probe}", "kind": kind, "param": probe,
                             "build_s": build_s, "bytes_per_clip": (4 * dim if kind == "ivf" else dim) + 8,
                             **summarise(seconds).to_dict(),
                             **{f"recall@{x}": round(_recall(found, exact, x), 4) for x in ks}})
            del ivf
        # IVF-PQ as the clip index builds it past HNSW_MAX_VECTORS: a shortlist of RERANK_FACTOR * k by
        # PQ distance, re-ranked by the exact inner product (here from the vectors in memory)
        m = pq_codes(dim)
        t0 = time.perf_counter()
        pq = _build(IndexChoice("ivfpq", False, nlist=nlist, nprobe=1, pq_m=m, pq_bits=PQ_BITS), dim, train=sample)
        pq.add(vectors)
        build_s = round(time.perf_counter() - t0, 2)
        short = min(n, RERANK_FACTOR * k)
        for probe in sorted({min(p, nlist) for p in (*ivf_probe, max(1, nlist // 4))}):
            pq.nprobe = probe
            found, seconds = [], []
            for q in queries:
                t0 = time.perf_counter()
                _, cand = pq.search(q[None], short)
                cand = cand[0][cand[0] >= 0]
                order = np.argsort(-(vectors[cand] @ q), kind="stable")[:k]
                seconds.append(time.perf_counter() - t0)
                found.append(np.pad(cand[order], (0, k - len(order)), constant_values=-1))
            rows.append({"index": f"IVF{nlist},PQ{m}x{PQ_BITS}fs nprobe={probe}, re-ranked {short}", "kind": "ivfpq",
                         "param": probe, "build_s": build_s, "bytes_per_clip": m * PQ_BITS / 8 + 8,
                         **summarise(seconds).to_dict(),
                         **{f"recall@{x}": round(_recall(np.array(found), exact, x), 4) for x in ks}})
    for row in rows:
        row.setdefault("library", False)  # True: the library's own index as searches use it
    return rows
