"""Run a bundle's graphs without torch: tokenize, encode text and video, run the head, decode.

>>> # g = Grounder(load_bundle("bundle/"))
>>> # g.ground(features, "person opens door", duration=30.0)   # [[start_s, end_s, score], ...]
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping

import numpy as np

from vidseek.engine.decode import decode_phrases, decode_windows
from vidseek.engine.bundle import Bundle
from vidseek.vocabulary import query_words
from vidseek.engine.registry import GRAPH_NAMES, family
from vidseek.engine.spelling import correct
from vidseek.engine.session import make_session
from vidseek.engine.video import VideoInfo
from vidseek.errors import VidseekError
from vidseek.spans import resample_features

VIDEO_SIDE = ("frame_encoder", "video_encoder")  # the graphs that index a video
QUERY_SIDE = ("text_encoder", "head")  # the graphs that answer a query
QUOTED_CHARS = 80  # a QueryError quotes at most this many characters of the query


class QueryError(VidseekError, ValueError):
    """A query that cannot be searched (empty, not valid text, or no known words); the message says why."""


def quoted(query: str) -> str:
    """``query`` as an error message shows it: its repr, cut to ``QUOTED_CHARS`` characters with
    the full length after an ellipsis, so that a huge query gives a short message.

    >>> quoted("person opens door")
    "'person opens door'"
    >>> quoted("x" * 100_000)[-28:]
    "xxx'... (100,000 characters)"
    """
    if len(query) <= QUOTED_CHARS:
        return repr(query)
    return f"{query[:QUOTED_CHARS]!r}... ({len(query):,} characters)"


def check_text(query: str) -> None:
    """Raise ``QueryError`` when ``query`` is not valid Unicode text: lone surrogates, which is how
    Python passes on a command-line argument whose bytes are not UTF-8, cannot be tokenized."""
    try:
        query.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise QueryError(f"query {quoted(query)} is not valid text: character {exc.start + 1} is a lone surrogate "
                         "(a command-line argument that is not UTF-8?); type the query as UTF-8 text") from None


class Sessions(Mapping):
    """Graph name -> inference session, each made on first use (``make_session``) and kept; threads
    that ask for the same graph at once share one session."""

    def __init__(self, paths: dict, backend: str, threads: int | None):
        self._paths, self._backend, self._threads, self._made = paths, backend, threads, {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str):
        session = self._made.get(name)
        if session is None:
            with self._lock:
                if name not in self._made:
                    self._made[name] = make_session(self._paths[name], self._backend, threads=self._threads)
                session = self._made[name]
        return session

    def __iter__(self):
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)


def unknown_ids(tokenizer) -> set[int]:
    """The id of a ``tokenizers.Tokenizer``'s unknown-word token, if it has one: WordPiece and BPE name
    it (``unk_token``); a Unigram model (SentencePiece: SigLIP, T5) keeps only its ``unk_id``."""
    model = tokenizer.model
    unk = getattr(model, "unk_token", None)
    if unk:
        return {tokenizer.token_to_id(unk)} - {None}
    if type(model).__name__ == "Unigram":  # only the serialised model says which piece it is
        unk_id = json.loads(tokenizer.to_str())["model"].get("unk_id")
        return {int(unk_id)} if unk_id is not None else set()
    return set()


class Grounder:
    """The query-time and index-time graphs of one bundle on one backend."""

    def __init__(self, bundle: Bundle, backend: str = "onnxruntime", threads: int | None = None):
        self.bundle = bundle
        self.model_name = bundle.model_name
        self.family = family(bundle.model_name)
        names = [g for g in GRAPH_NAMES if g in bundle.graphs]
        # each graph is loaded when first run: a search never loads the video side, an indexer the head
        self.sessions = Sessions({g: bundle.graph_path(g) for g in names}, backend, threads)
        self.tokenizer = bundle.tokenizer()
        # the tokenizer's own special tokens ([CLS], [SEP], [PAD] of WordPiece, <|startoftext|> of CLIP's
        # BPE ...) and its unknown-word token ([UNK], <unk>): a query needs a token that is neither
        added = self.tokenizer.get_added_tokens_decoder()
        self._special = {i for i, t in added.items() if t.special}
        self._special_text = {t.content for t in added.values() if t.special}
        self._unknown = unknown_ids(self.tokenizer)
        # the words of the sentences the bundle was trained on (None: not recorded, an open vocabulary)
        vocab = bundle.meta["words"].get("vocabulary")  # an empty list records nothing: no sentence has no words
        self.vocabulary = frozenset(vocab) if vocab else None
        self.spelling = True  # correct typos against the vocabulary (``spell``); off to measure what it gives

    def warm(self, names: Iterable[str]) -> None:
        """Load the named graphs now (those of them the bundle has), so that a backend this machine
        lacks (``BackendUnavailable``) or a graph that does not load (``BundleError``) is said before
        any work starts, not at the first video or query: ``VIDEO_SIDE`` for an indexer,
        ``QUERY_SIDE`` for a server."""
        for name in names:
            if name in self.sessions:
                self.sessions[name]

    # ---- query side ----------------------------------------------------------------------------
    def tokenize(self, queries: list[str]) -> tuple[dict[str, np.ndarray], list[list[str]]]:
        """Token ids and mask (B, M) padded with 0, and the tokens of each query."""
        for q in queries:
            check_text(q)
        encs = self.tokenizer.encode_batch([q.strip() for q in queries])
        for q, e in zip(queries, encs):
            words = [i for i in e.ids if i not in self._special]
            if not words:  # blank, or only characters the tokenizer drops (controls, zero-width, bidi marks)
                raise QueryError(f"query {quoted(q)} is empty: it has no word this model can read; type a few "
                                 "words describing the moment, e.g. 'person opens door'")
            if all(i in self._unknown for i in words):
                raise QueryError(f"none of the words of {quoted(q)} is known to this model's vocabulary; "
                                 "describe the moment with other words")
        m = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), m), np.int64)
        mask = np.zeros((len(encs), m), np.int64)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        return {"input_ids": ids, "attention_mask": mask}, [e.tokens for e in encs]

    def spell(self, query: str) -> tuple[str, list[tuple[str, str]]]:
        """``query`` with words the bundle's vocabulary lacks corrected to the nearest one it holds,
        unless the tokenizer knows them whole (``whole_word``: real words, not typos), and the
        ``(typed, corrected)`` pairs (``vidseek.engine.spelling``; no vocabulary: unchanged)."""
        return correct(query, self.vocabulary if self.spelling else None, self.whole_word)

    def whole_word(self, word: str) -> bool:
        """Whether the tokenizer knows ``word`` as one token of its own (a real word, e.g. "kicks",
        where a typo such as "opns" comes apart into pieces): ``spell`` leaves such words alone."""
        ids = self.tokenizer.encode(word, add_special_tokens=False).ids
        return len(ids) == 1 and ids[0] not in self._unknown and ids[0] not in self._special

    def unseen_words(self, query: str) -> list[str]:
        """The words of ``query`` that the bundle's training sentences never used, in query order
        (none when the bundle records no vocabulary)."""
        if self.vocabulary is None:
            return []
        return list(dict.fromkeys(w for w in query_words(query) if w not in self.vocabulary))

    def content_tokens(self, tokens: list[str]) -> int:
        """How many of a query's ``tokens`` (as ``tokenize`` gives them) are not special tokens."""
        return sum(t not in self._special_text for t in tokens)

    def encode_text(self, queries: list[str], timings: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        """The text encoder's outputs for ``queries``, and their ``tokens``. ``timings`` (optional)
        accumulates the seconds spent in "tokenize" and "text_encoder"."""
        t0 = time.perf_counter()
        feeds, tokens = self.tokenize(queries)
        t1 = time.perf_counter()
        out = self.sessions["text_encoder"].run(feeds)
        if timings is not None:
            _add(timings, "tokenize", t1 - t0)
            _add(timings, "text_encoder", time.perf_counter() - t1)
        out["tokens"] = tokens
        return out

    # ---- video side ----------------------------------------------------------------------------
    def video_features(self, path, decoder: str = "auto", chunk: int = 256,
                       timings: dict[str, float] | None = None) -> tuple[np.ndarray, VideoInfo]:
        """Decode a video file at the bundle's rate and run the frame encoder: (T, D) features and the
        file's ``VideoInfo`` (its ``duration`` is the seconds of footage, its ``gaps`` what was skipped).

        Frames are sampled and preprocessed by the same code the encoder was trained or exported with.
        ``timings`` (optional) accumulates the seconds spent in "frame_encoder" and, for the rest
        (decoding, sampling, preprocessing), "decode".
        """
        from vidseek.engine.preprocess import FrameSpec, preprocess
        from vidseek.engine.video import iter_sampled_chunks

        fe = self.bundle.meta["features"].get("frame_encoder")
        if fe is None or "frame_encoder" not in self.sessions:
            raise ValueError(f"bundle {self.bundle.path} has no frame encoder: it expects precomputed features")
        spec, rate = FrameSpec.from_dict(fe["spec"]), float(fe["rate"])
        t0, encoding = time.perf_counter(), 0.0
        chunks = iter_sampled_chunks(path, rate, spec.decode_size, chunk, decoder)
        parts = []
        for frames, _ in chunks:
            pixels = preprocess(frames, spec)
            t1 = time.perf_counter()
            parts.append(self.sessions["frame_encoder"].run({"pixels": pixels})["frame_features"])
            encoding += time.perf_counter() - t1
        if timings is not None:
            _add(timings, "frame_encoder", encoding)
            _add(timings, "decode", time.perf_counter() - t0 - encoding)
        return np.concatenate(parts), chunks.info

    def encode_video(self, features: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """features (B, T, D) -> video states (B, T, H)."""
        return self.video_outputs(features, mask)["video_states"]

    def video_outputs(self, features: np.ndarray, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """features (B, T, D) -> {"video_states" (B, T, H)[, "retrieval_steps" (B, T, E)]}.

        A zero-shot bundle has no video encoder: its states and retrieval steps are both the
        L2-normalised frame embeddings (zero at masked steps).
        """
        features = np.asarray(features, np.float32)
        if features.shape[-1] != self.bundle.feature_dim:
            raise ValueError(f"features have dim {features.shape[-1]} but bundle {self.bundle.path} expects "
                             f"{self.bundle.feature_dim}: use the bundle's frame encoder")
        mask = np.ones(features.shape[:2], bool) if mask is None else mask.astype(bool)
        if self.bundle.zero_shot:
            norms = np.maximum(np.linalg.norm(features, axis=-1, keepdims=True), 1e-12)
            steps = np.where(mask[..., None], features / norms, 0.0).astype(np.float32)
            return {"video_states": steps, "retrieval_steps": steps}
        return self.sessions["video_encoder"].run({"features": features, "video_mask": mask})

    def head(self, states: np.ndarray, mask: np.ndarray, text: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """states (B, T, H), mask (B, T), text outputs with batch B (or 1, broadcast).

        A zero-shot bundle's "head" is the cosine similarity of each step with the query:
        {"similarity" (B, T)}, 0 at masked steps.
        """
        if self.bundle.zero_shot:
            query = np.asarray(text["retrieval"], np.float32)
            sim = np.einsum("bte,be->bt", np.asarray(states, np.float32), np.broadcast_to(query, (len(states), query.shape[-1])))
            return {"similarity": np.where(mask.astype(bool), sim, 0.0).astype(np.float32)}
        key = self.family.head_text
        t = text[key]
        if t.shape[0] == 1 and states.shape[0] > 1:
            t = np.repeat(t, states.shape[0], 0)
        return self.sessions["head"].run({"video_states": states, "video_mask": mask.astype(bool), key: t})

    # ---- single-video grounding ------------------------------------------------------------------
    def ground(self, features: np.ndarray, query: str, duration: float, k: int = 10, phrases: bool = False) -> dict:
        """Ground one query in one video's (T, D) features, resampled to the bundle's length as in training
        (a zero-shot bundle reads them at their own rate, without resampling)."""
        feats = np.asarray(features, np.float32)
        if not self.bundle.zero_shot:
            feats = resample_features(feats, self.bundle.length)
        feats = feats[None]
        mask = np.ones(feats.shape[:2], bool)
        text = self.encode_text([query])
        out = self.head(self.encode_video(feats, mask), mask, text)
        item = {k_: v[0] for k_, v in out.items()}
        result = {"query": query, "windows": decode_windows(self.model_name, item, duration, feats.shape[1], k)}
        if phrases and self.family.phrases:
            result["phrases"] = decode_phrases(item["phrase_spans"], text["word_att"][0], item["phrase_weights"],
                                               text["tokens"][0], duration)
        return result


def _add(timings: dict[str, float], stage: str, seconds: float) -> None:
    timings[stage] = timings.get(stage, 0.0) + seconds
