"""Scene-state features of the synthetic world (`vidseek synth --state-features`)."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from vidseek.cli.synth_cmd import synth_cmd
from vidseek.synth import make_video
from vidseek.synth.config import SynthConfig
from vidseek.synth.features import STATE_DIM, state_features


def first_video_with(verb: str):
    for i in range(200):
        v = make_video(seed=0, index=i)
        for a in v.timeline.actions:
            if a.verb == verb:
                return v, a
    raise AssertionError(f"no {verb} in 200 videos")


def test_shape_rate_and_door_channel_follow_the_action():
    video, action = first_video_with("open_door")
    f = state_features(video, rate=5.0)
    assert f.shape == (round(video.duration * 5), STATE_DIM) and f.dtype == np.float32
    t = (np.arange(len(f)) + 0.5) / 5
    before = f[t < action.start, 0]
    after = f[t > action.end, 0]
    inside = f[(t > action.start) & (t < action.end), 0]
    assert before.size == 0 or before[-1] < 0.05  # the door is shut just before it is opened
    assert inside.size and np.all(np.diff(inside) >= -1e-6)  # and opens monotonically
    assert after.size == 0 or after[0] > 0.95


def test_light_channel_follows_the_switch():
    video, action = first_video_with("turn_off_light")
    f = state_features(video)
    t = (np.arange(len(f)) + 0.5) / 5
    assert f[t < action.start, 1][-1] > 0.95 and f[t > action.end, 1][0] < 0.05


def test_cli_writes_one_array_per_video(tmp_path):
    out = tmp_path / "syn"
    r = CliRunner().invoke(synth_cmd, [str(out), "--videos", "2", "--min-duration", "10", "--max-duration", "11",
                                       "--no-progress", "--state-features", "2.5"])
    assert r.exit_code == 0, r.output
    for i in range(2):
        v = make_video(0, i, SynthConfig(min_duration=10, max_duration=11))
        arr = np.load(out / "state_features" / f"{v.vid}.npy")
        np.testing.assert_array_equal(arr, state_features(v, 2.5))
