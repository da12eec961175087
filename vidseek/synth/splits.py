"""Which split a video and a sentence belong to.

Standard split: every video goes to train / val / test by a draw from (seed, index) alone, so
adding videos never moves earlier ones.

Compositional split (Charades-CG style): some verb-object and adjective-noun pairs never appear
in a training sentence, though each word does appear in other pairs.

>>> from vidseek.synth.language import Meaning
>>> comp_bucket(Meaning("pick_up", "ball"), "test"), comp_bucket(Meaning("pick_up", "box"), "test")
('comp_test', 'comp_test_seen')
>>> comp_bucket(Meaning("throw", "ball", obj_color="blue"), "train") is None
True
"""

from __future__ import annotations

import numpy as np

from vidseek.synth.language import Meaning

SPLITS = ("train", "val", "test")
COMP_SPLITS = ("comp_train", "comp_val", "comp_test", "comp_test_seen")

# Held out of every training sentence; each word still occurs in training in other pairs
# (picks up a box, throws a ball, a red ball, a blue box, a green box, a red shirt ...).
HELDOUT = frozenset({
    ("verb_obj", "pick_up", "ball"),
    ("verb_obj", "put_down", "ball"),
    ("adj_noun", "red", "box"),
    ("adj_noun", "blue", "ball"),
    ("adj_noun", "green", "shirt"),
})


def assign_split(seed: int, index: int, fractions: tuple[float, float, float]) -> str:
    """train / val / test for video ``index`` of dataset ``seed``."""
    u = np.random.default_rng([seed, index, 11]).random()
    edges = np.cumsum(fractions)
    return SPLITS[min(int(np.searchsorted(edges, u, side="right")), 2)]


def is_novel(meaning: Meaning) -> bool:
    """Whether a sentence contains a held-out combination."""
    return bool(meaning.combos() & HELDOUT)


def comp_bucket(meaning: Meaning, video_split: str) -> str | None:
    """The compositional split file a sentence goes to, or None when it is left out.

    comp_train: train videos, no held-out pair. comp_val: val videos, no held-out pair.
    comp_test: test videos, at least one held-out pair. comp_test_seen: test videos, none.
    Sentences with a held-out pair in train or val videos are dropped.
    """
    novel = is_novel(meaning)
    if video_split == "test":
        return "comp_test" if novel else "comp_test_seen"
    return None if novel else f"comp_{video_split}"
