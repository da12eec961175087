"""Storage of a video library index: catalog, feature cache, FAISS clip index, writer lock. Torch-free.

Layout of an index folder (``--index DIR``, default ``$VIDSEEK_INDEX`` else ``./.vidseek``)::

    DIR/
      catalog.sqlite        SQLite catalog in WAL mode (catalog.py): table ``videos`` (one row per
      catalog.sqlite-wal    file: path relative to the library root, size, mtime_ns, content hash,
      catalog.sqlite-shm    duration, fps, steps, status ok|error|pending, error, added_at), table
                            ``retired`` (ids of ok rows removed or replaced, with the time) and table
                            ``settings`` (library root, bundle fingerprint and folder, model choice,
                            window/stride seconds, rate, embedding and state dims, as JSON);
                            ``PRAGMA user_version`` = schema
      .lock                 writer lock (lock.py): flock'ed by the one writer, holds its pid
      cache/
        <id>.states.npy     (steps, H) float16: the video encoder's output for video <id> (cache.py),
                            memory-mapped read-only by the head at query time
        <id>.clips.npy      (windows, E) float16: L2-normalised clip embeddings of video <id>; the
                            source from which clips.faiss can always be rebuilt
      clips.faiss           FAISS index of the clip embeddings (clips.py): IndexIDMap2 over Flat or
                            HNSW, or IndexIVFFlat; id = video_id * 2**20 + window_number

Every file is written atomically (temporary file ``.<name>.*.tmp`` in the same folder, fsync,
``os.replace``), and every catalog change is one SQLite transaction, so a reader sees either the old
or the new state.

Truth and derived data: the catalog is the truth; ``cache/`` holds the features of the videos it
lists as ``ok``, and for ``RETAIN_RETIRED_S`` (10 minutes) those of the videos it retired;
``clips.faiss`` is derived from ``cache/*.clips.npy`` and may lag behind the catalog after a crash
(never ahead of it, with the protocol below). Video ids are never reused and every (re-)encoding
gets a fresh one, so a stale entry can never be taken for new content (a catalog that ``--rebuild``
deletes because it cannot be opened takes every cache file with it, and ids start again at 1).

Readers (``vidseek.library.searcher.Searcher``) open the catalog read-only, ``ClipIndex.load()`` and
``reconcile(ids of ok videos)``, which adds lagging videos from the cache in memory, and read each
video's cache files with the shape its catalog row gives. A removed or re-encoded video's row is
retired and its files kept ``RETAIN_RETIRED_S``, so a search that listed it just before still reads
them; a Searcher kept open longer that finds files gone reads the index again and retries once. A
video whose files still do not fit its row is damaged: searches skip it with a warning.

Write protocol of one indexing run (``vidseek.library.indexer.index_folder``), holding ``WriterLock`` (a SIGKILL at
any point leaves an index that passes ``vidseek.index.integrity.check`` and that the next run completes
without re-encoding what was done):

1. ``remove_temporaries(index_dir)``: the ``.*.tmp`` files of a killed writer. With ``--rebuild``,
   ``indexer.discard_index``: delete ``clips.faiss`` (the clip index may lag), then one
   ``catalog.remove(every path)`` transaction (ok rows are retired, so searches opened before keep
   working and ids go on rising). Killed before that transaction the index is unchanged; after it,
   it is empty, and a run with the settings stored by then (the old ones until step 2 stores the
   new ones) fills it without re-encoding what was done; another ``--rebuild`` starts over. A
   catalog that cannot be opened (not SQLite, damaged, newer schema) is deleted instead: every
   cache file first, then ``catalog.sqlite-wal`` and ``-shm`` (a WAL left behind would be replayed
   into the new catalog), then ``catalog.sqlite``; killed midway, ``--rebuild`` runs again.
2. Unless rebuilding, ``catalog.check_fingerprint(fp)``, ``check_settings(window, stride, rate,
   dim)`` and the library root; ``catalog.update_settings(...)`` (a rebuild also resets ``model``
   and ``state_dim``). ``clips.load()`` (an unreadable ``clips.faiss`` starts empty and is rebuilt
   from the cache). The ok videos whose cache files are missing, unreadable or not of the shape
   their row gives ((steps, state_dim) states, (windows, dim) clips) are damaged; then
   ``clips.reconcile(ids of the other ok videos)``, ``plan = catalog.scan(root)``,
   ``catalog.update_stat(plan.touched)``, and the damaged unchanged files join ``plan.changed``
   (encoded again under fresh ids).
3. Clip index first: ``clips.remove_videos(ids of plan.deleted + plan.changed)`` (one HNSW rebuild
   for all), ``clips.save()``; then ``catalog.remove(deleted paths)`` (ok rows retired); then delete
   the cache files no search can need (``indexer._drop_unused_features``, the orphans of ``integrity.unused_ids``): those of ids the catalog
   neither lists nor retired (left by a killed run) and those retired ``RETAIN_RETIRED_S`` ago or
   more, whose ids are then ``forget_retired``.
4. Each of ``plan.unreadable``: ``record_error(path, message)``. Each new or changed file:
   ``vid = catalog.record_pending(file)`` (fresh id; a changed file's old row is deleted, retired if
   it was ok; a crash leaves a ``pending`` row, which the next scan lists as changed), encode,
   ``states.put(vid, states)``, ``clips.add(vid, embeddings)`` (also writes ``<vid>.clips.npy``),
   ``catalog.record_ok(file, ...)`` (and ``state_dim`` with the first). When the file fails (it
   does not decode, the encoder fails, its features cannot be stored as they are):
   ``catalog.record_error(file, message)``, ``clips.remove_video(vid)``, next file. When the index
   cannot be written (``StorageWriteError``, ``CatalogError``: disk full, read-only folder,
   permissions) the run stops at once: the file stays ``pending`` and the next run resumes there.
5. ``clips.save()`` and ``_drop_unused_features`` at the end (a killed run's ``clips.faiss`` lags,
   and the next run's ``reconcile`` completes it from the cache).

Import the submodules (``vidseek.index.catalog`` ...) or the names below; importing this package
imports neither faiss nor SQLite.
"""

from __future__ import annotations

import importlib

from vidseek.errors import VidseekError

_EXPORTS = {
    "Catalog": "catalog", "FileState": "catalog", "ScanPlan": "catalog", "Video": "catalog",
    "IndexMismatch": "catalog", "CatalogError": "catalog", "UnsafePath": "catalog",
    "content_hash": "catalog", "check_relative": "catalog", "VIDEO_SUFFIXES": "catalog",
    "FeatureCache": "cache", "CacheError": "cache", "StorageWriteError": "cache", "storage_errors": "cache",
    "remove_temporaries": "cache",
    "IndexSettings": "settings", "windows": "settings",
    "ClipIndex": "clips", "ClipIndexError": "clips", "IndexChoice": "clips", "Reconciled": "clips",
    "choose_index": "clips",
    "encode_ids": "clips", "decode_ids": "clips",
    "WriterLock": "lock", "IndexLocked": "lock",
}


class IndexStorageError(VidseekError):
    """Base of every error raised by the index storage; the message says what to do."""


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"vidseek.index.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'vidseek.index' has no attribute {name!r}")


__all__ = ["IndexStorageError", *_EXPORTS]  # noqa: PLE0604 (the keys are strings)
