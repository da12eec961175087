"""The planner: who does what and when, with a consistent world (a door can only be opened when
closed, a box only put down by whoever holds it, the chair seats one person).

Actors are scheduled in order of when they are next free; every action first walks the actor to
where it happens (unannotated), then plays the action's animation (the annotated window). Shared
things (door, light, chair, each prop) are locked from the decision until the action ends, so their
state is always the one the last action left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from vidseek.synth.camera import ROOM, Camera
from vidseek.synth.figure import skeleton
from vidseek.synth.poses import POSES, chair_spots, door_spot
from vidseek.synth.timeline import Action, Flight, Motion, PropEvent, Ramp, Timeline, Track
from vidseek.synth.verbs import VERBS
from vidseek.synth.world import Person, Scene

XY = tuple[float, float]
MIN_ACTIONS, MAX_ACTIONS = 3, 10
END_MARGIN = 0.4  # every action ends at least this long before the video does
INF = float("inf")
KEEP = object()  # "unchanged" for Step fields


@dataclass
class Actor:
    """The planner's running state of one person."""

    person: Person
    loc: str  # "out" | "stand" | "seated"
    x: float
    d: float
    facing: int
    holding: int | None = None  # prop id
    free_at: float = 0.0
    motions: list[Motion] = field(default_factory=list)
    active: bool = True

    @property
    def pos(self) -> XY:
        return self.x, self.d


@dataclass
class Step:
    """One planned action with its approach: what it adds to the timeline and leaves behind."""

    motions: list[Motion]
    action: Action
    end_loc: str
    end_pos: XY
    end_facing: int
    holding: int | None
    locks: dict[str, float] = field(default_factory=dict)
    door: Ramp | None = None
    light: Ramp | None = None
    props: list[tuple[int, PropEvent]] = field(default_factory=list)


def plan_video(scene: Scene, duration: float, rng: np.random.Generator, cam: Camera) -> Timeline:
    """A timeline with 3..10 actions for ``scene``; retries with fresh draws until one fits."""
    for _ in range(60):
        n_max = int(np.clip(duration / 3.2, MIN_ACTIONS, MAX_ACTIONS))
        timeline = Planner(scene, duration, rng, cam).run(int(rng.integers(MIN_ACTIONS, n_max + 1)))
        if timeline is not None:
            return timeline
    raise RuntimeError(f"could not fit {MIN_ACTIONS} actions into a {duration:.1f} s video")


class Planner:
    """Schedules actions for the people of one scene; ``run`` returns a Timeline or None."""

    def __init__(self, scene: Scene, duration: float, rng: np.random.Generator, cam: Camera):
        self.scene, self.duration, self.rng, self.cam = scene, duration, rng, cam
        self.busy: dict[str, float] = {}
        self.door_open, self.light_on = scene.door_open, scene.light_on
        self.prop_pos: dict[int, XY | None] = {p.pid: (p.x, p.d) for p in scene.props}
        self.door_ramps: list[Ramp] = []
        self.light_ramps: list[Ramp] = []
        self.prop_events = {p.pid: [PropEvent(0.0, "floor", pos=(p.x, p.d))] for p in scene.props}
        self.actions: list[Action] = []
        self.counts: dict[str, int] = {}
        self.actors = [self._initial_actor(p) for p in scene.people]

    # -- the loop -----------------------------------------------------------------------------------

    def run(self, n_target: int) -> Timeline | None:
        n_people = len(self.actors)
        per_person = n_target / n_people
        mean_gap = max(0.3, (self.duration - per_person * 4.5) / (per_person + 1))
        while len(self.actions) < n_target:
            live = [a for a in self.actors if a.active]
            if not live:
                break
            actor = min(live, key=lambda a: (a.free_at, a.person.pid))
            gap = mean_gap * float(self.rng.uniform(0.1, 1.9)) * (0.4 if actor.free_at == 0 else 1.0)
            t = actor.free_at + gap
            if t > self.duration - 1.0 - END_MARGIN or not self._schedule(actor, t):
                actor.active = False
        if len(self.actions) < MIN_ACTIONS:
            return None
        for a in self.actors:
            self._idle(a, a.free_at, self.duration, wander=True)
        return Timeline(
            duration=self.duration,
            actions=sorted(self.actions, key=lambda x: (x.start, x.actor)),
            motions=[a.motions for a in self.actors],
            door=Track(1.0 if self.scene.door_open else 0.0, self.door_ramps),
            light=Track(1.0 if self.scene.light_on else 0.0, self.light_ramps),
            props=[self.prop_events[p.pid] for p in self.scene.props])

    def _schedule(self, actor: Actor, t: float) -> bool:
        """Idle until t, then try the possible verbs in weighted random order; commit the first that fits."""
        self._idle(actor, actor.free_at, t, wander=True)
        actor.free_at = t
        options = self._options(actor, t)
        while options:
            weights = np.array([VERBS[v].weight / (1 + self.counts.get(v, 0)) / n for v, _, n in options])
            i = int(self.rng.choice(len(options), p=weights / weights.sum()))
            verb, prop, _ = options.pop(i)
            step = getattr(self, "_" + verb)(actor, t, prop)  # one builder method per verb, named after it
            if step is not None and step.action.end <= self.duration - END_MARGIN:
                self._commit(actor, t, step)
                return True
        return False

    def _options(self, a: Actor, t: float) -> list[tuple[str, int | None, int]]:
        """(verb, prop, how many options share the verb) for what ``a`` can start at time t."""
        if a.loc == "out":
            return [("walk_in", None, 1)]
        if a.loc == "seated":
            return [("stand_up", None, 1), ("wave", None, 1)]
        if a.holding is not None:
            held = self.scene.props[a.holding]
            return [("put_down", held.pid, 1)] + ([("throw", held.pid, 1)] if held.kind == "ball" else [])
        free = lambda key: self.busy.get(key, 0.0) <= t  # noqa: E731
        out = [("walk_out", None, 1), ("wave", None, 1)]
        if free("door"):
            out.append(("close_door" if self.door_open else "open_door", None, 1))
        if free("light"):
            out.append(("turn_off_light" if self.light_on else "turn_on_light", None, 1))
        if free("chair"):
            out.append(("sit_down", None, 1))
        props = [p.pid for p in self.scene.props if free(f"prop{p.pid}") and self.prop_pos[p.pid] is not None]
        out += [("pick_up", pid, len(props)) for pid in props]
        return out

    def _commit(self, a: Actor, t: float, step: Step) -> None:
        a.motions.extend(step.motions)
        a.loc, (a.x, a.d), a.facing, a.holding = step.end_loc, step.end_pos, step.end_facing, step.holding
        self._idle(a, step.motions[-1].t1, step.action.end, wander=False)
        a.free_at = max(step.motions[-1].t1, step.action.end)
        self.actions.append(step.action)
        self.counts[step.action.verb] = self.counts.get(step.action.verb, 0) + 1
        self.busy.update(step.locks)
        if step.door:
            self.door_ramps.append(step.door)
            self.door_open = step.door.v1 > 0.5
        if step.light:
            self.light_ramps.append(step.light)
            self.light_on = step.light.v1 > 0.5
        for pid, ev in step.props:
            self.prop_events[pid].append(ev)
            self.prop_pos[pid] = ev.pos if ev.state == "floor" else None

    # -- idling and walking -------------------------------------------------------------------------

    def _initial_actor(self, p: Person) -> Actor:
        r = self.rng.random()
        if r < 0.35:
            return Actor(p, "out", 0.0, 4.6, 1)
        if r < 0.5 and "chair" not in self.busy:
            self.busy["chair"] = INF
            x, d = chair_spots(self.scene.chair)[1]
            return Actor(p, "seated", x, d, self.scene.chair.facing)
        x, d = self._random_spot()
        return Actor(p, "stand", x, d, int(self.rng.choice([-1, 0, 1])))

    def _random_spot(self, margin: float = 0.45) -> XY:
        d = float(self.rng.uniform(4.15, 5.5))
        lim = min(ROOM.half_width - 0.4, self.cam.visible_x(d, margin))
        return float(self.rng.uniform(-lim, lim)), d

    def _idle_kind(self, a: Actor) -> str:
        return {"out": "absent", "stand": "idle", "seated": "seated"}[a.loc]

    def _idle(self, a: Actor, t0: float, t1: float, wander: bool) -> None:
        """Fill [t0, t1) with standing / sitting / absence, sometimes an unannotated stroll or turn."""
        if t1 - t0 < 1e-6:
            return
        if wander and a.loc == "stand" and t1 - t0 > 3.0 and self.rng.random() < 0.5:
            spot = self._random_spot()
            walk, t_arrive = self._walk(a, t0 + float(self.rng.uniform(0.3, 1.0)), spot, "walk")
            if walk and t_arrive < t1 - 0.5:
                a.motions.append(Motion(t0, walk[0].t0, "idle", a.pos, a.pos, a.facing, a.holding))
                a.motions.extend(walk)
                a.x, a.d = spot
                a.facing = walk[0].facing if a.holding is not None or self.rng.random() < 0.6 else 0
                t0 = t_arrive
        a.motions.append(Motion(t0, t1, self._idle_kind(a), a.pos, a.pos, a.facing, a.holding))

    def _walk(self, a: Actor, t: float, to: XY, kind: str, speed: float | None = None):
        """([walk motion], arrival time) from the actor's position to ``to``; no motion if already there."""
        dist = math.hypot(to[0] - a.x, to[1] - a.d)
        if dist < 0.05:
            return [], t
        speed = speed or a.person.speed * float(self.rng.uniform(0.85, 1.15))
        dx = to[0] - a.x
        facing = (1 if dx > 0 else -1) if abs(dx) > 0.05 else (a.facing or 1)
        dur = max(dist / speed, 0.4)
        return [Motion(t, t + dur, kind, a.pos, to, facing, a.holding)], t + dur

    def _approach(self, a: Actor, t: float, to: XY) -> tuple[list[Motion], float]:
        return self._walk(a, t, to, "walk")

    def _dur(self, verb: str, a: Actor) -> float:
        lo, hi = VERBS[verb].seconds
        return float(np.clip(self.rng.uniform(lo, hi) * 1.05 / a.person.speed, 1.0, 12.0))

    def _offscreen(self, side: int) -> XY:
        d = float(self.rng.uniform(4.1, 5.0))
        return side * (self.cam.visible_x(d) + 0.35), d  # just out of view: the figure is ~0.3 m wide

    def _step(self, a: Actor, motions: list[Motion], verb: str, obj: str | None, start: float, end: float,
              end_loc: str, end_pos: XY, end_facing: int, prop: int | None = None, holding=KEEP, **kw) -> Step:
        """A Step whose annotated window is [start, end]; ``holding`` defaults to what ``a`` holds now."""
        action = Action(a.person.pid, verb, obj, prop, round(start, 3), round(end, 3))
        holding = a.holding if holding is KEEP else holding
        return Step(motions, action, end_loc, end_pos, end_facing, holding, **kw)

    # -- one builder per verb: Step or None when it cannot happen -----------------------------------

    def _walk_in(self, a: Actor, t: float, prop) -> Step | None:
        side = int(self.rng.choice([-1, 1]))
        start = self._offscreen(side)
        a.x, a.d = start  # the actor waits out of view at the side it will come from
        spot = self._random_spot()
        dist = math.hypot(spot[0] - start[0], spot[1] - start[1])
        speed = float(np.clip(a.person.speed * self.rng.uniform(0.85, 1.15), dist / 12.0, dist / 1.0))
        walk, t_end = self._walk(a, t, spot, "walk_in", speed)
        return self._step(a, walk, "walk_in", "room", t, t_end, "stand", spot, walk[0].facing)

    def _walk_out(self, a: Actor, t: float, prop) -> Step | None:
        side = (1 if a.x > 0 else -1) if self.rng.random() < 0.7 else int(self.rng.choice([-1, 1]))
        exit_at = self._offscreen(side)
        dist = math.hypot(exit_at[0] - a.x, exit_at[1] - a.d)
        speed = float(np.clip(a.person.speed * self.rng.uniform(0.85, 1.15), dist / 12.0, dist / 1.0))
        walk, t_end = self._walk(a, t, exit_at, "walk_out", speed)
        return self._step(a, walk, "walk_out", "room", t, t_end, "out", exit_at, walk[0].facing)

    def _door(self, a: Actor, t: float, verb: str) -> Step:
        door = self.scene.door
        f0, f1 = (0.0, 1.0) if verb == "open_door" else (1.0, 0.0)
        walk, ta = self._approach(a, t, door_spot(door, f0))
        dur = self._dur(verb, a)
        act = Motion(ta, ta + dur, verb, door_spot(door, f0), door_spot(door, f1), -door.side)
        ramp = Ramp(ta + 0.2 * dur, ta + 0.85 * dur, f0, f1)
        return self._step(a, walk + [act], verb, "door", ta, ta + dur, "stand", door_spot(door, f1),
                          -door.side, locks={"door": ta + dur}, door=ramp)

    def _open_door(self, a: Actor, t: float, prop) -> Step:
        return self._door(a, t, "open_door")

    def _close_door(self, a: Actor, t: float, prop) -> Step:
        return self._door(a, t, "close_door")

    def _light(self, a: Actor, t: float, verb: str) -> Step:
        sw, side, d = self.scene.switch, self.scene.door.side, 5.72
        x = sw.x + side * 0.38
        if abs(x) > min(ROOM.half_width - 0.3, self.cam.visible_x(d, 0.3)):
            x = sw.x - side * 0.38
        walk, ta = self._approach(a, t, (x, d))
        dur = self._dur(verb, a)
        facing = 1 if sw.x > x else -1
        act = Motion(ta, ta + dur, verb, (x, d), (x, d), facing)
        on = verb == "turn_on_light"
        ramp = Ramp(ta + 0.5 * dur, ta + 0.5 * dur + 0.12, 1.0 - on, float(on))
        return self._step(a, walk + [act], verb, "light", ta, ta + dur, "stand", (x, d), facing,
                          locks={"light": ta + dur}, light=ramp)

    def _turn_on_light(self, a: Actor, t: float, prop) -> Step:
        return self._light(a, t, "turn_on_light")

    def _turn_off_light(self, a: Actor, t: float, prop) -> Step:
        return self._light(a, t, "turn_off_light")

    def _reach(self, a: Actor, size: float) -> float:
        """How far in front of the feet a crouching actor grasps: centre of an object of ``size``."""
        return 0.2 * a.person.height + size / 2

    def _pick_up(self, a: Actor, t: float, pid: int) -> Step | None:
        prop = self.scene.props[pid]
        px, pd = self.prop_pos[pid]
        fwd = 1 if a.x < px else -1
        spot = None
        for f in (fwd, -fwd):
            cand = (px - f * self._reach(a, prop.size), pd + 0.05)
            if abs(cand[0]) <= min(ROOM.half_width - 0.2, self.cam.visible_x(cand[1], 0.2)):
                spot, fwd = cand, f
                break
        if spot is None:
            return None
        walk, ta = self._approach(a, t, spot)
        dur = self._dur("pick_up", a)
        info = {"place": (px, pd), "size": prop.size}
        act = Motion(ta, ta + dur, "pick_up", spot, spot, fwd, None, info)
        ev = PropEvent(ta + 0.5 * dur, "held", holder=a.person.pid)
        return self._step(a, walk + [act], "pick_up", prop.kind, ta, ta + dur, "stand", spot, fwd, pid,
                          holding=pid, locks={f"prop{pid}": ta + dur}, props=[(pid, ev)])

    def _put_down(self, a: Actor, t: float, pid: int) -> Step | None:
        prop = self.scene.props[pid]
        spot = self._random_spot(0.9) if self.rng.random() < 0.5 else a.pos
        walk, ta = self._approach(a, t, spot)
        fwd = walk[-1].facing if walk else (a.facing or 1)
        place = (spot[0] + fwd * self._reach(a, prop.size), spot[1] - 0.05)
        if abs(place[0]) > min(ROOM.half_width - 0.2, self.cam.visible_x(place[1], 0.2)):
            fwd = -fwd
            place = (spot[0] + fwd * self._reach(a, prop.size), spot[1] - 0.05)
        dur = self._dur("put_down", a)
        info = {"place": place, "size": prop.size}
        act = Motion(ta, ta + dur, "put_down", spot, spot, fwd, pid, info)
        ev = PropEvent(ta + 0.5 * dur, "floor", pos=place)
        return self._step(a, walk + [act], "put_down", prop.kind, ta, ta + dur, "stand", spot, fwd, pid,
                          holding=None, locks={f"prop{pid}": ta + dur}, props=[(pid, ev)])

    def _sit_down(self, a: Actor, t: float, prop) -> Step:
        chair = self.scene.chair
        stand_at, seat_at = chair_spots(chair)
        walk, ta = self._approach(a, t, stand_at)
        dur = self._dur("sit_down", a)
        act = Motion(ta, ta + dur, "sit_down", stand_at, seat_at, chair.facing)
        return self._step(a, walk + [act], "sit_down", "chair", ta, ta + dur, "seated", seat_at,
                          chair.facing, locks={"chair": INF})

    def _stand_up(self, a: Actor, t: float, prop) -> Step:
        chair = self.scene.chair
        stand_at, seat_at = chair_spots(chair)
        dur = self._dur("stand_up", a)
        act = Motion(t, t + dur, "stand_up", seat_at, stand_at, chair.facing)
        return self._step(a, [act], "stand_up", "chair", t, t + dur, "stand", stand_at, chair.facing,
                          locks={"chair": t + dur})

    def _throw(self, a: Actor, t: float, pid: int) -> Step | None:
        prop, rng = self.scene.props[pid], self.rng
        fwd = -1 if a.x > 0.3 else 1 if a.x < -0.3 else int(rng.choice([-1, 1]))
        d_land = float(np.clip(a.d + rng.uniform(-0.6, 0.4), 4.2, 5.5))
        lim = min(ROOM.half_width - 0.3, self.cam.visible_x(d_land, 0.3))
        x_land = float(np.clip(a.x + fwd * rng.uniform(1.3, 2.8), -lim, lim))
        if abs(x_land - a.x) < 0.8:
            return None
        arm = self._dur("throw", a)
        act = Motion(t, t + arm, "throw", a.pos, a.pos, fwd, pid, {"release_u": 0.55, "size": prop.size})
        t_rel = t + 0.55 * arm
        hand = skeleton(POSES["throw"](act, t_rel, a.person, None), a.person.height).hands[0]
        r = prop.size / 2
        t_land = t_rel + float(rng.uniform(0.7, 1.1))
        x_bounce = float(np.clip(x_land + fwd * 0.3, -lim, lim))
        arcs = [Flight(t_rel, t_land, (hand[0], a.d, hand[1]), (x_land, d_land, r), float(rng.uniform(0.5, 1.0))),
                Flight(t_land, t_land + 0.35, (x_land, d_land, r), (x_bounce, d_land, r), 0.12)]
        events = [(pid, PropEvent(f.t0, "flight", flight=f)) for f in arcs]
        events.append((pid, PropEvent(arcs[-1].t1, "floor", pos=(x_bounce, d_land))))
        end = max(t + arm, arcs[-1].t1)
        return self._step(a, [act], "throw", "ball", t, end, "stand", a.pos, fwd, pid, holding=None,
                          locks={f"prop{pid}": end}, props=events)

    def _wave(self, a: Actor, t: float, prop) -> Step:
        dur = self._dur("wave", a)
        seated = a.loc == "seated"
        facing = a.facing if seated else 0
        info = {"seated": seated, "hz": float(self.rng.uniform(1.5, 2.6))}
        act = Motion(t, t + dur, "wave", a.pos, a.pos, facing, None, info)
        return self._step(a, [act], "wave", None, t, t + dur, a.loc, a.pos, facing)
