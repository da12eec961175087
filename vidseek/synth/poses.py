"""How a person looks during each kind of motion: ``POSES[kind](motion, t, person, ctx) -> Pose``.

Every builder is a pure function of time, so any frame can be rendered on its own and the
planner can ask where a hand will be (e.g. where a ball leaves the hand).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vidseek.synth.camera import to_plane
from vidseek.synth.figure import SHIN, STAND_HIP, THIGH, Arm, Leg, Pose
from vidseek.synth.timeline import Motion, Timeline, ramp
from vidseek.synth.world import Door, Furniture, Person, Scene

XY = tuple[float, float]


@dataclass(frozen=True)
class PoseContext:
    """What pose builders may look at besides the motion: the scene and the world tracks."""

    scene: Scene
    timeline: Timeline


def keys(u: float, points: list[tuple[float, float]]) -> float:
    """Smooth piecewise interpolation through (u, value) key points."""
    if u <= points[0][0]:
        return points[0][1]
    for (u0, v0), (u1, v1) in zip(points, points[1:]):
        if u <= u1:
            return v0 + (v1 - v0) * ramp(u, u0, u1)
    return points[-1][1]


def lerp(a: XY, b: XY, k: float) -> XY:
    return a[0] + (b[0] - a[0]) * k, a[1] + (b[1] - a[1]) * k


def hip_height(legs: tuple[Leg, Leg], H: float) -> float:
    """Hip height that keeps the lower foot on the floor."""
    reach = max(THIGH * math.cos(l.swing) + SHIN * math.cos(l.swing - l.knee) for l in legs)
    return (reach + 0.02) * H


def carry_point(x: float, fwd: int, H: float, size: float) -> XY:
    """Where a held box or ball sits: in front of the belly."""
    return x + fwd * (0.16 * H + size / 2), 0.60 * H


def door_spot(door: Door, frac: float) -> XY:
    """Where someone working the door stands: just beyond the handle, on the free-edge side."""
    hx, hd, _ = door.handle(frac)
    return hx + door.side * 0.42, hd - 0.1


def chair_spots(chair: Furniture) -> tuple[XY, XY]:
    """(standing spot in front of the chair, seated hip position)."""
    d = chair.d - 0.03
    return (chair.x + chair.facing * 0.32, d), (chair.x - chair.facing * 0.03, d)


def _sway(t: float, pid: int) -> float:
    return math.sin(1.3 * t + 1.7 * pid)


def _held_size(m: Motion, ctx: PoseContext) -> float:
    return ctx.scene.props[m.carry].size if m.carry is not None else 0.3


def _hold_with_hands(pose: Pose, point: XY, reach: float = 1.0) -> None:
    pose.hold = point
    for arm in pose.arms:
        arm.target, arm.reach = point, reach


def stand(x: float, d: float, facing: int, H: float, t: float, pid: int) -> Pose:
    """Standing still, breathing: arms sway a little."""
    s = _sway(t, pid)
    legs = (Leg(0.04), Leg(0.04)) if facing == 0 else (Leg(0.02), Leg(-0.02))
    arms = (Arm(0.08 + 0.03 * s, 0.15), Arm(0.08 - 0.03 * s, 0.15))
    return Pose(x, d, facing, hip_height(legs, H), 0.02 * s, arms, legs)


def _idle(m: Motion, t: float, p: Person, ctx: PoseContext) -> Pose:
    pose = stand(m.a[0], m.a[1], m.facing, p.height, t, p.pid)
    if m.carry is not None:
        _hold_with_hands(pose, carry_point(m.a[0], m.facing or 1, p.height, _held_size(m, ctx)))
    return pose


def _walk(m: Motion, t: float, p: Person, ctx: PoseContext) -> Pose:
    H, u = p.height, m.u(t)
    x, d = lerp(m.a, m.b, u)
    dist = math.hypot(m.b[0] - m.a[0], m.b[1] - m.a[1]) * u
    phase = 2 * math.pi * dist / (0.8 * H)
    amp = 0.42 * min(1.0, 4 * u, 4 * (1 - u)) + 0.05  # start and stop the stride gently
    legs = tuple(Leg(amp * math.sin(phase + k), 0.1 + 1.6 * amp * max(0.0, math.cos(phase + k)))
                 for k in (0.0, math.pi))
    arms = (Arm(-0.8 * amp * math.sin(phase), 0.3), Arm(0.8 * amp * math.sin(phase), 0.3))
    pose = Pose(x, d, m.facing, hip_height(legs, H), 0.06, arms, legs)
    if m.carry is not None:
        _hold_with_hands(pose, carry_point(x, m.facing or 1, H, _held_size(m, ctx)))
    return pose


def sit_pose(chair: Furniture, H: float, k: float, t: float, pid: int) -> Pose:
    """Between standing in front of the chair (k = 0) and sitting on it (k = 1)."""
    stand_at, seat_at = chair_spots(chair)
    x, d = lerp(stand_at, seat_at, k)
    legs = (Leg(1.45 * k, 1.45 * k), Leg(1.45 * k + 0.05, 1.45 * k + 0.05))
    hip = STAND_HIP * H * (1 - k) + (chair.seat_h + 0.035 * H) * k
    s = 0.03 * _sway(t, pid)
    arms = (Arm(0.1 + 0.55 * k + s, 0.15 + 0.5 * k), Arm(0.1 + 0.5 * k - s, 0.15 + 0.5 * k))
    return Pose(x, d, chair.facing, hip, 0.45 * math.sin(math.pi * k) + 0.04 * k, arms, legs)


def _seated(m: Motion, t: float, p: Person, ctx: PoseContext) -> Pose:
    return sit_pose(ctx.scene.chair, p.height, 1.0, t, p.pid)


def _sit_down(m: Motion, t: float, p: Person, ctx: PoseContext) -> Pose:
    return sit_pose(ctx.scene.chair, p.height, ramp(m.u(t), 0.05, 0.95), t, p.pid)


def _stand_up(m: Motion, t: float, p: Person, ctx: PoseContext) -> Pose:
    return sit_pose(ctx.scene.chair, p.height, 1.0 - ramp(m.u(t), 0.05, 0.95), t, p.pid)


def _door(m: Motion, t: float, p: Person, ctx: PoseContext) -> Pose:
    door = ctx.scene.door
    frac = ctx.timeline.door.value(t)
    x, d = door_spot(door, frac)
    u = m.u(t)
    pose = stand(x, d, m.facing, p.height, t, p.pid)
    hx, hd, hh = door.handle(frac)
    pose.arms[0].target = to_plane(hx, hd, hh, d)
    pose.arms[0].reach = ramp(u, 0.0, 0.2) * (1.0 - ramp(u, 0.86, 1.0))
    pose.lean = -0.12 * math.sin(math.pi * ramp(u, 0.2, 0.85))  # lean back while pulling / pushing
    return pose


def _switch(m: Motion, t: float, p: Person, ctx: PoseContext) -> Pose:
    sw = ctx.scene.switch
    u = m.u(t)
    pose = stand(m.a[0], m.a[1], m.facing, p.height, t, p.pid)
    press = 0.04 * math.sin(math.pi * ramp(u, 0.42, 0.58))  # push the switch in
    pose.arms[0].target = to_plane(sw.x - m.facing * press, 6.0, sw.h, m.a[1])
    pose.arms[0].reach = ramp(u, 0.0, 0.42) * (1.0 - ramp(u, 0.62, 1.0))
    return pose


def bend(x: float, d: float, fwd: int, H: float, k: float) -> Pose:
    """Crouch and lean towards the floor; k = 0 upright, 1 hands near the floor."""
    legs = (Leg(0.55 * k, 1.15 * k), Leg(0.45 * k, 1.05 * k))
    arms = (Arm(0.1 + 0.6 * k, 0.15), Arm(0.1 + 0.5 * k, 0.15))
    return Pose(x, d, fwd, hip_height(legs, H), 1.0 * k, arms, legs)


def _grasp_point(m: Motion) -> XY:
    return m.info["place"][0], m.info["size"] / 2


def _pick_up(m: Motion, t: float, p: Person, ctx: PoseContext) -> Pose:
    u, H = m.u(t), p.height
    k = ramp(u, 0.0, 0.42) if u < 0.5 else 1.0 - ramp(u, 0.55, 1.0)
    pose = bend(m.a[0], m.a[1], m.facing, H, k)
    grasp = _grasp_point(m)
    if u < 0.5:
        for arm in pose.arms:
            arm.target, arm.reach = grasp, ramp(u, 0.12, 0.42)
    else:
        carry = carry_point(m.a[0], m.facing, H, m.info["size"])
        _hold_with_hands(pose, lerp(grasp, carry, ramp(u, 0.55, 1.0)))
    return pose


def _put_down(m: Motion, t: float, p: Person, ctx: PoseContext) -> Pose:
    u, H = m.u(t), p.height
    k = ramp(u, 0.0, 0.45) if u < 0.5 else 1.0 - ramp(u, 0.55, 1.0)
    pose = bend(m.a[0], m.a[1], m.facing, H, k)
    place = _grasp_point(m)
    if u < 0.5:
        carry = carry_point(m.a[0], m.facing, H, m.info["size"])
        _hold_with_hands(pose, lerp(carry, place, ramp(u, 0.0, 0.45)))
    else:
        for arm in pose.arms:
            arm.target, arm.reach = place, 1.0 - ramp(u, 0.55, 0.9)
    return pose


def _throw(m: Motion, t: float, p: Person, ctx: PoseContext) -> Pose:
    """Wind up over the shoulder, swing forward, release at ``info['release_u']``, follow through."""
    u, H = m.u(t), p.height
    r = m.info["release_u"]
    w = r - 0.15  # end of the wind-up
    legs = (Leg(keys(u, [(0, 0.0), (w, 0.3), (r, 0.35), (1, 0.0)])),
            Leg(keys(u, [(0, 0.0), (w, -0.15), (r, -0.3), (1, 0.0)])))
    throw_arm = Arm(keys(u, [(0, 0.9), (w, -2.4), (r, 1.7), (min(r + 0.15, 0.95), 1.0), (1, 0.1)]),
                    keys(u, [(0, 0.5), (w, 1.7), (r, 0.2), (1, 0.15)]))
    other = Arm(keys(u, [(0, 0.9), (w, 0.9), (r, 0.3), (1, 0.08)]), keys(u, [(0, 0.5), (1, 0.15)]))
    lean = keys(u, [(0, 0.0), (w, -0.2), (r, 0.3), (1, 0.0)])
    pose = Pose(m.a[0], m.a[1], m.facing, hip_height(legs, H), lean, (throw_arm, other), legs)
    if u < 0.12:  # let go of the two-handed carry smoothly
        carry = carry_point(m.a[0], m.facing, H, m.info["size"])
        for arm in pose.arms:
            arm.target, arm.reach = carry, 1.0 - ramp(u, 0.0, 0.12)
    return pose


def _wave(m: Motion, t: float, p: Person, ctx: PoseContext) -> Pose:
    u = m.u(t)
    if m.info.get("seated"):
        pose = sit_pose(ctx.scene.chair, p.height, 1.0, t, p.pid)
    else:
        pose = stand(m.a[0], m.a[1], m.facing, p.height, t, p.pid)
    up = ramp(u, 0.0, 0.15) * (1.0 - ramp(u, 0.85, 1.0))
    osc = math.sin(2 * math.pi * m.info.get("hz", 2.0) * (t - m.t0))
    pose.arms = (Arm(0.08 + up * 2.5, 0.15 + up * (0.45 + 0.5 * osc)), pose.arms[1])
    return pose


POSES = {
    "idle": _idle,
    "seated": _seated,
    "walk": _walk,
    "walk_in": _walk,
    "walk_out": _walk,
    "open_door": _door,
    "close_door": _door,
    "turn_on_light": _switch,
    "turn_off_light": _switch,
    "pick_up": _pick_up,
    "put_down": _put_down,
    "sit_down": _sit_down,
    "stand_up": _stand_up,
    "throw": _throw,
    "wave": _wave,
}


def pose_at(m: Motion, t: float, person: Person, ctx: PoseContext) -> Pose | None:
    """The pose of ``person`` at time t during motion m, or None while they are out of the room."""
    if m.kind == "absent":
        return None
    return POSES[m.kind](m, t, person, ctx)
