"""The world at one instant: door, light, people's skeletons and where every prop is.

``state_at`` is a pure function of (scene, timeline, t); the renderer draws a ``FrameState`` and
the tests read it to check that annotations match what is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

from vidseek.synth.figure import Pose, Skeleton, skeleton
from vidseek.synth.poses import PoseContext, pose_at
from vidseek.synth.timeline import Timeline
from vidseek.synth.world import Person, Prop, Scene

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class PersonView:
    person: Person
    pose: Pose
    skeleton: Skeleton
    kind: str  # motion kind, e.g. "walk" or "open_door"


@dataclass(frozen=True)
class PropView:
    prop: Prop
    center: Vec3  # (x, d, h) of the prop's centre, projected at depth d
    sort_d: float  # depth used for drawing order (held props sit in front of the holder)
    on_floor: bool  # draws a contact shadow


@dataclass(frozen=True)
class FrameState:
    t: float
    door: float  # open fraction, 0 closed .. 1 fully open
    light: float  # room light, 0 off .. 1 on
    people: tuple[PersonView, ...]  # only those in the room
    props: tuple[PropView, ...]


def state_at(scene: Scene, timeline: Timeline, t: float) -> FrameState:
    """Evaluate every track and motion at time t (seconds)."""
    ctx = PoseContext(scene, timeline)
    people = {}
    for person in scene.people:
        m = timeline.motion_at(person.pid, t)
        pose = pose_at(m, t, person, ctx)
        if pose is not None:
            people[person.pid] = PersonView(person, pose, skeleton(pose, person.height), m.kind)
    props = tuple(_prop_view(scene, timeline, prop, t, people) for prop in scene.props)
    return FrameState(t, timeline.door.value(t), timeline.light.value(t), tuple(people.values()),
                      tuple(p for p in props if p is not None))


def _prop_view(scene: Scene, timeline: Timeline, prop: Prop, t: float, people: dict) -> PropView | None:
    ev = timeline.prop_at(prop.pid, t)
    r = prop.size / 2
    if ev.state == "floor":
        return PropView(prop, (ev.pos[0], ev.pos[1], r), ev.pos[1], True)
    if ev.state == "flight":
        c = ev.flight.at(t)
        return PropView(prop, c, c[1], False)
    view = people.get(ev.holder)
    if view is None:  # the holder left the room with it
        return None
    x, h = view.pose.hold if view.pose.hold is not None else view.skeleton.hands[0]
    return PropView(prop, (x, view.pose.d, h), view.pose.d - 0.06, False)
