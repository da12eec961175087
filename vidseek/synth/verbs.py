"""The one table of actions: planner timing and weights, object kinds, and the verb's display name.

Sentences for each verb live in ``language.py`` and are keyed by the same names.

>>> len(VERBS) >= 12 and all(1.0 <= v.seconds[0] <= v.seconds[1] <= 12.0 for v in VERBS.values())
True
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VerbSpec:
    """One action the world can show."""

    key: str  # identifier used in manifests and templates
    label: str  # short human label (contact sheet, docs)
    objects: tuple[str, ...]  # object kinds it acts on ("room", "door", "light", "box", "ball", "chair") or ()
    seconds: tuple[float, float]  # range of the animation's duration at normal speed
    weight: float  # how often the planner picks it when it is possible


VERBS: dict[str, VerbSpec] = {v.key: v for v in (
    VerbSpec("walk_in", "walks in", ("room",), (1.0, 12.0), 1.0),
    VerbSpec("walk_out", "walks out", ("room",), (1.0, 12.0), 0.6),
    VerbSpec("open_door", "opens door", ("door",), (1.6, 3.5), 3.0),
    VerbSpec("close_door", "closes door", ("door",), (1.4, 3.0), 2.0),
    VerbSpec("turn_on_light", "light on", ("light",), (1.0, 2.2), 2.0),
    VerbSpec("turn_off_light", "light off", ("light",), (1.0, 2.2), 1.5),
    VerbSpec("pick_up", "picks up", ("box", "ball"), (1.3, 2.8), 1.6),
    VerbSpec("put_down", "puts down", ("box", "ball"), (1.2, 2.5), 1.0),
    VerbSpec("sit_down", "sits down", ("chair",), (1.2, 2.8), 1.3),
    VerbSpec("stand_up", "stands up", ("chair",), (1.0, 2.2), 1.0),
    VerbSpec("throw", "throws", ("ball",), (1.0, 1.8), 3.0),
    VerbSpec("wave", "waves", (), (1.0, 5.0), 1.0),
)}
