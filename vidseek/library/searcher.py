"""The searcher: query -> FAISS clip candidates across the library -> the head on a window around
each candidate -> fused scores -> temporal NMS -> ranked moments. Torch-free.

With a zero-shot CLIP bundle there is no head: the span of each candidate comes from the cosine
similarity of the query with each step's frame embedding (``vidseek.engine.decode.similarity_span``), and
its confidence is the curve's smoothed peak.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vidseek.engine.bundle import BundleError, load_bundle
from vidseek.engine.decode import decode_best, decode_phrases
from vidseek.engine.grounder import Grounder
from vidseek.errors import VidseekError
from vidseek.index import integrity
from vidseek.index.cache import CacheError, FeatureCache
from vidseek.index.catalog import Catalog, printable
from vidseek.index.clips import ClipIndex
from vidseek.spans import temporal_nms

RETRIEVAL_WEIGHT = 0.5  # final score = w * clip similarity + (1 - w) * span confidence


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
    score: float
    video: str  # path of the file, relative to the library root
    start: float
    end: float
    retrieval: float  # cosine similarity of the query and the best clip
    span: float  # the head's confidence in the span (zero-shot: the peak frame-query similarity)
    phrases: list[dict] | None = None

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

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


@dataclass(frozen=True)
class _Hit:
    """One candidate's best span before ranking: the video, seconds, and the signals fused into its score."""

    score: float
    video_id: int
    start: float
    end: float
    retrieval: float
    span: float
    phrases: list[dict] | None


class _IndexChanged(Exception):
    """Cache files a search needs are gone or do not fit: the index may have changed since the
    Searcher read it (``Searcher.search`` reads it again and retries once)."""


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
        catalog = Catalog(index_dir, readonly=True)
        try:
            settings = catalog.settings()
            bundle, grounder = self.bundle, self.grounder
            if bundle is None or settings.fingerprint != bundle.fingerprint:
                bundle = load_bundle(self._bundle_dir or _stored_bundle(index_dir, settings))
                catalog.check_fingerprint(bundle.fingerprint)
                grounder = Grounder(bundle, self._backend)
            clips = ClipIndex(index_dir, int(settings.dim))
            clips.load()
            videos = {v.id: v for v in catalog.videos("ok")}
            lagging = [v for vid, v in videos.items() if vid not in clips.video_ids()]
            unfit = integrity.damaged_videos(lagging, settings, clips.embeddings)  # reconcile reads these files
            clips.reconcile(v for v in videos if v not in unfit)
        except BaseException:
            catalog.close()
            raise
        old = self.catalog
        old_maps = (self.states, self.clips.embeddings) if old is not None else ()  # set with the catalog
        self.catalog, self.settings, self.bundle, self.grounder = catalog, settings, bundle, grounder
        self.rate = float(settings.rate)
        self.states, self.clips, self.videos = FeatureCache(index_dir, "states"), clips, videos
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
                    features[v] = integrity.read_features(self.states, video, self.settings)
                except CacheError as exc:
                    failed[v] = str(exc)
        return [c for c in kept if c[1] not in failed], contexts, features, failed

    def search(self, query: str, *, top_k: int = 10, candidates: int = 50, video: str | None = None,
               nms_iou: float = 0.5, phrases: bool = False, trace: SearchTrace | None = None) -> list[Moment]:
        """The `top_k` best moments for `query`; `video` restricts the search to one file (a catalog path).

        ``phrases`` (PLPNet bundles only, else ``PhrasesUnavailable``) adds each moment's phrase spans.
        Damaged videos are skipped (see the class docstring); asking for one with `video` raises
        ``CacheError``. ``trace``, when given, is filled with the time of each stage (``SearchTrace``).
        """
        try:
            return self._search(query, top_k, candidates, video, nms_iou, phrases, trace, last=False)
        except _IndexChanged:
            self.reopen()
            return self._search(query, top_k, candidates, video, nms_iou, phrases, trace, last=True)

    def _search(self, query: str, top_k: int, candidates: int, video: str | None, nms_iou: float, phrases: bool,
                trace: SearchTrace | None, last: bool) -> list[Moment]:
        """One attempt of ``search``. Cache files that are gone or do not fit raise ``_IndexChanged``,
        unless this is the `last` attempt: then their videos are marked damaged and skipped."""
        if phrases and not self.grounder.family.phrases:
            raise PhrasesUnavailable(f"phrases need a PLPNet bundle, but this index was built with a bundle of model "
                                     f"{self.bundle.model_name} ({self.bundle.path}), which has no phrases")
        trace = SearchTrace() if trace is None else trace
        before, t0 = sum(trace.seconds.values()), time.perf_counter()
        text = self.grounder.encode_text([query], trace.seconds)
        t1 = time.perf_counter()
        n = candidates if video is None else max(candidates, self.clips.ntotal)
        sims, vids, wins = self.clips.search(text["retrieval"], min(n, max(self.clips.ntotal, 1)))
        cand = [(float(s), int(v), int(w)) for s, v, w in zip(sims[0], vids[0], wins[0]) if v in self.videos]
        trace.add("faiss", time.perf_counter() - t1)
        trace.candidates, trace.candidate_videos = len(cand), len({v for _, v, _ in cand})
        if video is not None:
            cand = [c for c in cand if self.videos[c[1]].path == video][:candidates]
            if not cand:
                raise NotIndexed(f"{video!r} is not an indexed video of this library (see `vidseek info`)")
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
            raise CacheError(next(m for v, m in self.damaged.items() if self.videos[v].path == video))
        hits = self._ground(cand, contexts, features, text, phrases, trace) if cand else []
        moments = []
        for vid in sorted({h.video_id for h in hits}):  # NMS within each video
            mine = [h for h in hits if h.video_id == vid]
            keep = temporal_nms(np.array([[h.start, h.end] for h in mine]), np.array([h.score for h in mine]), nms_iou)
            moments += [mine[k] for k in keep]
        moments.sort(key=lambda h: -h.score)
        result = [Moment(i + 1, round(h.score, 4), self.videos[h.video_id].path, round(h.start, 2), round(h.end, 2),
                         round(h.retrieval, 4), round(h.span, 4), h.phrases) for i, h in enumerate(moments[:top_k])]
        trace.add("post", max(0.0, time.perf_counter() - t0 - (sum(trace.seconds.values()) - before)))
        return result

    def _ground(self, cand: list[tuple[float, int, int]], contexts: dict, features: dict, text: dict, phrases: bool,
                trace: SearchTrace) -> list[_Hit]:
        """The head on every candidate's context in one batch: each candidate's best span, fused score
        ``RETRIEVAL_WEIGHT * clip similarity + (1 - RETRIEVAL_WEIGHT) * span confidence``."""
        lengths = np.array([b - a for a, b in (contexts[v, w] for _, v, w in cand)])
        batch = np.zeros((len(cand), lengths.max(), features[cand[0][1]].shape[1]), np.float32)
        mask = np.zeros(batch.shape[:2], bool)
        for i, (_, v, w) in enumerate(cand):
            a, b = contexts[v, w]
            batch[i, : b - a] = features[v][a:b]
            mask[i, : b - a] = True
        t0 = time.perf_counter()
        out = self.grounder.head(batch, mask, {k: v for k, v in text.items() if k != "tokens"})
        trace.add("head", time.perf_counter() - t0)
        trace.head_rows, trace.head_steps = len(cand), int(lengths.sum())
        best = decode_best(self.bundle.model_name, out, lengths / self.rate, lengths)
        hits = []
        for i, ((sim, v, w), (s, e, conf)) in enumerate(zip(cand, best)):
            offset = contexts[v, w][0] / self.rate
            spans = self._phrases({k: arr[i] for k, arr in out.items()}, text, offset, lengths[i] / self.rate) \
                if phrases else None
            hits.append(_Hit(RETRIEVAL_WEIGHT * sim + (1 - RETRIEVAL_WEIGHT) * conf, v, offset + s, offset + e, sim,
                             conf, spans))
        return hits

    @staticmethod
    def _phrases(item: dict[str, np.ndarray], text: dict, offset: float, duration: float) -> list[dict]:
        """PLPNet's phrase spans of one candidate, in seconds of the video (its context starts at `offset`)."""
        decoded = decode_phrases(item["phrase_spans"], text["word_att"][0], item["phrase_weights"],
                                 text["tokens"][0], duration)
        return [{"text": _phrase_text(p["words"]), "start": round(offset + p["span"][0], 2),
                 "end": round(offset + p["span"][1], 2), "weight": p["weight"]} for p in decoded]


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
