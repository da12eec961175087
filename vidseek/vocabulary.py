"""The words of queries and training sentences, as a bundle's vocabulary counts them (a leaf:
standard library only). A bundle records the words of the sentences it was trained on
(``words.vocabulary`` of bundle.json); search compares a query's words with them
(``vidseek.engine.calibration``: the ``known_words`` signal; ``vidseek.engine.spelling``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

WORD = re.compile(r"[^\W_]+")  # a word: a run of letters and digits


def query_words(text: str) -> list[str]:
    """The words of a query or training sentence as the vocabulary counts them: runs of letters and
    digits, lower case.

    >>> query_words("The person's RED shirt, 2 times")
    ['the', 'person', 's', 'red', 'shirt', '2', 'times']
    """
    return WORD.findall(text.lower())


def vocabulary(sentences: Iterable[str]) -> list[str]:
    """The sorted words of training ``sentences`` (``words.vocabulary`` of a bundle)."""
    return sorted({w for s in sentences for w in query_words(s)})


def known_share(query: str, vocabulary: frozenset[str] | None) -> float:
    """The share of ``query``'s words in ``vocabulary``; 1 when there is no vocabulary (the bundle
    records none) or the query has no word.

    >>> known_share("person opens door", frozenset({"person", "opens", "door"})), known_share("a dog", frozenset({"a"}))
    (1.0, 0.5)
    """
    words = query_words(query)
    if vocabulary is None or not words:
        return 1.0
    return sum(w in vocabulary for w in words) / len(words)
