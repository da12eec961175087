"""The searcher: query -> FAISS clip candidates across the library -> the head on a window around
each candidate -> calibrated relevance (``vidseek.engine.calibration``) -> temporal NMS -> ranked
moments above the bundle's threshold. Torch-free.

With a zero-shot CLIP bundle there is no head: the span of each candidate comes from the cosine
similarity of the query with each step's frame embedding (``vidseek.engine.decode.similarity_span``), and
its confidence is the curve's smoothed peak.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vidseek.engine.bundle import BundleError, load_bundle
from vidseek.library import CANDIDATES
from vidseek.engine.calibration import Calibration, words_per_token
from vidseek.vocabulary import known_share
from vidseek.engine.decode import decode_best, decode_phrases
from vidseek.engine.grounder import Grounder
from vidseek.engine.video import file_times
from vidseek.errors import VidseekError
from vidseek.index import integrity
from vidseek.index.cache import CacheError, FeatureCache
from vidseek.index.catalog import Catalog, UnsafePath, Video, printable
from vidseek.index.clips import ClipIndex
from vidseek.spans import temporal_nms

MAX_COSINE = 1.01  # unit vectors: a clip similarity beyond this (or not finite) comes from a damaged clips.faiss
# FAISS returns at least this many clips: their median similarity is the baseline of the
# calibration's "distinct" signal, fitted with 50 (vidseek.engine.calibration).
MEDIAN_POOL = 50


class PhrasesUnavailable(VidseekError, ValueError):
    """Phrases were asked of a bundle whose model has none (only PLPNet grounds phrases)."""


@dataclass
class Moment:
    """One ranked moment: which file, from when to when (seconds), and how sure.

    ``phrases`` (PLPNet bundles, when asked for) holds the query's phrases as the model split it,
    each ``{"text", "start", "end", "weight"}``: its most attended words, its own span in seconds
    in the same video, and its weight in the sentence span.
    """

    rank: int
    score: float  # relevance in [0, 1], calibrated like the probability of a true moment (the bundle's calibration)
    video: str  # path of the file, relative to the library root
    start: float
    end: float
    retrieval: float  # cosine similarity of the query and the best clip
    span: float  # the head's confidence in the span (zero-shot: the peak frame-query similarity)
    phrases: list[dict] | None = None
    path: str | None = None  # the file itself: the library root joined with ``video``

    def to_dict(self) -> dict:
        """JSON-ready fields; ``phrases`` only when it was asked for."""
        d = asdict(self)
        if self.phrases is None:
            del d["phrases"]
        return d


def _phrase_text(words: list[str]) -> str:
    """A phrase's most attended tokens as words: the subword markers of BPE (``</w>``, ``Ġ``) and
    WordPiece (``##``) removed.

    >>> _phrase_text(["opens</w>", "door</w>"]), _phrase_text(["Ġperson", "##s"])
    ('opens door', 'person s')
    """
    return " ".join(w.removeprefix("##").removeprefix("Ġ").removesuffix("</w>") for w in words)


class DamagedVideoWarning(UserWarning):
    """A search skips a video whose cached features do not fit its catalog row (a file missing,
    unreadable, or of another shape); the message names the video and how to repair it."""


class NoIndex(VidseekError, FileNotFoundError):
    """The folder holds no index (no catalog); the message says how to build one."""


def no_index(index_dir: Path) -> NoIndex:
    return NoIndex(f"no index in {index_dir}: build one with `vidseek index VIDEO_DIR --index {index_dir}`")


class NotIndexed(VidseekError, ValueError):
    """A ``video`` that is not an indexed video of the library."""


def not_indexed(video, root) -> NotIndexed:
    """The error for a ``video`` argument that names no indexed video of the library at ``root``."""
    if isinstance(video, int):
        return NotIndexed(f"no indexed video of this library has the id {video} (`vidseek info --videos --json` "
                          "and GET /api/videos of `vidseek serve` list the ids)")
    return NotIndexed(f"{printable(os.fspath(video))!r} is not an indexed video of this library ({root}): give its "
                      "path as `vidseek info --videos` lists it, or its path on disk")


@dataclass
class Curve:
    """The relevance of a query over a whole video (``Searcher.curve``): the cosine similarity of the
    query with each of the video's clips, the score by which FAISS picks a search's candidates.

    Clip ``i`` is the window of ``window_s`` seconds from ``starts[i]`` to ``ends[i]`` (seconds in the
    file, placed past any gaps as moments are); clips start every ``stride_s`` seconds, so the curve
    has one value per stride (2 s by default, the step of Moment-DETR's and Lighthouse's saliency).
    """

    query: str
    video: str  # path of the file, relative to the library root
    window_s: float
    stride_s: float
    starts: list[float]
    ends: list[float]
    values: list[float]  # cosine similarity in [-1, 1], one per clip

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return asdict(self)


@dataclass
class SearchTrace:
    """Where one search spent its time and how much work it did (``Searcher.search(trace=...)``).

    ``seconds`` per stage: "tokenize", "text_encoder", "faiss" (clip retrieval), "cache" (reading
    the candidates' states), "head", "post" (the rest: batching, span decoding, fusion, NMS, ranking).
    """

    seconds: dict[str, float] = field(default_factory=dict)
    candidates: int = 0  # clips FAISS returned for the query
    candidate_videos: int = 0  # distinct indexed videos among them
    head_rows: int = 0  # windows the head ran on
    head_steps: int = 0  # feature steps it read in all
    median_similarity: float = 0.0  # of the query's candidate clips (the calibration's "distinct" is relative to it)
    words_per_token: float = 0.0  # of the query (``vidseek.engine.calibration.words_per_token``)
    known_words: float = 1.0  # share of the query's words the bundle was trained on (``known_share``)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


@dataclass(frozen=True)
class _Hit:
    """One candidate's best span before ranking: the video, seconds, and the signals fused into its score."""

    score: float  # calibrated relevance
    video_id: int
    start: float
    end: float
    retrieval: float
    span: float
    phrases: list[dict] | None


class DamagedIndexWarning(DamagedVideoWarning):
    """A search found clips.faiss damaged (similarities no unit vectors can have) and searches the
    clip embeddings of the cache instead; ``vidseek index`` rebuilds the file."""


class Moments(list):
    """The moments of a search, best first: a list of ``Moment``, with what an empty one means.

    ``threshold`` is the relevance a moment needed; ``best`` is the best candidate below it when no
    moment reached it (search again with ``min_score=0`` to see it and the others), else None.
    ``unseen_words``: the query's words that the model's training sentences never used (a model
    trained on a closed world cannot know what they look like); empty for open-vocabulary models.
    ``corrections``: ``(typed, corrected)`` words, when misspelt words were corrected to the model's
    vocabulary before searching (``vidseek.engine.spelling``).
    """

    def __init__(self, moments=(), threshold: float = 0.0, best: Moment | None = None,
                 unseen_words: list[str] | None = None, corrections: list[tuple[str, str]] | None = None):
        super().__init__(moments)
        self.threshold, self.best = threshold, best
        self.unseen_words = list(unseen_words or [])
        self.corrections = list(corrections or [])


class StaleVideoWarning(UserWarning):
    """A search left out moments of files deleted or changed since they were indexed; the message
    names them and says to run ``vidseek index``."""


class _IndexChanged(Exception):
    """Cache files a search needs are gone or do not fit: the index may have changed since the
    Searcher read it (``Searcher.search`` reads it again and retries once)."""


class CatalogVideos(Mapping):
    """The ``ok`` videos of a catalog by id, each row read when first asked for and kept (up to
    ``keep`` rows): a library of a million videos opens without reading them all. ``by_path`` finds
    one by its catalog path; ``len`` and iterating read the ids once (``Catalog.ok_ids``)."""

    def __init__(self, catalog: Catalog, keep: int = 65_536):
        self._catalog, self._keep = catalog, keep
        self._rows: OrderedDict[int, Video | None] = OrderedDict()
        self._ids: list[int] | None = None

    def _all(self) -> list[int]:
        if self._ids is None:
            self._ids = self._catalog.ok_ids()
        return self._ids

    def _row(self, video_id: int) -> Video | None:
        try:
            self._rows.move_to_end(video_id)
            return self._rows[video_id]
        except KeyError:
            row = self._catalog.video(int(video_id))
            row = row if row is not None and row.status == "ok" else None
            self._rows[video_id] = row
            if len(self._rows) > self._keep:
                self._rows.popitem(last=False)
            return row

    def __getitem__(self, video_id: int) -> Video:
        row = self._row(video_id)
        if row is None:
            raise KeyError(video_id)
        return row

    def __contains__(self, video_id) -> bool:
        return isinstance(video_id, (int, np.integer)) and self._row(int(video_id)) is not None

    def __iter__(self):
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def by_path(self, path: str) -> Video | None:
        """The ok video at this catalog path, or None."""
        try:
            row = self._catalog.video(path)
        except UnsafePath:  # not a catalog path (absolute, or leaving the root)
            return None
        return row if row is not None and row.status == "ok" else None


class Searcher:
    """Searches an index built by ``vidseek index`` with the bundle it was built with.

    Holds the catalog open (read-only), the bundle's sessions and the clip index in memory, so
    keep one Searcher for many queries; ``close()`` (or a ``with`` block) releases the catalog.

    A Searcher sees the index as it was when it opened (or last ``reopen``ed). When a search finds
    cache files gone or changed, as happens to a Searcher kept open across indexing runs (the files
    of removed and re-encoded videos are deleted ``RETAIN_RETIRED_S`` after the change), it reads
    the index again and retries once. A video whose cache files still do not fit its catalog row
    is damaged (``vidseek.index.integrity``): searches skip it, with a ``DamagedVideoWarning`` the
    first time, and ``damaged`` maps its id to the message (``vidseek index`` re-encodes it).
    """

    def __init__(self, index_dir: str | Path, bundle_dir: str | Path | None = None, backend: str = "onnxruntime"):
        self.index_dir = Path(index_dir)
        self._bundle_dir, self._backend = bundle_dir, backend
        self._warned: set[int] = set()  # damaged videos warned about (ids are never reused)
        self._distrust_clips = False  # clips.faiss gave impossible similarities: build the index from the cache
        self.catalog = None
        self.bundle = None
        self.grounder = None
        self._open()

    def _open(self) -> None:
        """Read the index: catalog, settings, clip index (completed from the cache), and the bundle
        unless it is the one already loaded. When that fails, the Searcher keeps what it had."""
        index_dir = self.index_dir
        if not (index_dir / "catalog.sqlite").is_file():
            raise no_index(index_dir)
        signature = index_signature(index_dir)  # taken before reading: a change made meanwhile shows later
        catalog = Catalog(index_dir, readonly=True)
        try:
            data_version = catalog.data_version()
            catalog.snapshot()  # rows are read as searches need them, from the index as it is now
            settings = catalog.settings()
            bundle, grounder = self.bundle, self.grounder
            if bundle is None or settings.fingerprint != bundle.fingerprint:
                bundle = load_bundle(self._bundle_dir or _stored_bundle(index_dir, settings))
                catalog.check_fingerprint(bundle.fingerprint)
                grounder = Grounder(bundle, self._backend)
            clips = ClipIndex(index_dir, int(settings.dim))
            loaded = clips.load(mmap=True) if not self._distrust_clips else False
            unfit = {}
            if not (loaded and clips.video_key() == catalog.ok_key()):  # else it holds the catalog's videos
                if loaded:
                    clips.load()  # into memory: reconciling changes it
                held = clips.video_ids()
                lagging = [v for v in catalog.videos("ok") if v.id not in held]
                unfit = integrity.damaged_videos(lagging, settings, clips.embeddings)  # reconcile reads these files
                clips.reconcile(v for v in catalog.ok_ids() if v not in unfit)
            videos = CatalogVideos(catalog)
        except BaseException:
            catalog.close()
            raise
        old = self.catalog
        old_maps = (self.states, self.clips.embeddings) if old is not None else ()  # set with the catalog
        self.catalog, self.settings, self.bundle, self.grounder = catalog, settings, bundle, grounder
        self.calibration = Calibration.from_meta(bundle.meta)
        self.rate = float(settings.rate)
        self.states, self.clips, self.videos = FeatureCache(index_dir, "states"), clips, videos
        self.gaps = catalog.gaps()  # video id -> the gaps cut out of its footage (few videos have any)
        self._seen = (signature, data_version)
        self.damaged: dict[int, str] = {}
        if old is not None:
            old.close()
        for cache in old_maps:  # the memory maps kept for the index as it was
            cache.close()
        self._skip(unfit)

    def reopen(self) -> None:
        """Read the index again (after an indexing run): its videos, settings and clip index, and
        its bundle when the index was rebuilt with another one."""
        self._open()

    def outdated(self) -> bool:
        """Whether the index has changed since this Searcher read it (an indexing run committed to
        the catalog, or replaced clips.faiss): ``reopen`` then shows the change. Costs a few
        ``os.stat`` calls and one SQLite pragma."""
        signature, data_version = self._seen
        try:
            return self.catalog.data_version() != data_version or index_signature(self.index_dir) != signature
        except VidseekError:
            return True

    def _skip(self, reasons: dict[int, str]) -> None:
        """Mark videos damaged (later searches skip them) and warn once about each. A reason is a
        CacheError's message, whose advice after the last "; " gives way to the warning's own."""
        root = printable(str(self.settings.root or "VIDEO_DIR"))
        for vid, reason in sorted(reasons.items()):
            message = (f"skipped {printable(self.videos[vid].path)!r} (video {vid}): its cached features do not fit the "
                       f"catalog ({printable(reason.rsplit('; ', 1)[0])}); run `vidseek index {root} --index "
                       f"{self.index_dir}` to encode it again (add --rebuild to re-index the whole library)")
            self.damaged[vid] = message
            if vid not in self._warned:
                self._warned.add(vid)
                warnings.warn(message, DamagedVideoWarning, stacklevel=4)

    def close(self) -> None:
        """Release the catalog and the cached memory maps; the Searcher cannot search afterwards."""
        self.catalog.close()
        self.states.close()
        self.clips.embeddings.close()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _contexts(self, cand: list[tuple[float, int, int]]):
        """The candidates the head runs on, the steps (start, end exclusive) of each one's context,
        their videos' states, and why any of their videos cannot be read.

        A candidate clip (similarity, video id, window), best first, brings one window of context on
        each side (bounded cost for long videos). A clip that lies inside the context of a better
        candidate of its video is dropped: the head sees it there already (this halves the head's
        work on a library, where a matching video's neighbouring clips are retrieved together).
        A window the video does not have (a clip index that disagrees with the catalog) or a state
        file that cannot be read fails its video.
        """
        kept, contexts, features, failed = [], {}, {}, {}
        wins: dict[int, list] = {}  # video id -> its clip windows
        seen: dict[int, list] = {}  # video id -> the contexts kept so far
        for c in cand:
            _, v, w = c
            if v in failed:
                continue
            video = self.videos[v]
            if v not in wins:
                wins[v] = self.settings.windows(video.steps) if video.steps and video.steps > 0 else []
            if not 0 <= w < len(wins[v]):
                failed[v] = f"clips.faiss has window {w}, which the video's {video.steps} steps do not have"
                continue
            a, b = wins[v][w]
            if any(ca <= a and b <= cb for ca, cb in seen.get(v, ())):
                continue
            pad = b - a
            contexts[v, w] = max(0, a - pad), min(video.steps, b + pad)
            seen.setdefault(v, []).append(contexts[v, w])
            kept.append(c)
            if v not in features:
                try:
                    features[v] = integrity.read_features(self.states, video, self.settings, values=False)
                except CacheError as exc:
                    failed[v] = str(exc)
        return [c for c in kept if c[1] not in failed], contexts, features, failed

    def search(self, query: str, *, top_k: int = 10, candidates: int = CANDIDATES, video: str | None = None,
               nms_iou: float = 0.5, phrases: bool = False, min_score: float | None = None,
               trace: SearchTrace | None = None) -> Moments:
        """The `top_k` best moments for `query` whose relevance reaches `min_score` (default: the
        bundle's threshold); `video` restricts the search to one file. When none reaches it, the
        result is empty and its ``best`` is the best candidate (see ``Moments``).

        ``phrases`` (PLPNet bundles only, else ``PhrasesUnavailable``) adds each moment's phrase spans.
        Damaged videos are skipped (see the class docstring); asking for one with `video` raises
        ``CacheError``. ``trace``, when given, is filled with the time of each stage (``SearchTrace``).
        """
        try:
            return self._search(query, top_k, candidates, video, nms_iou, phrases, min_score, trace, last=False)
        except _IndexChanged:
            self.reopen()
            return self._search(query, top_k, candidates, video, nms_iou, phrases, min_score, trace, last=True)

    def _search(self, query: str, top_k: int, candidates: int, video: str | None, nms_iou: float, phrases: bool,
                min_score: float | None, trace: SearchTrace | None, last: bool) -> Moments:
        """One attempt of ``search``. Cache files that are gone or do not fit raise ``_IndexChanged``,
        unless this is the `last` attempt: then their videos are marked damaged and skipped."""
        if phrases and not self.grounder.family.phrases:
            raise PhrasesUnavailable(f"phrases need a PLPNet bundle, but this index was built with a bundle of model "
                                     f"{self.bundle.model_name} ({self.bundle.path}), which has no phrases: index the "
                                     "library into another --index with --model builtin-plpnet (`vidseek demo` makes "
                                     "demo-library/index-plpnet) and search that")
        trace = SearchTrace() if trace is None else trace
        before, t0 = sum(trace.seconds.values()), time.perf_counter()
        query, corrections = self.grounder.spell(query)
        text = self.grounder.encode_text([query], trace.seconds)
        t1 = time.perf_counter()
        n = max(candidates, MEDIAN_POOL) if video is None else MEDIAN_POOL  # one video: its own clips, below
        sims, vids, wins = self.clips.search(text["retrieval"], min(n, max(self.clips.ntotal, 1)))
        found = sims[0][vids[0] >= 0]
        if found.size and not (np.isfinite(found).all() and np.abs(found).max() <= MAX_COSINE) and not last:
            self._distrust_clips = True
            warnings.warn(f"{self.index_dir / 'clips.faiss'} is damaged (a clip similarity of {found.max():.3g}, where "
                          "unit vectors give at most 1): searching the cached clip embeddings instead; run "
                          f"`vidseek index {printable(str(self.settings.root or 'VIDEO_DIR'))} --index {self.index_dir}` "
                          "to rebuild it", DamagedIndexWarning, stacklevel=3)
            raise _IndexChanged
        cand = [(float(s), int(v), int(w)) for s, v, w in zip(sims[0], vids[0], wins[0]) if v in self.videos]
        if video is None:
            cand = cand[:candidates]  # the head's batch; the rest only set the median of the distinct signal
        trace.add("faiss", time.perf_counter() - t1)
        trace.candidates, trace.candidate_videos = len(cand), len({v for _, v, _ in cand})
        if video is not None:  # ranked by exact cosine over its own cached clip embeddings: never the library's
            wanted = self.catalog_path(video)
            cand = self._video_candidates(video, text["retrieval"][0], candidates, last)
        cand = [c for c in cand if c[1] not in self.damaged]
        t2 = time.perf_counter()
        cand, contexts, features, failed = self._contexts(cand)
        trace.add("cache", time.perf_counter() - t2)
        if failed:
            if not last:
                raise _IndexChanged
            self._skip(failed)
            cand = [c for c in cand if c[1] not in failed]
        if video is not None and not cand:
            raise CacheError(next(m for v, m in self.damaged.items() if self.videos[v].path == wanted))
        query_signals = (float(np.median(found)) if found.size else 0.0,
                         words_per_token(query, self.grounder.content_tokens(text["tokens"][0])),
                         known_share(query, self.grounder.vocabulary))
        trace.median_similarity, trace.words_per_token, trace.known_words = query_signals
        hits = self._ground(cand, contexts, features, text, phrases, trace, query_signals) if cand else []
        moments = []
        for vid in sorted({h.video_id for h in hits}):  # NMS within each video
            mine = [h for h in hits if h.video_id == vid]
            keep = temporal_nms(np.array([[h.start, h.end] for h in mine]), np.array([h.score for h in mine]), nms_iou)
            moments += [mine[k] for k in keep]
        moments.sort(key=lambda h: -h.score)
        threshold = (self.calibration.threshold or 0.0) if min_score is None else float(min_score)
        result = Moments(threshold=threshold, unseen_words=self.grounder.unseen_words(query), corrections=corrections)
        stale = {}
        for hit in moments:  # the files of the results only are checked, so a search stays fast
            if len(result) == top_k:
                break
            why = self._stale(hit.video_id)
            if why:
                stale[hit.video_id] = why
                continue
            if hit.score < threshold:  # and so are all after it
                if not result:
                    result.best = self._moment(1, hit)
                break
            result.append(self._moment(len(result) + 1, hit))
        if stale:
            names = ", ".join(f"{printable(self.videos[v].path)!r} ({why})" for v, why in sorted(stale.items())[:5])
            warnings.warn(f"left out the moments of {len(stale)} video(s) deleted or changed since indexing: {names}; "
                          f"run `vidseek index {printable(str(self.settings.root))} --index {self.index_dir}`",
                          StaleVideoWarning, stacklevel=3)
        trace.add("post", max(0.0, time.perf_counter() - t0 - (sum(trace.seconds.values()) - before)))
        return result

    def _ground(self, cand: list[tuple[float, int, int]], contexts: dict, features: dict, text: dict, phrases: bool,
                trace: SearchTrace, query_signals: tuple[float, float, float]) -> list[_Hit]:
        """The head on every candidate's context in one batch: each candidate's best span and its
        relevance, from the bundle's calibration of the moment's signals (``query_signals``: the
        median similarity of the query's candidates, its words per token and its share of known words)."""
        lengths = np.array([b - a for a, b in (contexts[v, w] for _, v, w in cand)])
        batch = np.zeros((len(cand), lengths.max(), features[cand[0][1]].shape[1]), np.float32)
        mask = np.zeros(batch.shape[:2], bool)
        for i, (_, v, w) in enumerate(cand):
            a, b = contexts[v, w]
            batch[i, : b - a] = features[v][a:b]
            mask[i, : b - a] = True
        unreadable = ~np.isfinite(batch).all(axis=(1, 2))  # NaN or inf in a state file: a damaged video
        if unreadable.any():
            bad = {cand[i][1] for i in np.flatnonzero(unreadable)}
            self._skip({v: integrity.non_finite(self.states.path(v)) for v in bad})
            keep = [i for i, c in enumerate(cand) if c[1] not in bad]
            if not keep:
                return []
            cand, lengths, batch, mask = [cand[i] for i in keep], lengths[keep], batch[keep], mask[keep]
        t0 = time.perf_counter()
        out = self.grounder.head(batch, mask, {k: v for k, v in text.items() if k != "tokens"})
        trace.add("head", time.perf_counter() - t0)
        trace.head_rows, trace.head_steps = len(cand), int(lengths.sum())
        best = decode_best(self.bundle.model_name, out, lengths / self.rate, lengths)
        median, wpt, known = query_signals
        signals = np.array([[sim, conf, sim - median, wpt, known] for (sim, _, _), (_, _, conf) in zip(cand, best)])
        relevance = self.calibration.relevance(signals)
        hits = []
        for i, ((sim, v, w), (s, e, conf)) in enumerate(zip(cand, best)):
            if not np.isfinite(relevance[i]):  # never ranked (the graph gave no number for this window)
                continue
            offset = contexts[v, w][0] / self.rate
            spans = self._phrases({k: arr[i] for k, arr in out.items()}, text, offset, lengths[i] / self.rate) \
                if phrases else None
            hits.append(_Hit(float(relevance[i]), v, offset + s, offset + e, sim, conf, spans))
        return hits

    def _video_clips(self, video: str | os.PathLike, last: bool) -> tuple[int, np.ndarray]:
        """The id and the cached (W, E) clip embeddings of one indexed ``video``; ``NotIndexed`` or
        ``CacheError`` (it is damaged; ``_IndexChanged`` first, unless this is the `last` attempt)."""
        vid = self.video_id(video)
        if vid is None:
            raise not_indexed(video, self.settings.root)
        if vid in self.damaged:
            raise CacheError(self.damaged[vid])
        try:
            return vid, np.asarray(integrity.read_features(self.clips.embeddings, self.videos[vid], self.settings),
                                   np.float32)
        except CacheError as exc:
            if not last:
                raise _IndexChanged from None
            self._skip({vid: str(exc)})
            raise CacheError(self.damaged[vid]) from None

    def _video_candidates(self, video: str | os.PathLike, query_vector: np.ndarray, count: int,
                          last: bool) -> list[tuple[float, int, int]]:
        """The ``count`` best clips of one indexed ``video`` for a query, as ``(cosine, video id,
        window)``: a product with its cached clip embeddings, whatever the size of the library."""
        vid, clips = self._video_clips(video, last)
        cosine = clips @ np.asarray(query_vector, np.float32)
        order = np.argsort(-cosine, kind="stable")[:count]
        return [(float(cosine[w]), vid, int(w)) for w in order]

    def curve(self, query: str, video: str | os.PathLike) -> Curve:
        """The relevance of `query` over the whole of one indexed `video` (its path as the catalog
        lists it, or its path on disk): one cosine similarity per clip (see ``Curve``). Costs one
        text encoding and a product with the video's cached clip embeddings; no head runs.
        ``NotIndexed`` when `video` is no indexed video, ``CacheError`` when it is damaged."""
        try:
            return self._curve(query, video, last=False)
        except _IndexChanged:
            self.reopen()
            return self._curve(query, video, last=True)

    def _curve(self, query: str, video: str | os.PathLike, last: bool) -> Curve:
        vid, clips = self._video_clips(video, last)
        row = self.videos[vid]
        query_vector = np.asarray(self.grounder.encode_text([self.grounder.spell(query)[0]])["retrieval"][0], np.float32)
        values = clips @ (query_vector / max(float(np.linalg.norm(query_vector)), 1e-12))  # (W,)
        steps = np.array(self.settings.windows(row.steps), np.float64) / self.rate  # (W, 2) seconds of footage
        gaps = self.gaps.get(vid, ())
        starts, ends = file_times(steps[:, 0], gaps), file_times(steps[:, 1], gaps, ends=True)
        return Curve(query, row.path, float(self.settings.window_s), float(self.settings.stride_s),
                     [round(float(t), 2) for t in starts], [round(float(t), 2) for t in ends],
                     [round(float(v), 4) for v in values])

    def video_id(self, video: str | os.PathLike) -> int | None:
        """The catalog id of an indexed (ok) video given as ``catalog_path`` takes it; None when it is none."""
        row = self._named(video)
        return None if row is None else row.id

    def catalog_path(self, video: str | os.PathLike) -> str | None:
        """The catalog path of an indexed video given as the catalog lists it, or as a path on disk
        (absolute, or relative to the working directory) inside the library; None when it is none."""
        row = self._named(video)
        return None if row is None else row.path

    def _named(self, video: str | os.PathLike) -> Video | None:
        rows = (self.videos.by_path(p) for p in path_candidates(video, self.settings.root))
        return next((row for row in rows if row is not None), None)

    def _stale(self, video_id: int) -> str | None:
        """"deleted" or "changed" when the file of an ok video is gone or differs (size, mtime) from
        when it was indexed; None when it is as indexed, or when the library folder is not there
        at all (not mounted: the cached features still answer)."""
        root, video = self.settings.root, self.videos[video_id]
        try:
            st = os.stat(os.path.join(root, video.path))
        except OSError:
            return None if not os.path.isdir(root) else "deleted"
        return None if (st.st_size, st.st_mtime_ns) == (video.size, video.mtime_ns) else "changed"

    def _moment(self, rank: int, hit: _Hit) -> Moment:
        """A ranked hit as a Moment, its times (seconds of footage) placed in the file, past any gaps."""
        gaps = self.gaps.get(hit.video_id, ())

        def placed(start: float, end: float) -> tuple[float, float]:
            return float(file_times([start], gaps)[0]), float(file_times([end], gaps, ends=True)[0])

        start, end = placed(hit.start, hit.end)
        phrases = None if hit.phrases is None else [
            {**p, **dict(zip(("start", "end"), (round(t, 2) for t in placed(p["start"], p["end"]))))}
            for p in hit.phrases]
        video = self.videos[hit.video_id].path
        return Moment(rank, round(hit.score, 4), video, round(start, 2), round(end, 2), round(hit.retrieval, 4),
                      round(hit.span, 4), phrases, os.path.join(self.settings.root, video))

    @staticmethod
    def _phrases(item: dict[str, np.ndarray], text: dict, offset: float, duration: float) -> list[dict]:
        """PLPNet's phrase spans of one candidate, in seconds of the video (its context starts at `offset`)."""
        decoded = decode_phrases(item["phrase_spans"], text["word_att"][0], item["phrase_weights"],
                                 text["tokens"][0], duration)
        return [{"text": _phrase_text(p["words"]), "start": round(offset + p["span"][0], 2),
                 "end": round(offset + p["span"][1], 2), "weight": p["weight"]} for p in decoded]


def path_candidates(video: str | os.PathLike, root: str | None) -> list[str]:
    """The catalog paths ``video`` may mean, most likely first: itself as the catalog lists it, then
    its path on disk (absolute, or relative to the working directory, as it is and resolved)
    relative to the library ``root``."""
    text = os.fspath(video)
    out = [text]
    root = Path(root or "")
    for candidate in (Path(os.path.abspath(Path(text).expanduser())), Path(text).expanduser().resolve()):
        try:
            out.append(candidate.relative_to(root).as_posix())
        except ValueError:
            continue
    return out


def index_signature(index_dir: Path) -> tuple:
    """(inode, size, modification time) of the files an indexing run changes: the catalog, its WAL
    and clips.faiss (None for one that is absent). Readers never change them."""
    out = []
    for name in ("catalog.sqlite", "catalog.sqlite-wal", "clips.faiss"):
        try:
            st = os.stat(index_dir / name)
        except OSError:
            out.append(None)
            continue
        out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _stored_bundle(index_dir: Path, settings) -> str:
    """The bundle folder an index was built with, or a BundleError that says how to get it back."""
    path = settings.bundle
    if path is None:
        raise BundleError(f"index {index_dir} names no bundle (it was never indexed into): run `vidseek index VIDEO_DIR "
                          f"--index {index_dir}` first")
    if not (Path(path) / "bundle.json").is_file() and settings.model:
        raise BundleError(f"the bundle index {index_dir} was built with ({path}) is gone; re-create it with "
                          f"`vidseek index {settings.root or 'VIDEO_DIR'} --index {index_dir} --model "
                          f"{settings.model}` (videos already indexed are not encoded again)")
    return path
