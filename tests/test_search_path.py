"""The query path's fast parts: batched span decoding and the candidate contexts the head runs on.

Torch-free; the Searcher here is built around fake videos and a fake state cache, so each case
states exactly which clips were retrieved and what the head must see.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from vidseek.engine.decode import best_index_spans, decode_best, decode_windows
from vidseek.library.searcher import Searcher
from vidseek.index.cache import CacheError
from vidseek.index.settings import IndexSettings, windows


@pytest.mark.parametrize("model", ["excl-clf-2b", "excl-reg-1a", "clip-zero-shot"])
def test_batched_decoding_equals_decoding_each_row(model):
    rng = np.random.default_rng(3)
    b, t = 64, 45
    lengths = rng.integers(1, t + 1, b)
    lengths[:3] = [1, 2, t]
    out = {"start_logits": rng.normal(0, 3, (b, t)).astype(np.float32),
           "end_logits": rng.normal(0, 3, (b, t)).astype(np.float32),
           "similarity": rng.uniform(-1, 1, (b, t)).astype(np.float32)}
    durations = lengths / 5.0
    fast = decode_best(model, out, durations, lengths)
    slow = [tuple(decode_windows(model, {k: v[i] for k, v in out.items()}, float(durations[i]), int(lengths[i]), 1)[0])
            for i in range(b)]
    assert fast == slow


def test_best_spans_ignore_padding_and_reject_bad_lengths():
    start = np.array([[0.0, 0.0, 50.0], [0.0, 1.0, 0.0]])
    end = np.array([[0.0, 5.0, 0.0], [0.0, 0.0, 1.0]])
    spans, p = best_index_spans(start, end, np.array([2, 3]))
    assert spans.tolist() == [[0, 1], [1, 2]]  # row 0's huge start logit lies in its padding
    assert np.all((p > 0) & (p <= 1))
    flat, _ = best_index_spans(np.zeros((1, 4)), np.array([[0.0, 0.0, 3.0, 0.0]]), np.array([4]))
    assert flat.tolist() == [[0, 2]]  # exactly tied spans: the earliest
    with pytest.raises(ValueError, match="every length"):
        best_index_spans(start, end, np.array([0, 3]))
    with pytest.raises(ValueError, match="every length"):
        best_index_spans(start, end, np.array([2, 4]))
    with pytest.raises(ValueError, match="expected"):
        best_index_spans(start, end[:, :2], np.array([2, 2]))


class FakeStates:
    kind = "states"

    def __init__(self, broken=()):
        self.read, self.broken = [], set(broken)

    def get(self, vid, shape):
        self.read.append(vid)
        if vid in self.broken:
            raise CacheError(f"video {vid}: states file missing")
        return np.zeros((shape[0], shape[1] or 8), np.float16)


def searcher(steps: dict[int, int], broken=()) -> Searcher:
    """A Searcher over videos {id: feature steps} at 5 steps/s, 4 s windows every 2 s (20-step
    clips, 10 apart), without an index on disk."""
    s = Searcher.__new__(Searcher)
    s.videos = {v: SimpleNamespace(id=v, steps=n, path=f"v{v}.mp4") for v, n in steps.items()}
    s.settings, s.rate = IndexSettings(rate=5.0, window_s=4.0, stride_s=2.0, state_dim=8), 5.0
    s.states = FakeStates(broken)
    return s


def test_a_clip_inside_a_better_candidates_context_is_not_run_again():
    s = searcher({1: 300, 2: 300})
    assert windows(300, 5.0, 4.0, 2.0)[10] == (100, 120)
    cand = [(0.9, 1, 10), (0.8, 1, 11), (0.7, 1, 9), (0.6, 2, 10), (0.5, 1, 12), (0.4, 1, 14), (0.3, 1, 8)]
    kept, contexts, features, failed = s._contexts(cand)
    # clip 10's context is steps 80-140: clips 11 (110-130), 9 (90-110), 12 (120-140) and 8 (80-100)
    # lie inside it, clip 14 (140-160) does not; clip 10 of video 2 is another video's
    assert kept == [(0.9, 1, 10), (0.6, 2, 10), (0.4, 1, 14)]
    assert contexts[1, 10] == (80, 140) and contexts[1, 14] == (120, 180) and contexts[2, 10] == (80, 140)
    assert set(features) == {1, 2} and s.states.read == [1, 2] and not failed


def test_contexts_stop_at_the_video_ends():
    s = searcher({1: 25})  # windows (0, 20) and (10, 25)
    kept, contexts, _, _ = s._contexts([(0.9, 1, 1), (0.8, 1, 0)])
    assert kept == [(0.9, 1, 1)] and contexts[1, 1] == (0, 25)


def test_unreadable_states_and_unknown_windows_fail_their_video_only():
    s = searcher({1: 100, 2: 100, 3: 100}, broken={2})
    kept, _, _, failed = s._contexts([(0.9, 1, 0), (0.8, 2, 0), (0.7, 3, 99), (0.6, 3, 0), (0.5, 1, 5)])
    assert kept == [(0.9, 1, 0), (0.5, 1, 5)]
    assert "states file missing" in failed[2] and "window 99" in failed[3]
