"""The Python API of a library index: what ``vidseek index``, ``search`` and ``info`` do, from Python.

    from vidseek import Index

    index = Index("my-index")                       # default: $VIDSEEK_INDEX, else ./.vidseek
    index.add("videos/", model="builtin")           # or a bundle folder, or "clip:openai/clip-vit-base-patch32"
    for m in index.search("a person opens the door", top_k=5):
        print(m.rank, m.video, m.start, m.end, m.score)

Torch-free, except for the one-time export of a ``clip:`` model (see ``vidseek.library.models``).
Every error a user can cause is a ``vidseek.errors.VidseekError`` whose message says what to do:
``QueryError`` (a bad query), ``ModelChoiceError``, ``PhrasesUnavailable``, ``NotIndexed``,
``NoIndex`` (no index in the folder), ``NotAFolder``, ``BundleError`` and ``IndexStorageError``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vidseek.errors import VidseekError
from vidseek.library import CANDIDATES
from vidseek.library.models import BUILTIN, recreatable, resolve_model

if TYPE_CHECKING:
    from collections.abc import Callable

    from vidseek.index.catalog import Video
    from vidseek.library.indexer import IndexReport
    from vidseek.library.searcher import Curve, Moments, Searcher, SearchTrace


class NotAFolder(VidseekError, FileNotFoundError):
    """A video folder to index that does not exist or is not a folder."""

DEFAULT_INDEX = ".vidseek"


def default_index_dir() -> Path:
    """The index folder used when none is given: $VIDSEEK_INDEX, else ./.vidseek."""
    return Path(os.environ.get("VIDSEEK_INDEX", DEFAULT_INDEX))


@dataclass(frozen=True)
class IndexInfo:
    """What an index holds (``Index.info()``); unset settings are None before the first ``add``."""

    index_dir: Path
    library: str | None  # the library root the video paths are relative to
    bundle: str | None  # the bundle folder the index was built with
    model: str | None  # the model choice that named it, when it can re-create it (builtin, clip:...)
    fingerprint: str | None  # the bundle's fingerprint
    domain: str  # what footage the bundle was trained on: synthetic, real or unknown (``Bundle.domain``)
    window_s: float | None  # clip window, seconds
    stride_s: float | None  # clip stride, seconds
    rate: float | None  # feature steps per second
    dim: int | None  # clip embedding dimension
    states: str | None  # how the video states are stored: float16, int8 or int4
    counts: dict[str, int]  # videos by status: ok, error, pending
    duration: float  # seconds of video indexed (ok videos)
    problems: list[str]  # integrity problems (empty when the index is sound)
    failed: list[tuple[str, str]]  # (path, reason) of each file that could not be indexed

    def to_dict(self) -> dict:
        """JSON-ready fields (``vidseek info --json``)."""
        return {**asdict(self), "index_dir": str(self.index_dir),
                "failed": [{"path": p, "error": e} for p, e in self.failed]}


class Index:
    """A library index folder: add videos to it, search it, ask what it holds.

    The first ``search`` opens a Searcher (the bundle's sessions, the clip index) and keeps it warm
    for the next ones; ``add`` closes it, so later searches see the new videos. Use ``close()`` or a
    ``with`` block to release it.
    """

    def __init__(self, index_dir: str | os.PathLike | None = None, backend: str = "onnxruntime"):
        self.path = Path(index_dir) if index_dir is not None else default_index_dir()
        self.backend = backend
        self._searcher: Searcher | None = None

    def __repr__(self) -> str:
        return f"Index({str(self.path)!r})"

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the warm Searcher, if any (the next search opens a new one)."""
        if self._searcher is not None:
            self._searcher.close()
            self._searcher = None

    def exists(self) -> bool:
        """Whether the folder holds an index (``add`` creates it)."""
        return (self.path / "catalog.sqlite").is_file()

    def _require(self) -> None:
        from vidseek.library.searcher import NoIndex

        if not self.exists():
            raise NoIndex(f"no index in {self.path}: build one with Index({str(self.path)!r}).add(VIDEO_DIR) "
                          f"or `vidseek index VIDEO_DIR --index {self.path}`")

    def add(self, video_dir: str | os.PathLike, *, model: str | os.PathLike = BUILTIN, window_s: float | None = None,
            stride_s: float | None = None, progress: bool = False,
            on_export: Callable[[str, Path], None] | None = None, rebuild: bool = False,
            ray: str | None = None, retry_errors: bool = False, states: str | None = None) -> IndexReport:
        """Bring the index up to date with the videos under `video_dir` (recursively).

        New and changed files are encoded once, deleted ones dropped. `model` is ``"builtin"``, a
        bundle folder, or ``"clip:ID_OR_PATH"`` (see ``vidseek.library.models.resolve_model``;
        ``on_export`` is called before a CLIP model's one-time export). An index keeps the model
        and the window and stride it was built with: give the same ones to add more videos, or
        ``rebuild=True`` (``vidseek index --rebuild``) to discard the index and encode every video
        again with the ones given (also for another library, or to repair a damaged index).
        ``ray``: decode and encode the videos on Ray, ``"local"`` (a Ray started for the run, or the
        one this process joined) or a cluster address (``vidseek.library.distributed``).
        ``retry_errors``: encode again the files that failed before (otherwise skipped until they
        change), e.g. after installing a codec or mounting the library on every Ray worker.
        ``states``: how the cached video states are stored, ``"float16"``, ``"int8"`` or ``"int4"``
        (fewer bytes per video, measured accuracy cost in docs/benchmarks.md); fixed when the index
        is created (``rebuild=True`` changes it).
        """
        from vidseek.library.indexer import DEFAULT_STRIDE_S, DEFAULT_WINDOW_S, index_folder

        if not Path(video_dir).is_dir():
            raise NotAFolder(f"{video_dir} is not a folder of videos: give the folder that holds them")
        bundle = resolve_model(model, on_export)
        self.close()
        return index_folder(video_dir, self.path, bundle, backend=self.backend,
                            window_s=DEFAULT_WINDOW_S if window_s is None else window_s,
                            stride_s=DEFAULT_STRIDE_S if stride_s is None else stride_s, progress=progress,
                            model=recreatable(model), rebuild=rebuild, ray=ray, retry_errors=retry_errors,
                            states=states)

    @property
    def searcher(self) -> Searcher:
        """The warm Searcher of this index, opened on first use."""
        if self._searcher is None:
            from vidseek.library.searcher import Searcher

            self._require()
            self._searcher = Searcher(self.path, backend=self.backend)
        return self._searcher

    def search(self, query: str, *, top_k: int = 10, video: str | None = None, phrases: bool = False,
               candidates: int = CANDIDATES, min_score: float | None = None, trace: SearchTrace | None = None) -> Moments:
        """The `top_k` best moments for `query`, best first, whose score (a calibrated relevance in
        [0, 1]) reaches `min_score` (default: the bundle's threshold). No moment reaching it is the
        answer "nothing matches": the result is empty, and its ``best`` is the best candidate.

        `video` restricts the search to one indexed file: its path as ``videos()`` lists it, or its path
        on disk (absolute, or relative to the working directory);
        `phrases` adds PLPNet's phrase spans to each moment (``PhrasesUnavailable`` for other models);
        `candidates` is how many clips FAISS retrieves before the spans are found; `trace` (a
        ``SearchTrace``) is filled with the time each stage took.
        """
        return self.searcher.search(query, top_k=top_k, candidates=candidates, video=video, phrases=phrases,
                                    min_score=min_score, trace=trace)

    def refresh(self) -> bool:
        """Let the warm Searcher see what indexing runs (other processes, or ``add``) changed since it
        read the index: True when it read it again. A Searcher sees the index as it was when it
        opened, so a long-lived ``Index`` (``vidseek serve``) calls this before searching; reading
        the index is safe at any moment of an indexing run (``vidseek.index``'s write protocol).
        When reading it fails, the Searcher keeps what it had and the error is raised."""
        if self._searcher is None or not self._searcher.outdated():
            return False
        self._searcher.reopen()
        return True

    def curve(self, query: str, video: str | os.PathLike) -> Curve:
        """The relevance of `query` over the whole of one indexed `video` (as ``search`` takes it): the
        cosine similarity of the query with each clip of the video, one value per clip stride
        (``vidseek.library.searcher.Curve``)."""
        return self.searcher.curve(query, video)

    def file(self, video: str | int | os.PathLike) -> Path:
        """The file on disk of one indexed (ok) `video`, resolved: its path as ``search`` takes it, or
        its catalog id (an int). ``NotIndexed`` when it is no indexed video, when its file is gone,
        or when the file resolves to somewhere outside the library (a symbolic link)."""
        return self._located(video)[1]

    def thumbnail(self, video: str | int | os.PathLike, t: float) -> bytes:
        """A JPEG of the picture at second `t` of an indexed `video` (as ``file`` takes it), cached in the
        index folder (``vidseek.library.media.cached_thumbnail``)."""
        from vidseek.library import media

        row, path = self._located(video)
        return media.cached_thumbnail(self.path / media.THUMBNAIL_DIR, media.thumbnail_key(row), path, t)

    def clip(self, video: str | int | os.PathLike, start: float, end: float, out: str | os.PathLike,
             max_seconds: float | None = None) -> Path:
        """Cut seconds `start` to `end` of an indexed `video` (as ``file`` takes it) into the MP4 file
        `out` (``vidseek clip``; ``vidseek.library.media.cut``); returns `out`."""
        from vidseek.library import media

        media.check_span(start, end, max_seconds)
        return media.cut(self._located(video)[1], start, end, out, max_seconds)

    def _located(self, video: str | int | os.PathLike) -> tuple[Video, Path]:
        """The catalog row of an indexed (ok) `video` and its file (``media.indexed_file``). Reads
        the catalog with a connection of its own, so it may run on any thread."""
        from vidseek.index.catalog import Catalog, UnsafePath
        from vidseek.library.media import indexed_file
        from vidseek.library.searcher import not_indexed, path_candidates

        self._require()
        with Catalog(self.path, readonly=True) as catalog:
            root = catalog.settings().root
            row = None
            for key in [video] if isinstance(video, int) else path_candidates(video, root):
                try:
                    row = catalog.video(key)
                except UnsafePath:
                    continue
                if row is not None:
                    break
        if row is None or row.status != "ok":
            raise not_indexed(video, root)
        return row, indexed_file(root, row.path)

    def videos(self, status: str | None = None) -> list[Video]:
        """The catalog's videos (all, or those of one status: ok, error, pending), in the order they were added."""
        from vidseek.index.catalog import Catalog

        self._require()
        with Catalog(self.path, readonly=True) as catalog:
            return catalog.videos(status)

    def info(self) -> IndexInfo:
        """The index's settings, its videos by status and the result of its integrity check."""
        from vidseek.index import integrity
        from vidseek.index.catalog import Catalog

        self._require()
        with Catalog(self.path, readonly=True) as catalog:
            settings, counts, videos = catalog.settings(), catalog.counts(), catalog.videos()
            problems = integrity.check(catalog)
        return IndexInfo(
            index_dir=self.path, library=settings.root, bundle=settings.bundle, model=settings.model,
            fingerprint=settings.fingerprint, domain=_domain(settings.bundle), window_s=settings.window_s, stride_s=settings.stride_s,
            rate=settings.rate, dim=settings.dim, states=settings.states or ("float16" if settings.fingerprint else None),
            counts=dict(counts),
            duration=float(sum(v.duration or 0.0 for v in videos if v.status == "ok")), problems=list(problems),
            failed=[(v.path, v.error or "") for v in videos if v.status == "error"],
        )


def _domain(bundle_dir: str | None) -> str:
    """The domain of the bundle in ``bundle_dir`` ("unknown" when it cannot be read: ``info`` reports it)."""
    from vidseek.engine.bundle import BundleError, load_bundle

    if bundle_dir is None:
        return "unknown"
    try:
        return load_bundle(bundle_dir, verify=False).domain
    except (BundleError, OSError):
        return "unknown"
