"""Library search: query -> FAISS clip candidates across the library -> the head on a window around
each candidate -> fused scores -> temporal NMS -> ranked moments. Torch-free.

With a zero-shot CLIP bundle there is no head: the span of each candidate comes from the cosine
similarity of the query with each step's frame embedding (``vidseek.decode.similarity_span``), and
its confidence is the curve's smoothed peak.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vidseek.decode import decode_phrases, decode_windows
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


class Searcher:
    """Searches an index built by ``vidseek index`` with the bundle it was built with.

    Holds the catalog open (read-only), the bundle's sessions and the clip index in memory, so
    keep one Searcher for many queries; ``close()`` (or a ``with`` block) releases the catalog.
    """

    def __init__(self, index_dir: str | Path, bundle_dir: str | Path | None = None, backend: str = "onnxruntime"):
        from vidseek.index.cache import FeatureCache
        from vidseek.index.catalog import Catalog
        from vidseek.index.clips import ClipIndex

        index_dir = Path(index_dir)
        if not (index_dir / "catalog.sqlite").is_file():
            raise FileNotFoundError(f"no index in {index_dir}: build one with `vidseek index VIDEO_DIR --index {index_dir}`")
        self.catalog = Catalog(index_dir, readonly=True)
        try:
            settings = self.catalog.settings()
            self.bundle = load_bundle(bundle_dir or _stored_bundle(index_dir, settings))
            self.catalog.check_fingerprint(self.bundle.fingerprint)
            self.grounder = Grounder(self.bundle, backend)
            self.rate, self.window_s, self.stride_s = float(settings["rate"]), float(settings["window_s"]), float(settings["stride_s"])
            self.states = FeatureCache(index_dir, "states")
            self.clips = ClipIndex(index_dir, int(settings["dim"]))
            self.clips.load()
            self.videos = {v.id: v for v in self.catalog.videos("ok")}
            self.clips.reconcile(self.videos)
        except BaseException:
            self.catalog.close()
            raise

    def close(self) -> None:
        """Release the catalog; the Searcher cannot search afterwards."""
        self.catalog.close()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _windows(self, video_id: int, window: int) -> tuple[int, int, int]:
        """Steps (start, end exclusive) of clip `window`, and the context the head sees around it."""
        from vidseek.index.clips import windows

        steps = self.videos[video_id].steps
        a, b = windows(steps, self.rate, self.window_s, self.stride_s)[window]
        pad = b - a  # one window of context on each side: bounded cost for long videos
        return max(0, a - pad), min(steps, b + pad), steps

    def search(self, query: str, top_k: int = 10, candidates: int = 50, video: str | None = None,
               nms_iou: float = 0.5, phrases: bool = False) -> list[Moment]:
        """The `top_k` best moments for `query`; `video` restricts the search to one file (a catalog path).

        ``phrases`` (PLPNet bundles only, else ``PhrasesUnavailable``) adds each moment's phrase spans.
        """
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
        if not cand:
            return []
        contexts = [self._windows(v, w) for _, v, w in cand]
        longest = max(b - a for a, b, _ in contexts)
        h = self.states.get(cand[0][1]).shape[1]
        batch = np.zeros((len(cand), longest, h), np.float32)
        mask = np.zeros((len(cand), longest), bool)
        for i, ((_, v, _), (a, b, _)) in enumerate(zip(cand, contexts)):
            batch[i, : b - a] = self.states.get(v)[a:b]
            mask[i, : b - a] = True
        out = self.grounder.head(batch, mask, {k: v for k, v in text.items() if k != "tokens"})
        rows = []  # (score, video id, start s, end s, clip similarity, span confidence, phrases)
        for i, ((sim, v, _), (a, b, _)) in enumerate(zip(cand, contexts)):
            item = {k: arr[i] for k, arr in out.items()}
            offset, duration = a / self.rate, (b - a) / self.rate
            s, e, conf = decode_windows(self.bundle.model_name, item, duration, b - a, 1)[0]
            spans = self._phrases(item, text, offset, duration) if phrases else None
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
