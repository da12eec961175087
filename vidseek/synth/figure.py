"""Articulated people: a pose (joint angles) -> a skeleton (joint positions) -> limbs on the image.

A figure is planar, standing at depth ``d``; joint positions are world metres (x across, h up) in
that plane. Angles are measured from "hanging straight down", positive towards ``forward`` (the
facing direction in profile, outwards from the body when facing the camera).

>>> sk = skeleton(Pose(x=0.0, d=5.0, facing=1, hip_h=0.51 * 1.7), 1.7)
>>> round(sk.head[1], 2)  # head centre height of a 1.7 m person standing upright
1.56
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from vidseek.synth import draw
from vidseek.synth.camera import Camera

# Body proportions as fractions of the person's height.
TORSO, NECK, HEAD_R = 0.29, 0.055, 0.063
UPPER_ARM, FOREARM = 0.17, 0.17
THIGH, SHIN, FOOT = 0.245, 0.245, 0.07
STAND_HIP = THIGH + SHIN + 0.02  # hip height of an upright person
SHOULDER_W, HIP_W = 0.105, 0.05  # half widths when facing the camera
R_LEG, R_ARM, R_TORSO = 0.045, 0.03, 0.072

XY = tuple[float, float]


@dataclass
class Arm:
    up: float = 0.08  # shoulder angle (rad) from hanging down, + = forward / outward
    bend: float = 0.15  # elbow bend (rad), + = forearm rotates further forward / up
    target: XY | None = None  # optional hand target (x, h) in the figure's plane
    reach: float = 0.0  # 0..1: how far the hand moves from its angle pose to ``target``


@dataclass
class Leg:
    swing: float = 0.0  # hip angle (rad), + = thigh forward
    knee: float = 0.0  # knee bend (rad), + = shin backward


@dataclass
class Pose:
    """Everything that moves on a person at one instant."""

    x: float  # floor position across the room, metres
    d: float  # depth, metres
    facing: int  # +1 right, -1 left (profile), 0 towards the camera
    hip_h: float  # hip height above the floor, metres
    lean: float = 0.0  # torso lean forward (rad)
    arms: tuple[Arm, Arm] = field(default_factory=lambda: (Arm(), Arm()))  # (near, far) / (right, left)
    legs: tuple[Leg, Leg] = field(default_factory=lambda: (Leg(), Leg()))
    hold: XY | None = None  # centre (x, h) of what the hands hold, when the pose places it


@dataclass
class Skeleton:
    """Joint positions (x, h) in metres, in the plane of the figure at depth ``d``."""

    d: float
    facing: int
    hip: XY
    neck: XY
    head: XY
    shoulders: tuple[XY, XY]
    elbows: tuple[XY, XY]
    hands: tuple[XY, XY]
    hips: tuple[XY, XY]
    knees: tuple[XY, XY]
    ankles: tuple[XY, XY]
    toes: tuple[XY, XY]


def _dir(angle: float, fwd: float) -> XY:
    """Unit vector of a limb at ``angle`` from straight down, rotating towards ``fwd`` (+-1)."""
    return fwd * math.sin(angle), -math.cos(angle)


def _add(p: XY, v: XY, k: float) -> XY:
    return p[0] + k * v[0], p[1] + k * v[1]


def _ik(shoulder: XY, target: XY, l1: float, l2: float) -> tuple[XY, XY]:
    """Two-bone reach: (elbow, hand) for a hand aimed at ``target``, elbow bending downwards."""
    vx, vy = target[0] - shoulder[0], target[1] - shoulder[1]
    dist = min(max(math.hypot(vx, vy), 1e-4), (l1 + l2) * 0.999)
    ux, uy = vx / max(math.hypot(vx, vy), 1e-4), vy / max(math.hypot(vx, vy), 1e-4)
    cos_a = (l1 * l1 + dist * dist - l2 * l2) / (2 * l1 * dist)
    a = math.acos(max(-1.0, min(1.0, cos_a)))
    cands = []
    for s in (1.0, -1.0):
        ca, sa = math.cos(s * a), math.sin(s * a)
        cands.append((shoulder[0] + l1 * (ux * ca - uy * sa), shoulder[1] + l1 * (ux * sa + uy * ca)))
    elbow = min(cands, key=lambda e: e[1])  # the lower elbow looks natural
    return elbow, (shoulder[0] + ux * dist, shoulder[1] + uy * dist)


def skeleton(pose: Pose, height: float) -> Skeleton:
    """Forward kinematics: joint angles -> joint positions for a person ``height`` metres tall."""
    H, f = height, pose.facing
    hip = (pose.x, pose.hip_h)
    tf = f if f else 1
    neck = _add(hip, (tf * math.sin(pose.lean) if f else 0.0, math.cos(pose.lean)), TORSO * H)
    head = _add(neck, (tf * math.sin(pose.lean) if f else 0.0, math.cos(pose.lean)), (NECK + HEAD_R) * H)
    sides = (1, -1)  # profile: near, far; frontal: right, left (image right = figure's left, fine)
    lat_s = SHOULDER_W * H if f == 0 else 0.012 * H
    lat_h = HIP_W * H if f == 0 else 0.012 * H
    shoulder_c = _add(neck, (tf * math.sin(pose.lean) if f else 0.0, math.cos(pose.lean)), -0.035 * H)
    shoulders, elbows, hands, hips, knees, ankles, toes = [], [], [], [], [], [], []
    for side, arm, leg in zip(sides, pose.arms, pose.legs):
        fwd = f if f else side
        sh = (shoulder_c[0] + side * lat_s * (1 if f == 0 else -f), shoulder_c[1])
        el = _add(sh, _dir(arm.up, fwd), UPPER_ARM * H)
        ha = _add(el, _dir(arm.up + arm.bend, fwd), FOREARM * H)
        if arm.target is not None and arm.reach > 0:
            goal = (ha[0] + arm.reach * (arm.target[0] - ha[0]), ha[1] + arm.reach * (arm.target[1] - ha[1]))
            el, ha = _ik(sh, goal, UPPER_ARM * H, FOREARM * H)
        hp = (hip[0] + side * lat_h * (1 if f == 0 else -f), hip[1])
        kn = _add(hp, _dir(leg.swing, fwd), THIGH * H)
        an = _add(kn, _dir(leg.swing - leg.knee, fwd), SHIN * H)
        toe = (an[0] + (f * FOOT * H if f else 0.0), an[1] - (0.0 if f else 0.01 * H))
        shoulders.append(sh), elbows.append(el), hands.append(ha)
        hips.append(hp), knees.append(kn), ankles.append(an), toes.append(toe)
    return Skeleton(pose.d, f, hip, neck, head, tuple(shoulders), tuple(elbows), tuple(hands),
                    tuple(hips), tuple(knees), tuple(ankles), tuple(toes))


def draw_person(img: np.ndarray, cam: Camera, sk: Skeleton, person) -> None:
    """Paint a person (shirt, pants, skin, hair) from their skeleton, far limbs first."""
    s = cam.scale(sk.d)
    H = person.height

    def P(p: XY) -> XY:
        return cam.project(p[0], sk.d, p[1])

    def limb(a: XY, b: XY, r: float, color) -> None:
        draw.fill_capsule(img, P(a), P(b), max(r * H * s, 0.6), color)

    shoe = (0.08, 0.07, 0.07)
    back_k = 0.72 if sk.facing else 1.0  # the far side of a profile figure is in shadow

    def draw_leg(i: int, k: float) -> None:
        limb(sk.hips[i], sk.knees[i], R_LEG, draw.shade(person.pants, k))
        limb(sk.knees[i], sk.ankles[i], R_LEG * 0.9, draw.shade(person.pants, k))
        limb(sk.ankles[i], sk.toes[i], R_LEG * 0.7, shoe)

    def draw_arm(i: int, k: float) -> None:
        limb(sk.shoulders[i], sk.elbows[i], R_ARM * 1.1, draw.shade(person.shirt, k))
        limb(sk.elbows[i], sk.hands[i], R_ARM * 0.9, draw.shade(person.skin, k))

    if sk.facing:
        draw_arm(1, back_k)
        draw_leg(1, back_k)
        draw_leg(0, 1.0)
    else:
        draw_leg(0, 1.0)
        draw_leg(1, 1.0)
    torso_r = R_TORSO * (1.25 if sk.facing == 0 else 1.0)
    limb(sk.hip, sk.neck, torso_r, person.shirt)
    limb(sk.neck, _add(sk.neck, (0.0, 1.0), NECK * H), 0.025, person.skin)
    _draw_head(img, cam, sk, person)
    if sk.facing:
        draw_arm(0, 1.0)
    else:
        draw_arm(0, 1.0)
        draw_arm(1, 1.0)


def _draw_head(img: np.ndarray, cam: Camera, sk: Skeleton, person) -> None:
    s = cam.scale(sk.d)
    r = HEAD_R * person.height * s
    hx, hy = cam.project(sk.head[0], sk.d, sk.head[1])
    draw.fill_disc(img, (hx, hy), r, person.skin)
    back = -sk.facing * 0.35 * r
    draw.fill_ellipse(img, (hx + back, hy - 0.45 * r), r * (1.0 if sk.facing else 1.05), r * 0.62, person.hair)
    if sk.facing == 0:
        for ex in (-0.35, 0.35):  # eyes, only visible at larger sizes
            draw.fill_disc(img, (hx + ex * r, hy + 0.05 * r), max(0.09 * r, 0.3), (0.1, 0.08, 0.08))
