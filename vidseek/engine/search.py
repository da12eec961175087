"""Library search: query -> FAISS clip candidates across the library -> the head on a window around
each candidate -> fused scores -> temporal NMS -> ranked moments. Torch-free.

With a zero-shot CLIP bundle there is no head: the span of each candidate comes from the cosine
similarity of the query with each step's frame embedding (``vidseek.decode.similarity_span``), and
its confidence is the curve's smoothed peak.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vidseek.decode import decode_best, decode_phrases
from vidseek.engine.bundle import BundleError, load_bundle
from vidseek.engine.grounder import Grounder
from vidseek.spans import temporal_nms

RETRIEVAL_WEIGHT = 0.5  # final score = w * clip similarity + (1 - w) * span confidence


class PhrasesUnavailable(ValueError):
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
    is damaged: searches skip it, with a ``DamagedVideoWarning`` the first time, and ``damaged``
    maps its id to the message (``vidseek index`` re-encodes it).
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
        from vidseek.index.cache import FeatureCache
        from vidseek.index.catalog import SETTING_STATE_DIM, Catalog
        from vidseek.index.clips import ClipIndex, windows

        index_dir = self.index_dir
        if not (index_dir / "catalog.sqlite").is_file():
            raise FileNotFoundError(f"no index in {index_dir}: build one with `vidseek index VIDEO_DIR --index {index_dir}`")
        catalog = Catalog(index_dir, readonly=True)
        try:
            settings = catalog.settings()
            bundle, grounder = self.bundle, self.grounder
            if bundle is None or settings.get("fingerprint") != bundle.fingerprint:
                bundle = load_bundle(self._bundle_dir or _stored_bundle(index_dir, settings))
                catalog.check_fingerprint(bundle.fingerprint)
                grounder = Grounder(bundle, self._backend)
            rate, window_s, stride_s = float(settings["rate"]), float(settings["window_s"]), float(settings["stride_s"])
            clips = ClipIndex(index_dir, int(settings["dim"]))
            clips.load()
            videos = {v.id: v for v in catalog.videos("ok")}
            unfit = _unfit_clips(videos, clips, lambda steps: len(windows(steps, rate, window_s, stride_s)))
            clips.reconcile(v for v in videos if v not in unfit)
        except BaseException:
            catalog.close()
            raise
        old = self.catalog
        old_maps = (self.states, self.clips.embeddings) if old is not None else ()  # set with the catalog
        self.catalog, self.settings, self.bundle, self.grounder = catalog, settings, bundle, grounder
        self.rate, self.window_s, self.stride_s = rate, window_s, stride_s
        self.state_dim = settings.get(SETTING_STATE_DIM)  # None in indexes made before it was recorded
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
        from vidseek.index.catalog import printable

        root = printable(str(self.settings.get("root") or "VIDEO_DIR"))
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
        from vidseek.index.cache import CacheError
        from vidseek.index.clips import windows

        kept, contexts, features, failed = [], {}, {}, {}
        wins: dict[int, list] = {}  # video id -> its clip windows
        seen: dict[int, list] = {}  # video id -> the contexts kept so far
        for c in cand:
            _, v, w = c
            if v in failed:
                continue
            if v not in wins:
                steps = self.videos[v].steps
                wins[v] = windows(steps, self.rate, self.window_s, self.stride_s) if steps and steps > 0 else []
            if not 0 <= w < len(wins[v]):
                failed[v] = f"clips.faiss has window {w}, which the video's {self.videos[v].steps} steps do not have"
                continue
            a, b = wins[v][w]
            if any(ca <= a and b <= cb for ca, cb in seen.get(v, ())):
                continue
            pad = b - a
            contexts[v, w] = max(0, a - pad), min(self.videos[v].steps, b + pad)
            seen.setdefault(v, []).append(contexts[v, w])
            kept.append(c)
            if v not in features:
                try:  # (steps, H) as the catalog records; H as the first video read when the catalog has no state_dim
                    want = self.state_dim or (next(iter(features.values())).shape[1] if features else None)
                    features[v] = self.states.get(v, shape=(self.videos[v].steps, want))
                except CacheError as exc:
                    failed[v] = str(exc)
        return [c for c in kept if c[1] not in failed], contexts, features, failed

    def search(self, query: str, top_k: int = 10, candidates: int = 50, video: str | None = None,
               nms_iou: float = 0.5, phrases: bool = False) -> list[Moment]:
        """The `top_k` best moments for `query`; `video` restricts the search to one file (a catalog path).

        ``phrases`` (PLPNet bundles only, else ``PhrasesUnavailable``) adds each moment's phrase spans.
        Damaged videos are skipped (see the class docstring); asking for one with `video` raises
        ``CacheError``.
        """
        try:
            return self._search(query, top_k, candidates, video, nms_iou, phrases, last=False)
        except _IndexChanged:
            self.reopen()
            return self._search(query, top_k, candidates, video, nms_iou, phrases, last=True)

    def _search(self, query: str, top_k: int, candidates: int, video: str | None, nms_iou: float, phrases: bool,
                last: bool) -> list[Moment]:
        """One attempt of ``search``. Cache files that are gone or do not fit raise ``_IndexChanged``,
        unless this is the `last` attempt: then their videos are marked damaged and skipped."""
        from vidseek.index.cache import CacheError

        if phrases and self.bundle.model_name != "plpnet":
            raise PhrasesUnavailable(f"phrases need a PLPNet bundle, but this index was built with a "
                                     f"{self.bundle.model_name} bundle ({self.bundle.path}), which has no phrases")
        text = self.grounder.encode_text([query])
        n = candidates if video is None else max(candidates, self.clips.ntotal)
        sims, vids, wins = self.clips.search(text["retrieval"], min(n, max(self.clips.ntotal, 1)))
        cand = [(float(s), int(v), int(w)) for s, v, w in zip(sims[0], vids[0], wins[0]) if v in self.videos]
        if video is not None:
            cand = [c for c in cand if self.videos[c[1]].path == video][:candidates]
            if not cand:
                raise ValueError(f"{video!r} is not an indexed video of this library (see `vidseek info`)")
        cand = [c for c in cand if c[1] not in self.damaged]
        cand, contexts, features, failed = self._contexts(cand)
        if failed:
            if not last:
                raise _IndexChanged
            self._skip(failed)
            cand = [c for c in cand if c[1] not in failed]
        if video is not None and not cand:
            raise CacheError(next(m for v, m in self.damaged.items() if self.videos[v].path == video))
        if not cand:
            return []
        lengths = np.array([b - a for a, b in (contexts[v, w] for _, v, w in cand)])
        batch = np.zeros((len(cand), lengths.max(), features[cand[0][1]].shape[1]), np.float32)
        mask = np.zeros(batch.shape[:2], bool)
        for i, (_, v, w) in enumerate(cand):
            a, b = contexts[v, w]
            batch[i, : b - a] = features[v][a:b]
            mask[i, : b - a] = True
        out = self.grounder.head(batch, mask, {k: v for k, v in text.items() if k != "tokens"})
        best = decode_best(self.bundle.model_name, out, lengths / self.rate, lengths)
        rows = []  # (score, video id, start s, end s, clip similarity, span confidence, phrases)
        for i, ((sim, v, w), (s, e, conf)) in enumerate(zip(cand, best)):
            offset = contexts[v, w][0] / self.rate
            spans = self._phrases({k: arr[i] for k, arr in out.items()}, text, offset, lengths[i] / self.rate) \
                if phrases else None
            rows.append((RETRIEVAL_WEIGHT * sim + (1 - RETRIEVAL_WEIGHT) * conf, v, offset + s, offset + e, sim, conf, spans))
        moments = []
        for vid in sorted({r[1] for r in rows}):  # NMS within each video
            mine = [r for r in rows if r[1] == vid]
            keep = temporal_nms(np.array([[r[2], r[3]] for r in mine]), np.array([r[0] for r in mine]), nms_iou)
            moments += [mine[k] for k in keep]
        moments.sort(key=lambda r: -r[0])
        return [Moment(i + 1, round(r[0], 4), self.videos[r[1]].path, round(r[2], 2), round(r[3], 2),
                       round(r[4], 4), round(r[5], 4), r[6]) for i, r in enumerate(moments[:top_k])]

    @staticmethod
    def _phrases(item: dict[str, np.ndarray], text: dict, offset: float, duration: float) -> list[dict]:
        """PLPNet's phrase spans of one candidate, in seconds of the video (its context starts at `offset`)."""
        decoded = decode_phrases(item["phrase_spans"], text["word_att"][0], item["phrase_weights"],
                                 text["tokens"][0], duration)
        return [{"text": _phrase_text(p["words"]), "start": round(offset + p["span"][0], 2),
                 "end": round(offset + p["span"][1], 2), "weight": p["weight"]} for p in decoded]


def _unfit_clips(videos: dict, clips, n_windows) -> dict[int, str]:
    """Why each of the ok ``videos`` (id -> ``Video``) missing from the loaded ``clips`` index cannot
    be added to it from the cache (``ClipIndex.reconcile`` reads those files): no steps recorded, or
    a clip file missing, unreadable, or with another number of rows than ``n_windows(steps)``."""
    from vidseek.index.cache import CacheError

    unfit = {}
    for vid in sorted(set(videos) - clips.video_ids()):
        steps = videos[vid].steps
        if not steps or steps < 1:
            unfit[vid] = f"its catalog row records {steps!r} feature steps"
            continue
        try:
            clips.embeddings.get(vid, shape=(n_windows(steps), clips.dim))
        except CacheError as exc:
            unfit[vid] = str(exc)
    return unfit


def _stored_bundle(index_dir: Path, settings: dict) -> str:
    """The bundle folder an index was built with, or a BundleError that says how to get it back."""
    path = settings.get("bundle")
    if path is None:
        raise BundleError(f"index {index_dir} names no bundle (it was never indexed into): run `vidseek index VIDEO_DIR "
                          f"--index {index_dir}` first")
    if not (Path(path) / "bundle.json").is_file() and settings.get("model"):
        raise BundleError(f"the bundle index {index_dir} was built with ({path}) is gone; re-create it with "
                          f"`vidseek index {settings.get('root', 'VIDEO_DIR')} --index {index_dir} --model "
                          f"{settings['model']}` (videos already indexed are not encoded again)")
    return path
