"""Scene-state features: what a perfect perception front end would report about the synthetic world.

Per time step (``rate`` steps per second, 5 by default as in ExCL) a fixed-size vector of the
door's open fraction, the light level, every person's skeleton and looks, and every prop's position
and looks. No action labels are included: a model must still infer what happens from how the
geometry moves. They let the grounding models be trained and tested apart from any visual encoder
(the `precomputed features` path of the trainer) and give an upper bound for pixel-based encoders.
"""

from __future__ import annotations

import numpy as np

from vidseek.synth.state import FrameState, state_at
from vidseek.synth.video import Video

MAX_PEOPLE = 2
MAX_PROPS = 6
JOINTS = ("head", "neck", "hip")
PAIRED_JOINTS = ("shoulders", "elbows", "hands", "knees", "ankles")
PERSON_DIM = 1 + 1 + 4 + 2 * (len(JOINTS) + 2 * len(PAIRED_JOINTS)) + 3 + 1
PROP_DIM = 1 + 1 + 3 + 3 + 1
STATE_DIM = 2 + MAX_PEOPLE * PERSON_DIM + MAX_PROPS * PROP_DIM


def _person_vector(view) -> list[float]:
    pose, sk, person = view.pose, view.skeleton, view.person
    joints = [getattr(sk, j) for j in JOINTS] + [p for j in PAIRED_JOINTS for p in getattr(sk, j)]
    return ([1.0, float(pose.facing), pose.x, pose.d, pose.hip_h, pose.lean]
            + [c for xy in joints for c in xy]
            + [c / 255.0 for c in person.shirt[:3]] + [person.height])


def _prop_vector(view) -> list[float]:
    prop = view.prop
    return ([1.0, 1.0 if prop.kind == "box" else 0.0] + [c / 255.0 for c in prop.color[:3]]
            + list(view.center) + [1.0 if view.on_floor else 0.0])


def state_vector(state: FrameState) -> np.ndarray:
    """One (STATE_DIM,) vector; absent people and props are zeros in their slots (slot = id)."""
    out = np.zeros(STATE_DIM, np.float32)
    out[0], out[1] = state.door, state.light
    for view in state.people:
        if view.person.pid < MAX_PEOPLE:
            at = 2 + view.person.pid * PERSON_DIM
            out[at : at + PERSON_DIM] = _person_vector(view)
    for view in state.props:
        if view.prop.pid < MAX_PROPS:
            at = 2 + MAX_PEOPLE * PERSON_DIM + view.prop.pid * PROP_DIM
            out[at : at + PROP_DIM] = _prop_vector(view)
    return out


def state_features(video: Video, rate: float = 5.0) -> np.ndarray:
    """(T, STATE_DIM) features at the centres of ``rate``-per-second steps, T = round(duration * rate)."""
    steps = max(1, int(round(video.duration * rate)))
    times = (np.arange(steps) + 0.5) / rate
    return np.stack([state_vector(state_at(video.scene, video.timeline, float(t))) for t in times])
