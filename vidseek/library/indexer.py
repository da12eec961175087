"""The indexer: a video folder -> an index. Decode, encode once per video, cache, embed clips. Torch-free.

Follows the write protocol of ``vidseek.index`` (see its docstring), so a run killed at any point
leaves an index that opens, passes its integrity check and is completed by the next run.
"""

from __future__ import annotations

import errno
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vidseek.engine.bundle import Bundle, BundleError, load_bundle
from vidseek.engine.grounder import VIDEO_SIDE, Grounder
from vidseek.engine.registry import family
from vidseek.engine.session import BackendUnavailable
from vidseek.index import IndexStorageError, integrity
from vidseek.index.cache import KINDS, CacheError, FeatureCache, StorageWriteError, remove_temporaries
from vidseek.index.catalog import CATALOG_FILE, SCHEMA_VERSION, Catalog, IndexMismatch, content_hash
from vidseek.index.clips import INDEX_FILE, KEY_FILE, ClipIndex, ClipIndexError, file_crc32
from vidseek.index.lock import WriterLock
from vidseek.index.settings import IndexSettings

DEFAULT_WINDOW_S = 4.0  # clip window length, seconds
DEFAULT_STRIDE_S = 2.0  # clip window stride (50% overlap)
# How a new index stores its states (``vidseek.index.cache.PRECISIONS``): int4, a quarter of float16's
# bytes, at no measured accuracy cost with the built-in bundle (benchmarks/state_precision.py); int8
# for a zero-shot bundle, whose states are frame embeddings whose similarity curve finds the spans.
DEFAULT_STATES = "int4"
ZERO_SHOT_STATES = "int8"


@dataclass
class IndexReport:
    plan: str  # what the scan found
    indexed: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    removed: int = 0
    seconds: float = 0.0
    video_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # what the run found and set right (a damaged clip index, a moved library)
    domain: str = "unknown"  # what footage the bundle was trained on (``Bundle.domain``)

    @property
    def realtime(self) -> float:
        """Seconds of video indexed per second of work."""
        return self.video_seconds / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        """JSON-ready fields (``vidseek index --json``)."""
        return {**asdict(self), "errors": [{"path": p, "error": e} for p, e in self.errors],
                "realtime": round(self.realtime, 2)}

    def summary(self) -> str:
        speed = (f" ({self.video_seconds:.0f} s of video in {self.seconds:.1f} s, {self.realtime:.1f}x real time)"
                 if self.indexed else "")
        return (f"{self.plan}; indexed {len(self.indexed)}{speed}, removed {self.removed}, errors {len(self.errors)}"
                + "".join(f"; {note}" for note in self.notes))


def clip_embeddings(retrieval_steps: np.ndarray, settings: IndexSettings) -> tuple[np.ndarray, list]:
    """(T, E) step projections -> (W, E) L2-normalised window embeddings and the windows (start, end) steps."""
    wins = settings.windows(len(retrieval_steps))
    emb = np.stack([retrieval_steps[a:b].mean(0) for a, b in wins]).astype(np.float32)
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    return emb, wins


def _check_bundle(bundle: Bundle) -> None:
    if not bundle.meta.get("retrieval_dim"):
        raise BundleError(f"bundle {bundle.path} has no retrieval embedding, so it cannot index a library: "
                         "train with --set retrieval_dim=256 and export again")
    if not bundle.meta["features"].get("frame_encoder"):
        raise BundleError(f"bundle {bundle.path} expects precomputed features (no frame encoder), so it cannot "
                         "index video files: train with --videos (or on `vidseek features` output) and export again")


def _drop_unused_features(catalog: Catalog, states: FeatureCache, clips: ClipIndex) -> None:
    """Delete the cache files no search can need: those of ids the catalog neither lists nor retired
    (left by a killed run), and those of ids retired ``RETAIN_RETIRED_S`` seconds ago or more (a
    search that listed such a video before it was removed or re-encoded has finished by then)."""
    now, retired = time.time(), catalog.retired()
    cached = set(states.video_ids()) | set(clips.embeddings.video_ids())
    for vid in integrity.unused_ids(cached, (v.id for v in catalog.videos()), retired, now):
        states.remove(vid)
        clips.forget(vid)
    catalog.forget_retired(integrity.expired_ids(retired, now))


def _delete(path: Path) -> None:
    """Delete the file ``path`` if it exists; ``StorageWriteError`` when it cannot be deleted."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        reason = errno.errorcode.get(exc.errno, type(exc).__name__) if exc.errno else type(exc).__name__
        raise StorageWriteError(f"could not delete {path}: {exc.strerror or exc} ({reason}); make the index folder "
                                "writable, then run `vidseek index --rebuild` again") from exc


def _unusable_catalog(index_dir: Path) -> bool:
    """Whether the index folder holds a catalog that cannot be opened to discard its rows: not an
    SQLite database, damaged (SQLite's ``quick_check`` fails) or of a newer schema. A disk or
    folder that cannot be read or written is no reason (``Catalog`` then says what to do)."""
    path = index_dir / CATALOG_FILE
    if not path.is_file():
        return False
    try:
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            healthy = [row[0] for row in db.execute("PRAGMA quick_check")] == ["ok"]
            if healthy and version:
                for table in ("videos", "settings"):  # text that does not decode: damaged rows
                    db.execute(f"SELECT * FROM {table}").fetchall()
        finally:
            db.close()
    except sqlite3.OperationalError as exc:  # unreadable, busy, disk errors: not the file's fault ...
        return "decode" in str(exc).lower()  # ... unless its text does not decode
    except (sqlite3.DatabaseError, UnicodeDecodeError):  # "file is not a database", "malformed", undecodable
        return True
    return version > SCHEMA_VERSION or not healthy


def discard_index(index_dir: Path) -> None:
    """Empty the index in ``index_dir`` for ``--rebuild``; the caller holds its ``WriterLock``.

    ``clips.faiss`` goes first (a missing clip index only lags: readers rebuild it from the cache),
    then one catalog transaction removes every row, retiring the ok ones, so that searches opened
    before keep reading their cache files for ``RETAIN_RETIRED_S`` and video ids are never reused.
    Killed before that transaction, the index is unchanged; after it, it is an empty index with the
    old settings, which the old bundle or another ``--rebuild`` fills again.

    A catalog that cannot be opened (``_unusable_catalog``) is deleted with every cache file
    instead: the cache files first (with no catalog row of theirs left, none can be mistaken for a
    video of the new catalog, whose ids start again at 1), then the catalog's WAL and shared-memory
    files, then the catalog itself (a WAL left behind would be replayed into the new catalog).
    Killed midway, the catalog is still unusable or already gone, and ``--rebuild`` runs again.
    """
    _delete(index_dir / INDEX_FILE)
    _delete(index_dir / KEY_FILE)
    if not _unusable_catalog(index_dir):
        with Catalog(index_dir) as catalog:
            catalog.remove([v.path for v in catalog.videos()])
        return
    for kind in KINDS:
        cache = FeatureCache(index_dir, kind)
        for vid in cache.video_ids():
            cache.remove(vid)
    for suffix in ("-wal", "-shm", ""):
        _delete(index_dir / (CATALOG_FILE + suffix))


@dataclass
class Encoded:
    """One video decoded and encoded (``encode_file``): what the writer stores, or why it failed."""

    states: np.ndarray | None = None  # (T, H) float16 video states, the feature cache's entry
    clips: np.ndarray | None = None  # (windows, D) clip embeddings
    duration: float = 0.0  # seconds of footage
    steps: int = 0  # feature steps (T)
    gaps: list = field(default_factory=list)  # stretches without frames (``VideoInfo.gaps``)
    error: str | None = None  # "ExceptionType: message" when the file could not be encoded


class EncodeError(Exception):
    """A file could not be decoded or encoded (the message of ``Encoded.error``)."""


SETUP_ERRORS = (BackendUnavailable, BundleError)  # the machine or the bundle, not the file: they stop the run


def encode_file(grounder: Grounder, path: Path, settings: IndexSettings) -> Encoded:
    """Decode one video file and run the video side of the bundle: the work that may run anywhere
    (in this process, or on a Ray worker). Never raises for a bad file: the error is returned. A
    backend this machine lacks or a graph that does not load (``SETUP_ERRORS``) is no fault of the
    file and is raised: recorded against the file, it would stick to it until it changed."""
    try:
        feats, info = grounder.video_features(path)
        out = grounder.video_outputs(feats[None])
        emb, _ = clip_embeddings(out["retrieval_steps"][0], settings)
        return Encoded(out["video_states"][0].astype(np.float16), emb, float(info.duration), len(feats),
                       [tuple(g) for g in info.gaps])
    except SETUP_ERRORS:
        raise
    except Exception as exc:  # a bad file: recorded by the writer, never stops the library
        return Encoded(error=f"{type(exc).__name__}: {exc}")


def index_folder(video_dir: str | Path, index_dir: str | Path, bundle_dir: str | Path, *, backend: str = "onnxruntime",
                 window_s: float = DEFAULT_WINDOW_S, stride_s: float = DEFAULT_STRIDE_S, progress: bool = True,
                 model: str | None = None, rebuild: bool = False, ray: str | None = None,
                 retry_errors: bool = False, states: str | None = None) -> IndexReport:
    """Bring the index in `index_dir` up to date with the videos under `video_dir`.

    `bundle_dir` is a bundle folder (``vidseek.library.models.resolve_model`` turns a ``--model``
    choice into one); `model`, the choice itself, is stored in the settings so that search can say
    how to re-create the bundle should its folder disappear (a cleared cache). `rebuild` discards
    the index first (``discard_index``) and indexes every video again, with whatever bundle, window,
    stride and library root are given. `ray`: decode and encode on Ray (``vidseek.library.distributed``):
    ``"local"`` for a Ray started for this run (or the one this process already joined), else the
    address of a cluster; the files are written here, by this process, as without it. `retry_errors`
    encodes again the files that failed before (a file that failed is otherwise skipped until it
    changes): after installing a codec, or mounting a folder on every Ray worker. `states`: how the
    video states are stored (``vidseek.index.cache.PRECISIONS``), fixed when the index is created
    (default ``DEFAULT_STATES``; an index made before the setting existed keeps float16).
    """
    root, index_dir = Path(video_dir).resolve(), Path(index_dir)
    bundle = load_bundle(bundle_dir)
    _check_bundle(bundle)
    grounder = Grounder(bundle, backend)
    rate = float(bundle.meta["features"]["frame_encoder"]["rate"])
    cluster = None
    if ray is not None:  # joined first: a missing Ray or an unreachable cluster writes nothing
        from vidseek.library.distributed import join

        cluster = join(ray)
    try:
        return _index(root, Path(index_dir), bundle_dir, bundle, grounder, rate, window_s, stride_s, model, rebuild,
                      backend, progress, cluster, retry_errors, states)
    finally:
        if cluster is not None:
            cluster.close()


def _index(root: Path, index_dir: Path, bundle_dir, bundle: Bundle, grounder: Grounder, rate: float, window_s: float,
           stride_s: float, model: str | None, rebuild: bool, backend: str, progress: bool, cluster,
           retry_errors: bool, states_precision: str | None) -> IndexReport:
    index_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with WriterLock(index_dir), _open_catalog(index_dir, rebuild) as catalog:
        before = catalog.settings()
        if not rebuild:  # a rebuilt index takes the new settings
            catalog.check_fingerprint(bundle.fingerprint)
            catalog.check_settings(window_s=window_s, stride_s=stride_s, rate=rate, dim=bundle.meta["retrieval_dim"],
                                   **({"states": states_precision} if states_precision else {}))
        existing = not rebuild and before.fingerprint is not None  # indexed into before
        default = ZERO_SHOT_STATES if family(bundle.model_name).name == "zero-shot" else DEFAULT_STATES
        precision = states_precision or ((before.states or "float16") if existing else default)
        moved = None if rebuild else _moved_library(catalog, root)
        # a rebuild resets the model choice and the state width of the old bundle too (None: not known)
        renewed = {"model": model, "state_dim": None, "clips_crc32": None, "clips_crc32_next": None} if rebuild else ({"model": model} if model else {})
        catalog.update_settings(root=str(root), fingerprint=bundle.fingerprint, bundle=str(Path(bundle_dir).resolve()),
                                window_s=window_s, stride_s=stride_s, rate=rate, dim=bundle.meta["retrieval_dim"],
                                states=precision, **renewed)
        settings = catalog.settings()
        states, clips = FeatureCache(index_dir, "states", precision=precision), ClipIndex(index_dir, settings.dim)
        notes = [moved] if moved else []
        try:
            crc = file_crc32(clips.path) if clips.path.is_file() else None
            if crc is not None and not integrity.crc_accepted(settings, crc):
                raise ClipIndexError("it does not match the checksum recorded when it was written")
            if clips.load():  # the file there is the saved one from now on (a killed run may not have said so)
                catalog.update_settings(clips_crc32=crc, clips_crc32_next=None)
        except ClipIndexError as exc:  # damaged clips.faiss (derived data): rebuilt from the cached embeddings
            clips = ClipIndex(index_dir, settings.dim)
            notes.append(f"{INDEX_FILE} was damaged ({str(exc).split(';')[0]}): rebuilt from the cached clip "
                            "embeddings")
        ok = catalog.videos("ok")
        damaged = integrity.damaged_videos(ok, settings, states, clips.embeddings)
        clips.reconcile(v.id for v in ok if v.id not in damaged)
        plan = catalog.scan(root, retry_errors=retry_errors)
        catalog.update_stat(plan.touched)
        if damaged:  # unchanged files whose cached features are lost or do not fit: encode them again
            plan.changed = sorted(plan.changed + [f for f in plan.unchanged if f.video_id in damaged],
                                  key=lambda f: f.path)
            plan.unchanged = [f for f in plan.unchanged if f.video_id not in damaged]
        report = IndexReport(plan.summary(), notes=notes, domain=bundle.domain)
        # drop deleted and changed videos: clip index first, then catalog, then cache files (a changed
        # video's old row stays ok until record_pending replaces it below)
        stale = [v.id for v in plan.deleted] + [f.video_id for f in plan.changed if f.video_id is not None]
        clips.remove_videos(stale)
        _save(clips, catalog)
        catalog.remove([v.path for v in plan.deleted])
        _drop_unused_features(catalog, states, clips)
        report.removed = len(plan.deleted)
        for path, error in plan.unreadable:
            catalog.record_error(path, error)
            report.errors.append((path, error))
        todo = plan.new + plan.changed
        failed = {v.id for v in catalog.videos("error")}
        kept_failed = sum(f.video_id in failed for f in plan.unchanged)
        if kept_failed:
            report.notes.append(f"{kept_failed} file{'s' if kept_failed > 1 else ''} that failed before and did not "
                                "change skipped (--retry-errors tries them again)")
        if cluster is None or not todo:
            if todo:  # a backend or graph that cannot load stops the run here, before any file is pending
                grounder.warm(VIDEO_SIDE)
            results = ((file, encode_file(grounder, root / file.path, settings)) for file in todo)
        else:  # decoded and encoded by Ray actors; written here, by the one writer, as they come back
            results = cluster.encoded(todo, root, bundle_dir, backend, settings)
        bar = tqdm(results, total=len(todo), desc="index", unit="video", disable=None if progress else True)
        for file, encoded in bar:
            vid = catalog.record_pending(file)
            try:
                if encoded.error is not None:
                    raise EncodeError(encoded.error)
                states.put(vid, encoded.states)
                clips.add(vid, encoded.clips)
                catalog.record_ok(file, duration=encoded.duration, fps=rate, steps=encoded.steps, gaps=encoded.gaps)
                if settings.state_dim is None:  # lets integrity checks verify the states' width
                    catalog.update_settings(state_dim=int(encoded.states.shape[-1]))
                    settings = catalog.settings()
                report.indexed.append(file.path)
                report.video_seconds += encoded.duration
            except Exception as exc:  # one bad file never stops the library; its error is recorded
                if isinstance(exc, IndexStorageError) and not isinstance(exc, (CacheError, ClipIndexError)):
                    raise  # the index cannot be written (disk full, read-only): stop; this file stays pending
                message = str(exc) if isinstance(exc, EncodeError) else f"{type(exc).__name__}: {exc}"
                catalog.record_error(file, message)
                clips.remove_video(vid)
                report.errors.append((file.path, message))
            bar.set_postfix(rtf=f"{report.video_seconds / max(time.perf_counter() - t0, 1e-9):.1f}x",
                            hours=f"{report.video_seconds / 3600:.2f}")
        _save(clips, catalog)
        _drop_unused_features(catalog, states, clips)
        catalog.checkpoint()  # the database file alone holds the index (read-only copies)
    report.seconds = time.perf_counter() - t0
    return report


def _moved_library(catalog: Catalog, root: Path) -> str | None:
    """Re-point an index whose library folder was moved to ``root``, recognised by content: the old
    folder is gone, and at least half of the indexed videos are in ``root`` at the same relative path
    with the same content hash (nothing is encoded again). Returns what was matched, None when the
    library has not moved; ``IndexMismatch`` when ``root`` is another library."""
    old = catalog.root
    if old is None or old == root:
        return None
    refuse = IndexMismatch(f"index {catalog.index_dir} holds the library {old}, not {root}: give another --index for "
                           "this folder, or re-index with --rebuild")
    if old.is_dir():  # both folders exist: two libraries
        raise refuse
    videos = catalog.videos("ok")
    matched = 0
    for v in videos:
        file = root / v.path
        try:
            matched += file.is_file() and content_hash(file) == v.content_hash
        except OSError:
            continue
    if not videos or 2 * matched < len(videos):
        raise refuse
    catalog.update_settings(root=str(root))
    return f"the library moved from {old} to {root}: {matched} of {len(videos)} videos matched by content, none encoded again"


def _save(clips: ClipIndex, catalog: Catalog) -> None:
    """Save clips.faiss with its checksum: that of the new file is recorded before it replaces the
    old one, and confirmed after, so the file on disk matches a recorded checksum whenever the run
    is killed (``integrity.clip_index_damaged``)."""
    crc = {}

    def record(tmp: Path) -> None:
        crc["new"] = file_crc32(tmp)
        catalog.update_settings(clips_crc32_next=crc["new"])

    clips.save(on_written=record)
    catalog.update_settings(clips_crc32=crc["new"], clips_crc32_next=None)


def _open_catalog(index_dir: Path, rebuild: bool) -> Catalog:
    """The catalog of an index folder whose writer lock is held, once the temporary files of a
    killed run are deleted and, for a rebuild, the index is discarded (``discard_index``)."""
    remove_temporaries(index_dir)
    if rebuild:
        discard_index(index_dir)
    catalog = Catalog(index_dir)
    try:
        catalog.require_sound()  # never write into a damaged catalog
    except BaseException:
        catalog.close()
        raise
    return catalog
