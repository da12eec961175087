"""Bad queries (issue 7): empty, blank, huge, control characters, mixed scripts, emoji, lone
surrogates. Every one gives a clear ``QueryError`` or a valid result, never a crash.

A property-based test (hypothesis, 1,000 generated queries plus the explicit examples) runs them
through one ``Searcher``; a few go through `vidseek search` too.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers import check_index, run_index
from vidseek.engine.grounder import QueryError

LONG = 100_000
EXAMPLES = [
    "", " ", "\t\n\r \x0b\x0c", "\x00", "\x00person walks in\x00", "\x1b[31mperson\x1b[0m", "\u200b\u200d\ufeff",
    "person " * (LONG // 7), "x" * LONG, "👩‍👩‍👧‍👦🎬🚪", "person 🚪 opens", "человек открывает дверь",
    "人が ドアを 開ける", "الشخص يفتح الباب", "person открывает 門 door", "\u202eroop eht snepo nosrep",
    "p\u0301erson", "PERSON WALKS IN", "person\nwalks\nin", "🀄" * 5000,
]
# A query from a command line that is not valid UTF-8 reaches Python as lone surrogates.
SURROGATES = ["\udce9 person", "\ud800", "person walks in\udcff"]
REASONS = ("is empty", "known to this model's vocabulary", "is not valid text")  # what a QueryError says


@pytest.fixture(scope="module")
def searcher(tiny_world, write_video, tmp_path_factory):
    """One Searcher over a small index, built once for all the queries."""
    from vidseek.library.searcher import Searcher

    folder = tmp_path_factory.mktemp("queries")
    library, index = folder / "lib", folder / "idx"
    for k in range(3):
        write_video(library / f"v{k}.mp4", seconds=6 + 4 * k, seed=k)
    code, out = run_index(library, index, tiny_world.bundle)
    assert code == 0, out
    check_index(index)
    with Searcher(index) as s:
        yield s, tiny_world.vocab


def known_words(vocab):
    return st.lists(st.sampled_from(vocab), min_size=1, max_size=6).map(" ".join)


def queries(vocab):
    """Arbitrary unicode (every category but surrogates, see SURROGATES), control characters, the
    model's own words mixed with all of those, and long ones (up to 100k characters)."""
    anything = st.text(max_size=200)
    controls = st.text(st.characters(min_codepoint=0, max_codepoint=0x1F), max_size=20)
    pieces = st.one_of(anything, controls, known_words(vocab), st.sampled_from(["🎬", "門", "дверь"]))
    mixed = st.lists(pieces, min_size=1, max_size=8).map(" ".join)
    long = st.tuples(st.one_of(known_words(vocab), anything), st.integers(1, LONG)).map(
        lambda t: (t[0] * (t[1] // max(1, len(t[0])) + 1))[: t[1]])
    return st.one_of(anything, mixed, mixed, long)


def check_result(searcher, query: str) -> str:
    """Search ``query``: a QueryError with a clear message, or well-formed moments. Returns which."""
    try:
        moments = searcher.search(query, top_k=5)
    except QueryError as exc:
        message = str(exc)
        assert message and any(why in message for why in REASONS), message
        assert len(message) < 1200, message[:200]  # at most 80 characters of the query are quoted
        return "refused"
    ok = {v.path: v for v in searcher.videos.values()}
    assert [m.rank for m in moments] == list(range(1, len(moments) + 1))
    for m in moments:
        assert m.video in ok and math.isfinite(m.score) and math.isfinite(m.retrieval) and math.isfinite(m.span)
        assert 0 <= m.start <= m.end <= ok[m.video].duration + 1e-6
    assert [m.score for m in moments] == sorted((m.score for m in moments), reverse=True)
    return "answered"


@pytest.mark.slow
def test_any_query_gives_a_clear_error_or_valid_moments(searcher):
    s, vocab = searcher
    seen = {"refused": 0, "answered": 0}

    @settings(max_examples=1000, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(query=queries(vocab))
    def run(query):
        seen[check_result(s, query)] += 1

    for text in EXAMPLES:
        run = example(query=text)(run)
    run()
    assert seen["refused"] >= 50 and seen["answered"] >= 50, seen  # both outcomes were exercised
    print(f"\nqueries: {seen['refused']} refused with a QueryError, {seen['answered']} answered")


@pytest.mark.parametrize("query", ["", "   ", "\x00\x01", "🎬🚪", "x" * LONG, "\udcff person", "person walks in"])
def test_bad_queries_on_the_command_line(searcher, query, invoke):
    """`vidseek search` answers a bad query with a usage error (exit 2) naming the problem, no traceback."""
    s, _ = searcher
    r = invoke("search", query, "--index", s.catalog.index_dir, "--top-k", 3)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    if query == "person walks in":
        assert r.exit_code == 0 and "rank" in r.output, r.output[-500:]
    else:
        assert r.exit_code == 2 and "Invalid value for QUERY" in r.output, r.output[-500:]
        assert any(why in r.output for why in REASONS) and len(r.output) < 2000, r.output[-500:]


def test_the_error_for_a_huge_query_is_short(searcher):
    """The message quotes the start of the query and gives its length, not the whole query."""
    s, _ = searcher
    with pytest.raises(QueryError) as err:
        s.search("x" * LONG)
    message = str(err.value)
    assert len(message) < 1000 and "'" + "x" * 80 + "'... (100,000 characters)" in message, message


@pytest.mark.parametrize("query", SURROGATES)
def test_a_query_that_is_not_valid_text_is_refused_clearly(searcher, query):
    s, _ = searcher
    assert check_result(s, query) == "refused"
    with pytest.raises(QueryError, match="is not valid text: character .* is a lone surrogate"):
        s.search(query)
