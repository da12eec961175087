"""Storage of a video library index: catalog, feature cache, FAISS clip index, writer lock. Torch-free.

Layout of an index folder (``--index DIR``, default ``$VIDSEEK_INDEX`` else ``./.vidseek``)::

    DIR/
      catalog.sqlite        SQLite catalog in WAL mode (catalog.py): table ``videos`` (one row per
      catalog.sqlite-wal    file: path relative to the library root, size, mtime_ns, content hash,
      catalog.sqlite-shm    duration, fps, steps, status ok|error|pending, error, added_at) and table
                            ``settings`` (library root, bundle fingerprint, window/stride seconds,
                            rate, embedding and state dims, as JSON); ``PRAGMA user_version`` = schema
      .lock                 writer lock (lock.py): flock'ed by the one writer, holds its pid
      cache/
        <id>.states.npy     (steps, H) float16: the video encoder's output for video <id> (cache.py),
                            memory-mapped read-only by the head at query time
        <id>.clips.npy      (windows, E) float16: L2-normalised clip embeddings of video <id>; the
                            source from which clips.faiss can always be rebuilt
      clips.faiss           FAISS IndexIDMap2 (Flat, HNSW or IVF inside) over the clip embeddings,
                            id = video_id * 2**20 + window_number (clips.py)

Every file is written atomically (temporary file in the same folder, fsync, ``os.replace``), and
every catalog change is one SQLite transaction, so a reader sees either the old or the new state.

Truth and derived data: the catalog is the truth; ``cache/`` holds what it lists as ``ok``;
``clips.faiss`` is derived from ``cache/*.clips.npy`` and may lag behind the catalog after a crash.
Readers call ``ClipIndex.reconcile(ok_video_ids)`` after ``load()``, which adds missing videos from
the cache and drops ids of videos no longer ``ok`` (in memory; a writer then saves it).

Write protocol of one indexing run, holding ``WriterLock`` (each step survives SIGKILL):

1. ``plan = catalog.scan(root, suffixes)``.
2. Deleted files: ``clips.remove_video(id)`` for each, ``clips.save()``, then ``catalog.remove(paths)``,
   then delete their cache files (``FeatureCache.remove``). Orphan cache files left by a crash are
   harmless (no catalog row names them) and can be removed by the next writer.
3. Each new or changed file: ``vid = catalog.record_pending(file)`` (a crash from here on leaves a
   ``pending`` row, which the next scan lists as changed), encode, ``states.put(vid, states)``,
   ``clips.add(vid, embeddings)`` (writes ``<vid>.clips.npy``), ``catalog.record_ok(file, ...)``.
   A failure: ``catalog.record_error(file, msg)`` and ``clips.remove_video(vid)``.
4. ``clips.save()`` every few minutes and at the end.

Import the submodules (``vidseek.index.catalog`` ...) or the names below; importing this package
imports neither faiss nor SQLite.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Catalog": "catalog", "FileState": "catalog", "ScanPlan": "catalog", "Video": "catalog",
    "IndexMismatch": "catalog", "CatalogError": "catalog", "UnsafePath": "catalog",
    "content_hash": "catalog", "VIDEO_SUFFIXES": "catalog",
    "FeatureCache": "cache", "CacheError": "cache", "StorageWriteError": "cache",
    "ClipIndex": "clips", "ClipIndexError": "clips", "IndexChoice": "clips", "choose_index": "clips",
    "windows": "clips", "encode_ids": "clips", "decode_ids": "clips",
    "WriterLock": "lock", "IndexLocked": "lock",
}


class IndexStorageError(Exception):
    """Base of every error raised by the index storage; the message says what to do."""


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"vidseek.index.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'vidseek.index' has no attribute {name!r}")


__all__ = ["IndexStorageError", *_EXPORTS]
