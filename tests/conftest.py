"""Session fixtures: what several test modules build once and share (the plain helpers are in helpers.py).

The shared folders are read-only for the tests: a test that changes a bundle or a library copies it first.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("helpers")  # its asserts (check_index ...) explain failures like a test's
import helpers  # noqa: E402


@pytest.fixture(scope="session")
def invoke():
    """The `vidseek` command line in this process: ``invoke("index", folder, ...)`` -> click's Result."""
    return helpers.invoke


@pytest.fixture(scope="session")
def write_video():
    """``write_video(path, seconds, fps=5, size=(64, 48), seed=0)``: a short seeded H.264 MP4."""
    return helpers.write_video


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> helpers.World:
    """The tiny ExCL bundle (trained one step, 1 step/s, 8-d clips) the index tests share."""
    return helpers.make_tiny_world(tmp_path_factory.mktemp("tiny-world"))


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    """A tiny random CLIP saved like a downloaded checkpoint (seed 0)."""
    from tiny_clip import tiny_clip  # imports torch: only when a test needs it

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        return tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip", seed=0)


@pytest.fixture(scope="session")
def synth_library(tmp_path_factory):
    """A synthetic world of three 8-10 s videos (`vidseek synth`, seed 0, default size and split)."""
    root = tmp_path_factory.mktemp("synth3") / "syn"
    r = helpers.invoke("synth", root, "--videos", 3, "--min-duration", 8, "--max-duration", 10, "--no-progress")
    assert r.exit_code == 0, r.output
    return root


@pytest.fixture(scope="session")
def excl_world(tmp_path_factory):
    """A tiny ExCL run trained one epoch on six synthetic 10-12 s videos (5 steps/s, 8-d clip
    embeddings) and its bundle: the folder holds syn/ (the world), run/ and bundle/."""
    root = tmp_path_factory.mktemp("excl-world")
    syn = root / "syn"
    r = helpers.invoke("synth", syn, "--videos", 6, "--min-duration", 10, "--max-duration", 12, "--no-progress",
                       "--split", "0.7,0.3,0.0")
    assert r.exit_code == 0, r.output
    small = [x for k in ("video_hidden", "query_hidden", "span_hidden", "mlp_hidden") for x in ("--set", f"{k}=8")]
    r = helpers.invoke("train", "--model", "excl-clf-2b", "--dataset", "jsonl", "--annotations", syn / "train.jsonl",
                       "--val-annotations", syn / "val.jsonl", "--videos", syn / "videos", "--words", "learned",
                       "--out", root / "run", "--epochs", 1, "--max-len", 24, "--batch-size", 8, *small,
                       "--set", "retrieval_dim=8")
    assert r.exit_code == 0, r.output
    r = helpers.invoke("export", root / "run", "--out", root / "bundle")
    assert r.exit_code == 0, r.output
    return root
