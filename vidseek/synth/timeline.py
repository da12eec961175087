"""What happens when: actions (the ground truth), people's motions, and the door, light and prop tracks.

A ``Timeline`` is plain data, produced by ``plan.plan_video`` and read by ``state.state_at``.

>>> tr = Track(0.0, [Ramp(1.0, 3.0, 0.0, 1.0)])
>>> tr.value(0.5), tr.value(2.0), tr.value(4.0)
(0.0, 0.5, 1.0)
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

XY = tuple[float, float]
Vec3 = tuple[float, float, float]


def smooth(u: float) -> float:
    """Smoothstep of u clipped to [0, 1]: eases in and out."""
    u = min(max(u, 0.0), 1.0)
    return u * u * (3.0 - 2.0 * u)


def ramp(u: float, a: float, b: float) -> float:
    """0 before a, 1 after b, smooth in between."""
    return smooth((u - a) / (b - a)) if b > a else float(u >= b)


@dataclass(frozen=True)
class Action:
    """One annotated moment: who did what to which object, from ``start`` to ``end`` seconds."""

    actor: int  # person id
    verb: str  # key of VERBS, e.g. "open_door"
    obj: str | None  # object kind: "room", "door", "light", "box", "ball", "chair" or None
    prop: int | None  # prop id when obj is a box or ball
    start: float
    end: float


@dataclass(frozen=True)
class Motion:
    """A stretch of one person's time with one kind of movement (see ``poses.POSES``)."""

    t0: float
    t1: float
    kind: str  # "absent", "idle", "seated", "walk" or an action verb
    a: XY  # floor position (x, d) at t0
    b: XY  # floor position (x, d) at t1
    facing: int  # +1 right, -1 left, 0 towards the camera
    carry: int | None = None  # prop id held in the hands during this motion
    info: dict = field(default_factory=dict)  # per-kind parameters

    def u(self, t: float) -> float:
        """Progress through the motion, 0..1."""
        return min(max((t - self.t0) / max(self.t1 - self.t0, 1e-6), 0.0), 1.0)


@dataclass(frozen=True)
class Ramp:
    """A smooth change of a scalar from v0 at t0 to v1 at t1."""

    t0: float
    t1: float
    v0: float
    v1: float


@dataclass
class Track:
    """A scalar over time (door open fraction, light level): an initial value and sorted ramps."""

    initial: float
    ramps: list[Ramp] = field(default_factory=list)

    def value(self, t: float) -> float:
        v = self.initial
        for r in self.ramps:
            if t >= r.t1:
                v = r.v1
            elif t > r.t0:
                return r.v0 + (r.v1 - r.v0) * smooth((t - r.t0) / (r.t1 - r.t0))
            else:
                break
        return v


@dataclass(frozen=True)
class Flight:
    """A ballistic arc from p0 to p1 (x, d, h) between t0 and t1, rising ``peak`` metres above the chord."""

    t0: float
    t1: float
    p0: Vec3
    p1: Vec3
    peak: float

    def at(self, t: float) -> Vec3:
        u = min(max((t - self.t0) / (self.t1 - self.t0), 0.0), 1.0)
        x, d, h = (a + (b - a) * u for a, b in zip(self.p0, self.p1))
        return x, d, h + 4.0 * self.peak * u * (1.0 - u)


@dataclass(frozen=True)
class PropEvent:
    """From time ``t`` on, a prop lies on the floor at ``pos``, is held by ``holder``, or flies."""

    t: float
    state: str  # "floor" | "held" | "flight"
    pos: XY | None = None  # floor position (x, d)
    holder: int | None = None  # person id
    flight: Flight | None = None


@dataclass
class Timeline:
    """Everything that changes in one video."""

    duration: float
    actions: list[Action]  # the ground truth, sorted by start
    motions: list[list[Motion]]  # per person, contiguous and covering [0, duration]
    door: Track  # open fraction 0..1
    light: Track  # room light level 0 (off) .. 1 (on)
    props: list[list[PropEvent]]  # per prop, sorted by time, first at t = 0

    def motion_at(self, pid: int, t: float) -> Motion:
        ms = self.motions[pid]
        i = bisect.bisect_right([m.t0 for m in ms], t) - 1
        return ms[min(max(i, 0), len(ms) - 1)]

    def prop_at(self, pid: int, t: float) -> PropEvent:
        evs = self.props[pid]
        i = bisect.bisect_right([e.t for e in evs], t) - 1
        return evs[max(i, 0)]
