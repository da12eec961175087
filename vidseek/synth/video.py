"""One synthetic video: its scene, timeline, timing and split, made from (seed, index) alone.

>>> v = make_video(seed=3, index=1)
>>> v.vid, v.n_frames == round(v.duration * v.fps), 3 <= len(v.timeline.actions) <= 10
('syn3_00001', True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidseek.synth.camera import Camera
from vidseek.synth.config import SynthConfig
from vidseek.synth.plan import plan_video
from vidseek.synth.splits import assign_split
from vidseek.synth.timeline import Timeline
from vidseek.synth.world import Scene, make_scene


@dataclass(frozen=True)
class Video:
    """Everything needed to render and annotate one video."""

    seed: int
    index: int
    vid: str
    split: str  # "train" | "val" | "test"
    fps: float
    width: int
    height: int
    n_frames: int
    scene: Scene
    timeline: Timeline

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps


def video_id(seed: int, index: int) -> str:
    return f"syn{seed}_{index:05d}"


def make_video(seed: int, index: int, config: SynthConfig | None = None) -> Video:
    """Sample the scene and plan the actions of video ``index`` of dataset ``seed``."""
    cfg = config or SynthConfig()
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    rng = np.random.default_rng([seed, index])
    n_frames = max(int(round(rng.uniform(cfg.min_duration, cfg.max_duration) * cfg.fps)), 1)
    duration = n_frames / cfg.fps
    scene = make_scene(rng)
    timeline = plan_video(scene, duration, rng, Camera.for_size(cfg.width, cfg.height))
    return Video(seed, index, video_id(seed, index), assign_split(seed, index, cfg.split), cfg.fps,
                 cfg.width, cfg.height, n_frames, scene, timeline)
