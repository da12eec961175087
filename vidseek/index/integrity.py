"""The one definition of a sound index: which videos are damaged, which cache files are orphans,
and the whole-folder check that ``vidseek info`` and ``vidseek doctor`` report.

- A **damaged video** is an ``ok`` catalog row whose cache files do not fit it: its row records
  no steps, or ``cache/<id>.states.npy`` is not (steps, state_dim) float16, or
  ``cache/<id>.clips.npy`` is not (windows, dim) float16 (``expected_shape``), or a file is missing
  or unreadable. Search skips such a video with a warning; ``vidseek index`` encodes it again.
- An **orphan** is a cache file of a video id the catalog neither lists nor retired less than
  ``RETAIN_RETIRED_S`` ago (``unused_ids``): no search can need it, and the next ``vidseek index``
  deletes it.
- A clip index that lacks some ``ok`` videos is not damaged: it lags after a crash and
  ``ClipIndex.reconcile`` completes it from the cache.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from vidseek.index.cache import KINDS, CacheError, FeatureCache
from vidseek.index.catalog import RETAIN_RETIRED_S, Catalog, Video, escapes
from vidseek.index.clips import INDEX_FILE, ClipIndexError, decode_ids, file_crc32, read_ids
from vidseek.index.settings import IndexSettings

def expected_shape(video: Video, settings: IndexSettings, kind: str) -> tuple[int | None, int | None]:
    """The shape ``cache/<id>.<kind>.npy`` must have for ``video`` (None: any size, when the index
    records no such setting, as in indexes made before it was recorded)."""
    if kind == "states":
        return video.steps, settings.state_dim
    if kind == "clips":
        return (settings.n_windows(video.steps) if settings.has_windows else None), settings.dim
    raise ValueError(f"unknown cache kind {kind!r}; expected one of {', '.join(KINDS)}")


def read_features(cache: FeatureCache, video: Video, settings: IndexSettings, values: bool = True) -> np.ndarray:
    """``video``'s array of ``cache`` (memory-mapped), checked against its catalog row; ``CacheError``
    (the reason) when it is missing, unreadable, of another shape or, with ``values``, holds a value
    that is not finite (a search, which reads only parts of the states, checks those parts itself:
    ``non_finite``)."""
    if not video.steps or video.steps < 1:
        raise CacheError(f"its catalog row records {video.steps!r} feature steps")
    array = cache.get(video.id, shape=expected_shape(video, settings, cache.kind))
    if values and not np.isfinite(array).all():
        raise CacheError(non_finite(cache.path(video.id)))
    return array


def non_finite(path: Path) -> str:
    """Why a cache file with NaN or infinite values is damaged (the same words for every reader)."""
    return f"{path} holds NaN or infinite values (damaged or edited); delete it and re-run `vidseek index`"


def damaged_videos(videos: Iterable[Video], settings: IndexSettings, *caches: FeatureCache) -> dict[int, str]:
    """Why each damaged video among ``videos`` (ok rows) is damaged, by id; only the files of the
    given ``caches`` are read (a search checks clip files up front and state files as it reads them)."""
    damaged = {}
    for video in videos:
        for cache in caches:
            try:
                read_features(cache, video, settings)
            except CacheError as exc:
                damaged[video.id] = str(exc)
                break
    return damaged


def unused_ids(cached: Iterable[int], listed: Iterable[int], retired: dict[int, float],
               now: float | None = None) -> set[int]:
    """The ids among ``cached`` whose files no search can need (orphans): not ``listed`` in the
    catalog, and not retired less than ``RETAIN_RETIRED_S`` seconds before ``now``."""
    now = time.time() if now is None else now
    recent = {vid for vid, at in retired.items() if now - at < RETAIN_RETIRED_S}
    return set(cached) - set(listed) - recent


def expired_ids(retired: dict[int, float], now: float | None = None) -> set[int]:
    """The retired ids whose files have been kept ``RETAIN_RETIRED_S`` seconds or more."""
    now = time.time() if now is None else now
    return {vid for vid, at in retired.items() if now - at >= RETAIN_RETIRED_S}


def cached_ids(index_dir: str | Path) -> set[int]:
    """Ids of the videos with any cache file in ``index_dir``."""
    return {vid for kind in KINDS for vid in FeatureCache(index_dir, kind).video_ids()}


def clip_index_videos(index_dir: str | Path) -> set[int] | None:
    """The video ids ``clips.faiss`` holds clips of (None when there is no clip index);
    ``ClipIndexError`` when it cannot be read."""
    stored = read_ids(index_dir)
    return None if stored is None else {int(v) for v in np.unique(decode_ids(stored[1])[0])}


def clip_index_damaged(index_dir: str | Path, settings: IndexSettings) -> bool:
    """Whether ``clips.faiss`` differs from what the writer saved. The writer records the CRC-32 of
    the file it is about to move into place (``clips_crc32_next``), then, once it is there, as the
    saved one (``clips_crc32``), so a writer killed in between leaves a file with one of the two. An
    index that records none, or has no clips.faiss, is not damaged by this test."""
    path = Path(index_dir) / INDEX_FILE
    if settings.clips_crc32 is None and settings.clips_crc32_next is None or not path.is_file():
        return False
    try:
        return not crc_accepted(settings, file_crc32(path))
    except OSError:
        return True


def crc_accepted(settings: IndexSettings, crc: int) -> bool:
    """Whether a clips.faiss of this CRC-32 is one the writer saved (see ``clip_index_damaged``);
    any is, in an index that records none (made before checksums were)."""
    accepted = {settings.clips_crc32, settings.clips_crc32_next} - {None}
    return not accepted or crc in accepted


def check(catalog: Catalog) -> list[str]:
    """Problems found in the index folder of ``catalog``, one message each (empty: the index is sound).

    Checks SQLite's ``PRAGMA integrity_check``; that every catalog path stays under the root; that
    no ``ok`` video is damaged (see the module docstring); that ``clips.faiss`` is the file the
    writer saved (``clip_index_damaged``); and that every id in it decodes to a video the catalog
    knows and a window it has.
    """
    index_dir = catalog.index_dir
    problems = catalog.sqlite_problems()
    settings = catalog.settings()
    everything = catalog.videos()
    problems += [f"video {v.id}: {v.error}" for v in everything if escapes(v.path)]
    ok = [v for v in everything if v.status == "ok"]
    caches = [FeatureCache(index_dir, kind) for kind in KINDS]
    by_id = {v.id: v for v in ok}
    for vid, reason in damaged_videos(ok, settings, *caches).items():
        problems.append(f"video {vid} ({by_id[vid].path}): {reason}")
    if clip_index_damaged(index_dir, settings):
        return problems + [f"{index_dir / INDEX_FILE} does not match the checksum recorded when it was written "
                           "(damaged or edited): `vidseek index` rebuilds it from the cached clip embeddings"]
    try:
        stored = read_ids(index_dir)
    except ClipIndexError as exc:
        return problems + [str(exc)]
    if stored is None:
        return problems
    dim, ids = stored
    if settings.dim is not None and dim != settings.dim:
        problems.append(f"clips.faiss holds {dim}-d embeddings but the catalog says dim={settings.dim}")
    video_ids, window_numbers = decode_ids(ids)
    unknown = sorted(set(video_ids.tolist()) - {v.id for v in everything})
    if unknown:
        problems.append(f"clips.faiss has clips of {len(unknown)} videos the catalog does not know "
                        f"(ids {', '.join(map(str, unknown[:5]))}{', ...' if len(unknown) > 5 else ''}); "
                        "re-run `vidseek index` to repair it")
    if settings.has_windows:
        for v in ok:
            if not v.steps or v.steps < 1:
                continue
            mine = window_numbers[video_ids == v.id]
            count = settings.n_windows(v.steps)
            if mine.size and mine.max() >= count:
                problems.append(f"clips.faiss has window {int(mine.max())} of video {v.id}, which has {count} windows")
    return problems
