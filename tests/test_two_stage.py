"""Two-stage search (clip retrieval, then the head on a clip with one window of context on each side)
finds what the head finds on every whole video, when retrieval returns every clip and every video is
at most two windows long, so that the context of any clip is the whole video.

The references are ``vidseek.bench.stages.naive_search`` (the head on each whole video, one at a
time) and the cosine of the query with every stored clip. The library is a seeded synthetic world
indexed with the built-in bundle, whose spans depend on the query (a bundle trained for one step
picks about the same span whatever the query, which would make the comparison empty).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidseek.bench.stages import naive_search
from vidseek.index.cache import FeatureCache
from vidseek.library.searcher import Searcher, SearchTrace


@pytest.fixture(scope="module")
def library(invoke, tmp_path_factory):
    """Eight 8 s synthetic videos (seed 0, 5 frames/s: the bundle's rate) indexed with the built-in
    bundle, and the world's sentences."""
    root = tmp_path_factory.mktemp("two-stage")
    r = invoke("synth", root / "world", "--videos", 8, "--min-duration", 8, "--max-duration", 8, "--fps", 5,
               "--split", "0,0,1", "--no-progress")
    assert r.exit_code == 0, r.output
    r = invoke("index", root / "world" / "videos", "--index", root / "index", "--no-progress")  # builtin is the default
    assert r.exit_code == 0 and "indexed 8" in r.output, r.output
    lines = (root / "world" / "test.jsonl").read_text().splitlines()
    return root / "index", list(dict.fromkeys(json.loads(x)["query"] for x in lines))


def best_clip_similarity(clips: np.ndarray, query: np.ndarray) -> float:
    """The highest cosine similarity of the query with any of a video's clip embeddings (W, E)."""
    return float(np.max(clips @ query / (np.linalg.norm(clips, axis=1) * np.linalg.norm(query))))


def test_two_stage_search_finds_the_moments_of_the_head_on_every_whole_video(library):
    """For each sentence of the world: one moment per video, with the span and confidence of the
    head on that whole video and the similarity of its best clip; the top moment is the video with
    the best relevance of those two signals under the bundle's calibration (as ``Searcher`` ranks)."""
    index, queries = library
    assert len(queries) >= 20
    with Searcher(index) as searcher:
        videos = {v.path: v for v in searcher.videos.values()}
        window = round(searcher.settings.window_s * searcher.rate)
        assert len(videos) == 8 and all(v.steps <= 2 * window for v in videos.values())  # contexts: whole videos
        clips = FeatureCache(index, "clips")
        steps = [(v.id, v.steps) for v in videos.values()]
        for query in queries:
            trace = SearchTrace()
            moments = searcher.search(query, top_k=len(videos), candidates=searcher.clips.ntotal, min_score=0,
                                      trace=trace)
            naive = naive_search(searcher.grounder, searcher.states, steps, query, searcher.rate, batch=1,
                                 top_k=len(videos))
            head = {searcher.videos[vid].path: (conf, start, end) for conf, vid, start, end in naive}
            text = searcher.grounder.encode_text([query])["retrieval"][0]
            retrieval = {path: best_clip_similarity(np.asarray(clips.get(v.id), np.float32), text)
                         for path, v in videos.items()}
            assert sorted(m.video for m in moments) == sorted(videos), query  # one moment for every video
            for m in moments:
                conf, start, end = head[m.video]
                assert (m.start, m.end) == pytest.approx((start, end), abs=0.01), (query, m, head[m.video])
                assert m.span == pytest.approx(conf, abs=1e-3), (query, m, conf)
                assert m.retrieval == pytest.approx(retrieval[m.video], abs=1e-3), (query, m, retrieval[m.video])
            signals = {p: [retrieval[p], head[p][0], retrieval[p] - trace.median_similarity, trace.words_per_token,
                           trace.known_words] for p in videos}
            relevance = {p: float(searcher.calibration.relevance(np.array([s]))[0]) for p, s in signals.items()}
            assert moments[0].video == max(relevance, key=relevance.get), (query, moments[0], relevance)
        clips.close()
