"""Synthetic libraries for the scale benchmark: indexes of N videos written without decoding any.

``synthetic_library(folder, bundle, spec)`` writes an index folder exactly as ``vidseek index``
lays it out, through the index's own writers: ``Catalog.record_ok`` per video, ``FeatureCache.put``
of a ``(steps, H)`` state array (stored as a new index stores them: ``DEFAULT_STATES``) and of the
``(windows, E)`` clip embeddings, and one
``ClipIndex.rebuild`` + ``save`` (the path a rebuild or a large removal takes), so the FAISS
structure is the one ``choose_index`` picks for that many clips. Shapes come from the bundle
(H = the video encoder's state size, E = its retrieval size, the clip windows and rate of a real
index); durations are uniform in ``[min_seconds, max_seconds]``. Values are random: states are
normal(0, 0.3) clipped to ±1, like LSTM outputs, and each video's clip embeddings lie around a random
direction of its own (within-video cosine ~0.8, the case ``index/clips.py`` measured).

A folder is reused when its ``synthetic.json`` matches the spec, the bundle fingerprint and the
FAISS structure ``choose_index`` picks now (otherwise only the index is rebuilt); the benchmark only
ever deletes folders that carry its ``.vidseek-bench`` marker.
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vidseek.engine.bundle import Bundle
from vidseek.library.indexer import DEFAULT_STATES, DEFAULT_STRIDE_S, DEFAULT_WINDOW_S

MARKER = ".vidseek-bench"
INFO_FILE = "synthetic.json"  # written when the library is complete
FILES_FILE = "files.json"  # written when its catalog and cache files are complete
STATE_POOL_ROWS = 8192  # states are slices of one random pool (content does not change latency)
WRITE_THREADS = 4  # cache files are fsynced one by one; threads overlap the waits
WITHIN_VIDEO_NOISE = 0.5  # |noise| / |centre| of a video's clip embeddings: cosine ~0.8 between its windows


@dataclass(frozen=True)
class LibrarySpec:
    """What a synthetic library holds."""

    videos: int
    min_seconds: float = 10.0
    max_seconds: float = 60.0
    window_s: float = DEFAULT_WINDOW_S
    stride_s: float = DEFAULT_STRIDE_S
    seed: int = 0

    def __post_init__(self) -> None:
        if self.videos < 1:
            raise ValueError(f"a library holds at least one video, got {self.videos}")
        if not 0 < self.min_seconds <= self.max_seconds:
            raise ValueError(f"video durations must satisfy 0 < min <= max, got {self.min_seconds}, {self.max_seconds}")


def bundle_dims(bundle: Bundle) -> tuple[int, int, int]:
    """(D features, H video states, E retrieval embedding) of a bundle, from bundle.json."""
    outputs = {o["name"]: o["shape"] for o in bundle.graphs["video_encoder"]["outputs"]}
    h = outputs["video_states"][-1]
    e = int(bundle.meta.get("retrieval_dim") or 0)
    if not isinstance(h, int) or e < 1:
        raise ValueError(f"bundle {bundle.path} has no fixed state size or no retrieval embedding; "
                         "library search (and this benchmark) needs a bundle trained with --set retrieval_dim=256")
    return bundle.feature_dim, h, e


def bundle_rate(bundle: Bundle) -> float:
    """Feature steps per second of a bundle (its frame encoder's rate, else its data rate, else 5)."""
    fe = bundle.meta["features"].get("frame_encoder") or {}
    return float(fe.get("rate") or bundle.meta["features"].get("rate") or 5.0)


def _identity(bundle: Bundle, spec: LibrarySpec) -> dict:
    return {"spec": asdict(spec), "fingerprint": bundle.fingerprint, "dims": list(bundle_dims(bundle)),
            "rate": bundle_rate(bundle), "states": DEFAULT_STATES}


def read_info(folder: Path, name: str = INFO_FILE) -> dict | None:
    """The ``synthetic.json`` of a completed synthetic library (or another of its records), or None."""
    path = Path(folder) / name
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def clear_folder(folder: Path) -> None:
    """Delete a synthetic library folder; refuses folders the benchmark did not create."""
    folder = Path(folder)
    if not folder.exists():
        return
    if not (folder / MARKER).is_file():
        raise FileExistsError(f"{folder} exists and is not a synthetic library of `vidseek bench` (no {MARKER}); "
                              "choose another --work-dir")
    shutil.rmtree(folder)


def synthetic_library(folder: str | Path, bundle: Bundle, spec: LibrarySpec, progress=None) -> dict:
    """Write (or reuse) the synthetic library ``spec`` for ``bundle`` in ``folder``; returns its info:
    spec, dims, videos, clips, steps, index structure, build seconds, and whether it was reused.

    The files are written first and recorded in ``files.json``; a run interrupted while the FAISS
    index is built (hours for HNSW over millions of clips on a small CPU) resumes from there.
    ``progress``: called with (videos written, total) now and then.
    """
    from vidseek.index.catalog import Catalog
    from vidseek.index.clips import ClipIndex
    from vidseek.index.lock import WriterLock

    from vidseek.index.clips import choose_index

    folder = Path(folder)
    identity = _identity(bundle, spec)

    def matches(record: dict | None) -> bool:
        return record is not None and all(record.get(k) == v for k, v in identity.items())

    info = read_info(folder)
    if matches(info) and info.get("index") == choose_index(info["clips"], identity["dims"][2]).describe():
        return {**info, "reused": True}
    files = read_info(folder, FILES_FILE)
    if not matches(files):  # a complete library (older index parameters) has complete files too
        files = {k: v for k, v in info.items() if k not in ("index", "index_kind", "faiss_build_s")} \
            if matches(info) else _write_files(folder, bundle, spec, identity, progress)
    t0 = time.perf_counter()
    with WriterLock(folder), Catalog(folder) as catalog:
        clips = ClipIndex(folder, identity["dims"][2])
        clips.rebuild(v.id for v in catalog.videos("ok"))
        clips.save()
    info = {**files, "index": clips.choice.describe(), "index_kind": clips.choice.kind,
            "faiss_build_s": round(time.perf_counter() - t0, 2)}
    (folder / INFO_FILE).write_text(json.dumps(info, indent=2))
    return {**info, "reused": False}


BLOCK = 4096  # file-system block: each cache file takes whole blocks


def estimated_bytes(spec: LibrarySpec, state_dim: int, dim: int, rate: float) -> int:
    """About how many bytes a synthetic library takes on disk: its states (stored as ``DEFAULT_STATES``)
    and float16 clip embeddings, each file in whole blocks, and the clip index ``choose_index``
    picks (HNSW ~1 KB a clip, IVF-SQ8 dim + 8 bytes). The 1M bench library: 34.0 GB measured, 35.0 estimated."""
    from vidseek.index.cache import state_bytes
    from vidseek.index.clips import choose_index

    seconds = (spec.min_seconds + spec.max_seconds) / 2
    clips = max(1.0, (seconds - spec.window_s) / spec.stride_s + 1)
    blocks = lambda n: -(-n // BLOCK) * BLOCK  # noqa: E731
    per_video = blocks(state_bytes(round(seconds * rate), state_dim, DEFAULT_STATES) + 128) + \
        blocks(int(clips * 2 * dim) + 128)
    kind = choose_index(int(spec.videos * clips), dim, gpu=False).kind
    per_clip = {"flat": 4 * dim + 8, "ivf": 4 * dim + 8, "ivfsq": dim + 8, "ivfpq": dim // 4 + 8}.get(kind, 1024)
    return int(spec.videos * (per_video + clips * per_clip))


def _check_disk(folder: Path, spec: LibrarySpec, state_dim: int, dim: int, rate: float) -> None:
    """``ValueError`` (what it needs, what is free) when the library cannot fit the disk of ``folder``."""
    need = estimated_bytes(spec, state_dim, dim, rate)
    probe = next(p for p in (folder, *folder.parents) if p.exists())
    free = shutil.disk_usage(probe).free
    if need > 0.95 * free:
        raise ValueError(f"a synthetic library of {spec.videos:,} videos needs about {need / 1e9:.1f} GB, and "
                         f"{probe} has {free / 1e9:.1f} GB free: free some disk space, give --work-dir on a larger "
                         "disk, or choose a smaller --library-size")


def _write_files(folder: Path, bundle: Bundle, spec: LibrarySpec, identity: dict, progress) -> dict:
    """Write the catalog and the cache files of a fresh synthetic library; returns ``files.json``."""
    from vidseek.engine.video import num_steps
    from vidseek.index.cache import FeatureCache
    from vidseek.index.catalog import Catalog, FileState
    from vidseek.index.lock import WriterLock

    _, h, e = bundle_dims(bundle)
    rate = bundle_rate(bundle)
    _check_disk(folder, spec, h, e, rate)
    clear_folder(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("written by `vidseek bench`; safe to delete\n")
    # the library root, never created: nothing is decoded, and a search treats a missing library folder
    # as one not mounted (its moments are returned from the cache, not left out as deleted files)
    root = folder / "videos"
    rng = np.random.default_rng(spec.seed)
    pool = np.clip(rng.normal(0.0, 0.3, size=(STATE_POOL_ROWS, h)), -1, 1).astype(np.float16)
    t0 = time.perf_counter()
    n_clips = n_steps = 0
    with WriterLock(folder), Catalog(folder) as catalog, ThreadPoolExecutor(WRITE_THREADS) as writer:
        catalog.update_settings(root=str(root.resolve()), fingerprint=bundle.fingerprint,
                                bundle=str(Path(bundle.path).resolve()), window_s=spec.window_s,
                                stride_s=spec.stride_s, rate=rate, dim=e, state_dim=h, states=DEFAULT_STATES)
        settings = catalog.settings()
        states = FeatureCache(folder, "states", max_open=0, precision=DEFAULT_STATES)  # as `vidseek index` stores them
        clips = FeatureCache(folder, "clips", max_open=0)
        pending = []
        for i in range(spec.videos):
            duration = float(rng.uniform(spec.min_seconds, spec.max_seconds))
            steps = num_steps(duration, rate)
            start = int(rng.integers(0, STATE_POOL_ROWS - steps)) if steps < STATE_POOL_ROWS else 0
            state = pool[start:start + steps] if steps <= STATE_POOL_ROWS else np.resize(pool, (steps, h))
            n_win = settings.n_windows(steps)
            centre = rng.normal(size=e)
            centre /= np.linalg.norm(centre)
            emb = centre + rng.normal(0.0, WITHIN_VIDEO_NOISE / np.sqrt(e), size=(n_win, e))
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            vid = catalog.record_ok(FileState(f"v{i:07d}.mp4", 0, 0, None), duration=round(duration, 3),
                                    fps=rate, steps=steps)
            pending.append(writer.submit(states.put, vid, state))
            pending.append(writer.submit(clips.put, vid, emb.astype(np.float16)))
            n_clips += n_win
            n_steps += steps
            if len(pending) > 4 * WRITE_THREADS:
                for job in pending:
                    job.result()
                pending = []
            if progress is not None and (i + 1) % 1000 == 0:
                progress(i + 1, spec.videos)
        for job in pending:
            job.result()
    files = {**identity, "videos": spec.videos, "clips": n_clips, "steps": n_steps,
             "write_s": round(time.perf_counter() - t0, 2)}
    (folder / FILES_FILE).write_text(json.dumps(files, indent=2))
    return files
