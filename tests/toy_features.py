"""A planted-signal feature world for learning tests.

Each video has two events of different concepts at random places; the query names one of them,
so a model must read the query to find the right span. Features are noise plus the concept's
prototype inside each event, with onset and offset cues at its first and last steps (as an action's
start and end look different from its middle).
"""

from __future__ import annotations

import numpy as np

from vidseek.trainer.data.annotations import Sample

CONCEPTS = ["red", "blue", "green", "yellow", "black", "white"]
TEMPLATES = ["a person with the {} ball", "someone holds the {} ball", "the {} ball moves"]


class MemoryStore(dict):
    """Feature store held in memory: vid -> (T, D) array."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.path = "<memory>"


def make_toy(n_videos: int, seed: int, dim: int = 16, fps: float = 5.0) -> tuple[list[Sample], MemoryStore]:
    rng = np.random.default_rng(seed)
    protos = np.random.default_rng(1234).normal(size=(len(CONCEPTS), dim)).astype(np.float32)
    protos *= 2.0 / np.linalg.norm(protos, axis=1, keepdims=True)
    onset, offset = np.random.default_rng(99).normal(size=(2, dim)).astype(np.float32)  # visible boundaries
    store, samples = MemoryStore(dim), []
    for v in range(n_videos):
        t = int(rng.integers(30, 80))
        feats = rng.normal(0, 0.5, size=(t, dim)).astype(np.float32)
        a, b = rng.choice(len(CONCEPTS), 2, replace=False)
        # two non-overlapping events, each 15-40% of the video
        la, lb = (int(rng.integers(int(0.15 * t), int(0.4 * t))) for _ in range(2))
        first_a = rng.random() < 0.5
        gap = int(rng.integers(1, max(2, t - la - lb)))
        start0 = int(rng.integers(0, max(1, t - la - lb - gap)))
        spans = {}
        if first_a:
            spans[a] = (start0, start0 + la)
            spans[b] = (start0 + la + gap, start0 + la + gap + lb)
        else:
            spans[b] = (start0, start0 + lb)
            spans[a] = (start0 + lb + gap, start0 + lb + gap + la)
        for c, (s, e) in spans.items():
            feats[s:e] += protos[c]
            feats[s : s + 2] += onset
            feats[max(s, e - 2) : e] += offset
        vid = f"toy{seed}_{v:04d}"
        store[vid] = feats
        for c in (a, b):
            s, e = spans[c]
            query = TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(CONCEPTS[c])
            samples.append(Sample(f"{vid}:{c}", vid, query, t / fps, ((s / fps, min(e, t) / fps),)))
    return samples, store
