"""Word features for the text encoders.

Four kinds, chosen with ``--words``:
  transformer:ID_OR_PATH  frozen per-token embeddings of a sentence-transformers model
                          (default all-MiniLM-L6-v2; a hub id or a local folder)
  clip:ID_OR_PATH         frozen per-token states of a CLIP text tower (the text side of CLIP)
  static:PATH             a GloVe / word2vec text file (the papers' setting)
  learned                 embeddings trained with the model over the training vocabulary

A featurizer turns sentences into a padded batch; frozen features are cached per sentence.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# Unicode White_Space, spelled out: Python's \s also counts U+001C..U+001F, Rust's (tokenizers) does not.
WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
WORD_RE = re.compile(f"[a-z0-9]+(?:'[a-z]+)?|[^{WHITESPACE}a-z0-9]")
DEFAULT_TRANSFORMER = "all-MiniLM-L6-v2"


def simple_tokenize(text: str) -> list[str]:
    """Lower-case word and punctuation tokens (used by static and learned word features).

    >>> simple_tokenize("The person's door, opened!")
    ['the', "person's", 'door', ',', 'opened', '!']
    """
    return WORD_RE.findall(text.lower())


@dataclass
class WordBatch:
    words: torch.Tensor  # (B, M) float features (B, M, D), or (B, M) int64 ids for learned embeddings
    mask: torch.Tensor  # (B, M) bool, True at real tokens
    tokens: list[list[str]]  # the tokens each step stands for, for showing word attention


def _pad(arrays: list[np.ndarray], dtype) -> tuple[torch.Tensor, torch.Tensor]:
    m = max(1, max(len(a) for a in arrays))
    out = np.zeros((len(arrays), m) + arrays[0].shape[1:], dtype)
    mask = np.zeros((len(arrays), m), bool)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
        mask[i, : len(a)] = True
    return torch.from_numpy(out), torch.from_numpy(mask)


class TransformerWords:
    """Frozen per-token embeddings from a sentence-transformers model."""

    kind = "transformer"

    def __init__(self, model: str = DEFAULT_TRANSFORMER, max_words: int = 32, device: str = "cpu"):
        from vidseek.trainer.data.sampler import load_sentence_model, resolve_sentence_model

        self.st = load_sentence_model(resolve_sentence_model(model), device)  # shared with the cluster sampler
        self.model, self.max_words = model, max_words
        self.dim = int(self.st[0].auto_model.config.hidden_size)
        self._cache: dict[str, tuple[np.ndarray, list[str]]] = {}

    def _compute(self, sentences: list[str]) -> None:
        tower = self.st[0]  # the transformer module of the sentence-transformers pipeline
        enc = tower.tokenizer(sentences, padding=True, truncation=True, max_length=self.max_words, return_tensors="pt")
        with torch.no_grad():
            emb = tower.auto_model(**enc.to(self.st.device)).last_hidden_state.float().cpu().numpy()
        ids = enc["input_ids"].cpu().numpy()
        mask = enc["attention_mask"].cpu().numpy().astype(bool)
        for s, e, i, m in zip(sentences, emb, ids, mask):
            self._cache[s] = (e[m].astype(np.float32), tower.tokenizer.convert_ids_to_tokens(i[m].tolist()))

    def encode(self, sentences: list[str]) -> WordBatch:
        todo = list(dict.fromkeys(s for s in sentences if s not in self._cache))
        for i in range(0, len(todo), 256):
            self._compute(todo[i : i + 256])
        words, mask = _pad([self._cache[s][0] for s in sentences], np.float32)
        return WordBatch(words, mask, [self._cache[s][1] for s in sentences])

    def spec(self) -> dict:
        return {"kind": self.kind, "model": self.model, "dim": self.dim, "max_words": self.max_words}


class ClipWords:
    """Frozen per-token hidden states of a CLIP text tower (``clip:ID_OR_PATH``), the text side of CLIP."""

    kind = "clip"

    def __init__(self, model: str, max_words: int = 32, device: str = "cpu"):
        from vidseek.trainer.encoders import load_clip

        parts = load_clip(model, text=True)
        if parts.text is None:
            raise ValueError(f"CLIP {model!r} has no text tower (a vision-only checkpoint); use a full CLIP folder")
        self.parts, self.model, self.max_words = parts, model, max_words
        self.tower = parts.text.to(device).eval()
        self.dim = self.tower.hidden
        self._cache: dict[str, tuple[np.ndarray, list[str]]] = {}

    def encode(self, sentences: list[str]) -> WordBatch:
        todo = list(dict.fromkeys(s for s in sentences if s not in self._cache))
        for i in range(0, len(todo), 256):
            chunk = todo[i : i + 256]
            enc = self.parts.tokenize(chunk, max_length=self.max_words)
            device = next(self.tower.parameters()).device
            with torch.no_grad():
                hidden, _ = self.tower(enc["input_ids"].to(device), enc["attention_mask"].to(device))
            mask = enc["attention_mask"].numpy().astype(bool)
            for s, h, ids, m in zip(chunk, hidden.float().cpu().numpy(), enc["input_ids"].numpy(), mask):
                self._cache[s] = (h[m], self.parts.tokenizer.convert_ids_to_tokens(ids[m].tolist()))
        words, mask = _pad([self._cache[s][0] for s in sentences], np.float32)
        return WordBatch(words, mask, [self._cache[s][1] for s in sentences])

    def spec(self) -> dict:
        return {"kind": self.kind, "model": self.model, "dim": self.dim, "max_words": self.max_words}


class StaticWords:
    """GloVe or word2vec vectors from a text file (``word v1 v2 ...``; a word2vec "N D" header is skipped).

    Only the words in ``vocabulary`` are kept when it is given. Unknown words get a zero vector.
    """

    kind = "static"

    def __init__(self, path: str | Path, vocabulary: set[str] | None = None, max_words: int = 32):
        self.path, self.max_words = str(path), max_words
        self.vectors: dict[str, np.ndarray] = {}
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"word vector file not found: {p}; give a GloVe/word2vec text file")
        dim = None
        with open(p, encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                parts = line.rstrip().split(" ")
                if lineno == 1 and len(parts) == 2 and all(x.isdigit() for x in parts):
                    continue  # word2vec header
                if len(parts) < 2 or (vocabulary is not None and parts[0] not in vocabulary):
                    continue
                vec = np.asarray(parts[1:], np.float32)
                if dim is None:
                    dim = len(vec)
                elif len(vec) != dim:
                    raise ValueError(f"{p}:{lineno}: vector of {len(vec)} values, expected {dim}")
                self.vectors[parts[0]] = vec
        if dim is None:
            raise ValueError(f"{p}: no word vectors read (is it a GloVe/word2vec text file?)")
        self.dim = dim

    def encode(self, sentences: list[str]) -> WordBatch:
        tokens = [simple_tokenize(s)[: self.max_words] for s in sentences]
        zero = np.zeros(self.dim, np.float32)
        arrays = [np.stack([self.vectors.get(t, zero) for t in toks]) if toks else np.zeros((0, self.dim), np.float32) for toks in tokens]
        words, mask = _pad(arrays, np.float32)
        return WordBatch(words, mask, tokens)

    def spec(self) -> dict:
        return {"kind": self.kind, "path": self.path, "dim": self.dim, "max_words": self.max_words}


class LearnedWords:
    """Token ids over a vocabulary built from the training sentences (0 = padding, 1 = unknown)."""

    kind = "learned"

    def __init__(self, vocab: dict[str, int], dim: int = 300, max_words: int = 32):
        self.vocab, self.dim, self.max_words = vocab, dim, max_words

    @classmethod
    def build(cls, sentences: list[str], dim: int = 300, max_words: int = 32) -> "LearnedWords":
        vocab = {"<pad>": 0, "<unk>": 1}
        for s in sentences:
            for t in simple_tokenize(s):
                vocab.setdefault(t, len(vocab))
        return cls(vocab, dim, max_words)

    def encode(self, sentences: list[str]) -> WordBatch:
        tokens = [simple_tokenize(s)[: self.max_words] for s in sentences]
        ids = [np.asarray([self.vocab.get(t, 1) for t in toks], np.int64) for toks in tokens]
        words, mask = _pad(ids, np.int64)
        return WordBatch(words, mask, tokens)

    def spec(self) -> dict:
        return {"kind": self.kind, "dim": self.dim, "vocab_size": len(self.vocab), "max_words": self.max_words}


def make_featurizer(choice: str, sentences: list[str], max_words: int = 32, device: str = "cpu", learned_dim: int = 300):
    """Build a featurizer from a CLI choice: ``transformer[:ID_OR_PATH]``, ``static:PATH`` or ``learned``."""
    kind, _, arg = choice.partition(":")
    if kind == "transformer":
        return TransformerWords(arg or DEFAULT_TRANSFORMER, max_words, device)
    if kind == "clip":
        return ClipWords(arg or "openai/clip-vit-base-patch32", max_words, device)
    if kind == "static":
        if not arg:
            raise ValueError("static word features need a file: --words static:PATH/TO/glove.txt")
        vocab = {t for s in sentences for t in simple_tokenize(s)}
        return StaticWords(arg, vocab, max_words)
    if kind == "learned":
        return LearnedWords.build(sentences, learned_dim, max_words)
    raise ValueError(f"unknown word features {choice!r}; use transformer[:ID_OR_PATH], clip[:ID_OR_PATH], static:PATH or learned")


def save_featurizer(featurizer, run_dir: Path) -> dict:
    """Write what is needed to rebuild `featurizer` into run_dir and return its spec."""
    spec = featurizer.spec()
    if isinstance(featurizer, LearnedWords):
        (run_dir / "vocab.json").write_text(json.dumps(featurizer.vocab))
    if isinstance(featurizer, StaticWords):
        # keep only the vectors the run saw, so the run folder is self-contained
        words = sorted(featurizer.vectors)
        np.save(run_dir / "static_vectors.npy", np.stack([featurizer.vectors[w] for w in words]))
        (run_dir / "static_words.json").write_text(json.dumps(words))
    return spec


def load_featurizer(spec: dict, run_dir: Path, device: str = "cpu"):
    """Rebuild the featurizer described by `spec` (from a run's config.json)."""
    kind = spec["kind"]
    if kind == "transformer":
        return TransformerWords(spec["model"], spec["max_words"], device)
    if kind == "clip":
        return ClipWords(spec["model"], spec["max_words"], device)
    if kind == "learned":
        vocab = json.loads((run_dir / "vocab.json").read_text())
        return LearnedWords(vocab, spec["dim"], spec["max_words"])
    if kind == "static":
        obj = StaticWords.__new__(StaticWords)
        words = json.loads((run_dir / "static_words.json").read_text())
        vecs = np.load(run_dir / "static_vectors.npy", allow_pickle=False)
        obj.path, obj.max_words, obj.dim = spec["path"], spec["max_words"], spec["dim"]
        obj.vectors = dict(zip(words, vecs))
        return obj
    raise ValueError(f"unknown word feature kind {kind!r} in the run's config.json")
