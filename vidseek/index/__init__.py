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
      clips.faiss           FAISS index of the clip embeddings (clips.py): IndexIDMap2 over Flat or
                            HNSW, or IndexIVFFlat; id = video_id * 2**20 + window_number

Every file is written atomically (temporary file in the same folder, fsync, ``os.replace``), and
every catalog change is one SQLite transaction, so a reader sees either the old or the new state.

Truth and derived data: the catalog is the truth; ``cache/`` holds the features of the videos it
lists as ``ok``; ``clips.faiss`` is derived from ``cache/*.clips.npy`` and may lag behind the
catalog after a crash (never ahead of it, with the protocol below). Readers open the catalog
read-only, ``ClipIndex.load()`` and ``reconcile(ids of ok videos)``, which adds lagging videos from
the cache in memory. Video ids are never reused and every (re-)encoding gets a fresh one, so a stale
entry can never be taken for new content.

Write protocol of one indexing run, holding ``WriterLock`` (a SIGKILL at any point leaves an index
that passes ``Catalog.integrity_check`` and that the next run completes without re-encoding):

1. ``remove_temporaries(index_dir)``; ``catalog.check_fingerprint(fp)``; ``clips.load()`` and
   ``clips.reconcile(ids of ok videos)`` (completes a clip index a crash left behind);
   ``plan = catalog.scan(root)``; ``catalog.update_stat(plan.touched)``.
2. Clip index first: ``clips.remove_videos(ids of plan.deleted + plan.changed)`` (one HNSW rebuild
   for all), ``clips.save()``; then ``catalog.remove(deleted paths)``; then delete the cache files
   of ids the catalog no longer lists (``FeatureCache.remove``, ``ClipIndex.forget``).
3. Each new or changed file: ``vid = catalog.record_pending(file)`` (fresh id; a crash leaves a
   ``pending`` row, which the next scan lists as changed; delete the cache files of a changed
   file's old id ``file.video_id``), encode, ``states.put(vid, states)``,
   ``clips.add(vid, embeddings)`` (also writes ``<vid>.clips.npy``), ``catalog.record_ok(file, ...)``.
   On failure ``catalog.record_error(file, message)`` and ``clips.remove_video(vid)``; each of
   ``plan.unreadable``: ``record_error(path, message)``.
4. ``clips.save()`` between videos every few minutes, and at the end.

Import the submodules (``vidseek.index.catalog`` ...) or the names below; importing this package
imports neither faiss nor SQLite.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Catalog": "catalog", "FileState": "catalog", "ScanPlan": "catalog", "Video": "catalog",
    "IndexMismatch": "catalog", "CatalogError": "catalog", "UnsafePath": "catalog",
    "content_hash": "catalog", "check_relative": "catalog", "VIDEO_SUFFIXES": "catalog",
    "FeatureCache": "cache", "CacheError": "cache", "StorageWriteError": "cache", "atomic_write": "cache",
    "remove_temporaries": "cache",
    "ClipIndex": "clips", "ClipIndexError": "clips", "IndexChoice": "clips", "Reconciled": "clips",
    "choose_index": "clips",
    "windows": "clips", "encode_ids": "clips", "decode_ids": "clips",
    "WriterLock": "lock", "IndexLocked": "lock",
}


class IndexStorageError(Exception):
    """Base of every error raised by the index storage; the message says what to do."""


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"vidseek.index.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'vidseek.index' has no attribute {name!r}")


__all__ = ["IndexStorageError", *_EXPORTS]  # noqa: PLE0604 (the keys are strings)
