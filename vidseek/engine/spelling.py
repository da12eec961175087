"""Typos in a query, corrected against the closed vocabulary of the bundle's training sentences.

A model trained on a closed world (the built-in bundles) knows a few dozen words; "person opns the
dor" reaches it as two words it never saw, and nothing matches. Before the query is tokenized,
each word the vocabulary does not hold is replaced by the vocabulary word nearest to it, when one
is near enough and nearer than any other (optimal string alignment distance: insertions,
deletions, substitutions and swaps of neighbouring letters, ``rapidfuzz``):

>>> vocab = frozenset({"person", "opens", "the", "door", "turns", "off", "on", "light", "of"})
>>> correct("Person opns the dor", vocab)  # "dor": three letters, too short to guess
('Person opens the dor', [('opns', 'opens')])
>>> correct("turns of the ligth", vocab)  # "of" is a word of its own: a meaning, not a typo
('turns of the light', [('ligth', 'light')])
>>> correct("a dog", vocab)  # nothing near: left for the calibration to judge
('a dog', [])

A word the text encoder's tokenizer knows whole (``is_word``) is a real word the model may never
have seen, not a typo: "kicks" is one edit from "picks", and correcting it would find the wrong
action, where leaving it lets search say the word is unseen.

>>> correct("turns of the ligth", vocab, is_word=lambda w: w == "ligth")
('turns of the ligth', [])

Bundles that record no vocabulary (CLIP, SigLIP: open vocabularies) are not corrected.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from vidseek.vocabulary import WORD

MIN_LENGTH = 4  # shorter words, typed or proposed, are left alone: one edit turns a cat into an at


def max_edits(word: str) -> int:
    """How far a word may be from its correction: 1 edit, 2 for words of 7 letters or more."""
    return 2 if len(word) >= 7 else 1


def nearest(word: str, vocabulary: frozenset[str]) -> str | None:
    """The one vocabulary word nearest to ``word`` within ``max_edits``, or None (none near enough,
    or two or more equally near)."""
    from rapidfuzz import process
    from rapidfuzz.distance import OSA

    found = process.extract(word, vocabulary, scorer=OSA.distance, score_cutoff=max_edits(word), limit=None)
    if not found:
        return None
    best = min(distance for _, distance, _ in found)
    closest = [w for w, distance, _ in found if distance == best and len(w) >= MIN_LENGTH]
    return closest[0] if len(closest) == 1 else None


def correct(query: str, vocabulary: frozenset[str] | None,
            is_word: Callable[[str], bool] | None = None) -> tuple[str, list[tuple[str, str]]]:
    """``query`` with its misspelt words replaced (the rest of the text as typed), and the
    ``(typed, corrected)`` pairs, in query order; words ``is_word`` accepts are kept as typed."""
    if not vocabulary:
        return query, []
    corrections: list[tuple[str, str]] = []

    def fix(match: re.Match) -> str:
        typed = match.group(0)
        word = typed.lower()
        if word in vocabulary or len(word) < MIN_LENGTH or word.isdigit() or (is_word is not None and is_word(word)):
            return typed
        to = nearest(word, vocabulary)
        if to is None:
            return typed
        corrections.append((typed, to))
        return to

    return WORD.sub(fix, query), corrections
