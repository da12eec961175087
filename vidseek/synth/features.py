"""Scene-state features: what a perfect perception front end would report about the synthetic world.

Per time step (``rate`` steps per second, 5 by default as in ExCL) a fixed-size vector of the
door's open fraction, the light level, every person's skeleton and looks, and every prop's position
and looks. No action labels are included: a model must still infer what happens from how the
geometry moves. They let the grounding models be trained and tested apart from any visual encoder
(the `precomputed features` path of the trainer) and give an upper bound for pixel-based encoders.
"""

from __future__ import annotations

import numpy as np

from vidseek.synth.palette import BALL_COLORS, BOX_COLORS, SHIRT_COLORS
from vidseek.synth.state import FrameState, state_at
from vidseek.synth.verbs import VERBS
from vidseek.synth.video import Video

MAX_PEOPLE = 2
MAX_PROPS = 6
JOINTS = ("head", "neck", "hip")
PAIRED_JOINTS = ("shoulders", "elbows", "hands", "knees", "ankles")
PERSON_DIM = 1 + 1 + 4 + 2 * (len(JOINTS) + 2 * len(PAIRED_JOINTS)) + 3 + 1
PROP_DIM = 1 + 1 + 3 + 3 + 1
STATE_DIM = 2 + MAX_PEOPLE * PERSON_DIM + MAX_PROPS * PROP_DIM
PERSON_SIZES = ("short", "tall")


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


def frame_labels(video: dict, states: np.ndarray, rate: float = 5.0) -> np.ndarray:
    """(T, LABEL_DIM) per-step labels of a manifest video, for teaching a frame encoder what matters.

    Unlike the slot-ordered state vectors (which person is slot 0 cannot be seen in a frame), every
    label is visible in a single frame and independent of ids: which actions are under way, the door
    and the light (from the state vectors ``states``), and which shirt colours and which prop
    (kind, colour) pairs are in the scene at that step.

    >>> video = {"people": [{"id": 0, "shirt": "red", "size": "short"}], "props": [],
    ...          "actions": [{"verb": "wave", "start": 0.5, "end": 0.8}]}
    >>> labels = frame_labels(video, np.zeros((5, STATE_DIM), np.float32), rate=5.0)
    >>> labels.shape, labels[:, LABEL_NAMES.index("verb:wave")].tolist()
    ((5, 36), [0.0, 0.0, 1.0, 1.0, 0.0])
    """
    steps = len(states)
    times = (np.arange(steps) + 0.5) / rate
    out = np.zeros((steps, LABEL_DIM), np.float32)
    column = {name: i for i, name in enumerate(LABEL_NAMES)}
    for action in video["actions"]:
        out[:, column[f"verb:{action['verb']}"]] += (times >= action["start"]) & (times < action["end"])
    out[:, column["door"]], out[:, column["light"]] = states[:, 0], states[:, 1]
    for person in video["people"]:
        if person["id"] < MAX_PEOPLE:
            present = states[:, 2 + person["id"] * PERSON_DIM]
            out[:, column[f"shirt:{person['shirt']}"]] = np.maximum(out[:, column[f"shirt:{person['shirt']}"]], present)
            out[:, column[f"size:{person['size']}"]] = np.maximum(out[:, column[f"size:{person['size']}"]], present)
    for prop in video["props"]:
        if prop["id"] < MAX_PROPS:
            present = states[:, 2 + MAX_PEOPLE * PERSON_DIM + prop["id"] * PROP_DIM]
            name = f"{prop['kind']}:{prop['color']}"
            out[:, column[name]] = np.maximum(out[:, column[name]], present)
    return np.minimum(out, 1.0)


LABEL_NAMES = (
    [f"verb:{v}" for v in sorted(VERBS)] + ["door", "light"]
    + [f"shirt:{c}" for c in SHIRT_COLORS] + [f"size:{s}" for s in PERSON_SIZES]
    + [f"box:{c}" for c in BOX_COLORS] + [f"ball:{c}" for c in BALL_COLORS]
)
LABEL_DIM = len(LABEL_NAMES)
