"""Drawing the moving and solid things of the room, per frame: the door leaf, furniture, boxes,
balls, shadows and the distractors (clouds, tv, clock pendulum, fan).

Every function takes the frame (float32, (H, W, 3)), the camera of this frame and world positions.
"""

from __future__ import annotations

import math

import numpy as np

from vidseek.synth import draw
from vidseek.synth.camera import ROOM, Camera
from vidseek.synth.world import Door, Furniture, Scene, WallItem

Vec3 = tuple[float, float, float]
WALL_D = ROOM.back - 1e-3  # draw wall-mounted parts just in front of the wall


def _poly(img, cam: Camera, pts: list[Vec3], color, opacity: float = 1.0) -> None:
    draw.fill_polygon(img, [cam.project(x, d, h) for x, d, h in pts], color, opacity)


def _bar(img, cam: Camera, a: Vec3, b: Vec3, r: float, color) -> None:
    """A thin cylinder (chair leg, fan pole) of radius r metres between two world points."""
    s = cam.scale((a[1] + b[1]) / 2)
    draw.fill_capsule(img, cam.project(*a), cam.project(*b), max(r * s, 0.5), color)


def draw_door(img, cam: Camera, door: Door, frac: float) -> None:
    """The leaf as a quad from hinge to free edge: narrower and taller at the free edge as it opens."""
    a, b, c, d = door.leaf(frac)
    angle = frac * door.max_angle
    base = draw.shade(door.color, 1.0 - 0.3 * math.sin(angle))
    _poly(img, cam, [a, b, c, d], base)

    def at(s: float, v: float) -> Vec3:
        lo = [a[i] + (d[i] - a[i]) * s for i in range(3)]
        hi = [b[i] + (c[i] - b[i]) * s for i in range(3)]
        return tuple(lo[i] + (hi[i] - lo[i]) * v for i in range(3))

    panel = draw.shade(base, 0.82)
    for v0, v1 in ((0.08, 0.45), (0.55, 0.92)):
        _poly(img, cam, [at(0.15, v0), at(0.15, v1), at(0.85, v1), at(0.85, v0)], panel)
    hx, hd, hh = door.handle(frac)
    draw.fill_disc(img, cam.project(hx, hd, hh), max(0.035 * cam.scale(hd), 0.7), (0.85, 0.78, 0.45))


def draw_switch(img, cam: Camera, sw: WallItem, on: bool) -> None:
    dh = 0.025 if on else -0.025
    x0, y0 = cam.project(sw.x - 0.018, WALL_D, sw.h + dh + 0.025)
    x1, y1 = cam.project(sw.x + 0.018, WALL_D, sw.h + dh - 0.025)
    draw.fill_rect(img, x0, y0, x1, y1, (0.55, 0.55, 0.52))


def draw_lamp(img, cam: Camera, lamp: WallItem, light: float) -> None:
    """A wall lamp: a shade and a bulb that glows with the light level."""
    bulb = tuple(0.55 + (c - 0.55) * light for c in (1.0, 0.97, 0.8))
    draw.fill_disc(img, cam.project(lamp.x, WALL_D, lamp.h - 0.02), 0.05 * cam.scale(WALL_D), bulb)
    _poly(img, cam, [(lamp.x - 0.06, WALL_D, lamp.h + 0.12), (lamp.x + 0.06, WALL_D, lamp.h + 0.12),
                     (lamp.x + 0.11, WALL_D, lamp.h), (lamp.x - 0.11, WALL_D, lamp.h)], (0.93, 0.88, 0.75))


def _wall_view(img, cam: Camera, item: WallItem, inset: float):
    """(sub-image, x offset, y offset) of a wall item's inner rectangle, for clipped drawing."""
    x0, y0 = cam.project(item.x - item.width / 2 + inset, WALL_D, item.h + item.height / 2 - inset)
    x1, y1 = cam.project(item.x + item.width / 2 - inset, WALL_D, item.h - item.height / 2 + inset)
    h, w = img.shape[:2]
    xa, ya, xb, yb = max(int(round(x0)), 0), max(int(round(y0)), 0), min(int(round(x1)), w), min(int(round(y1)), h)
    if xa >= xb or ya >= yb:
        return None, 0, 0
    return img[ya:yb, xa:xb], xa, ya


def draw_clouds(img, cam: Camera, window: WallItem, t: float, seed: int) -> None:
    """Clouds drifting past the window: slow motion that is not an action."""
    view, ox, oy = _wall_view(img, cam, window, 0.05)
    if view is None:
        return
    h, w = view.shape[:2]
    rng = np.random.default_rng(seed)
    for _ in range(3):
        speed, y, size, phase = rng.uniform(0.02, 0.08), rng.uniform(0.2, 0.7), rng.uniform(0.15, 0.3), rng.random()
        u = (phase + speed * t) % 1.4 - 0.2
        draw.fill_ellipse(view, (u * w, y * h), size * w, size * h * 0.45, (0.97, 0.97, 0.98))


def draw_tv(img, cam: Camera, tv: WallItem, t: float, colors: np.ndarray) -> None:
    """A television: the picture cuts every ~1.3 s and a shape slides across it."""
    view, _, _ = _wall_view(img, cam, tv, 0.03)
    if view is None:
        return
    h, w = view.shape[:2]
    cut = int(t / 1.3)
    view[:] = colors[cut % len(colors)] * 0.8
    u = (t % 1.3) / 1.3
    draw.fill_rect(view, u * w - 0.3 * w, 0.3 * h, u * w, 0.8 * h, colors[(cut * 7 + 3) % len(colors)])


def draw_clock(img, cam: Camera, clock: WallItem, t: float) -> None:
    """A pendulum clock: the pendulum swings once a second, the second hand ticks."""
    pivot = (clock.x, WALL_D, clock.h - 0.0)
    a = 0.35 * math.sin(2 * math.pi * t / 1.2)
    bob = (clock.x + 0.2 * math.sin(a), WALL_D, clock.h - 0.2 * math.cos(a))
    _bar(img, cam, pivot, bob, 0.008, (0.8, 0.7, 0.3))
    draw.fill_disc(img, cam.project(*bob), 0.035 * cam.scale(WALL_D), (0.85, 0.75, 0.3))
    c = (clock.x, WALL_D, clock.h + 0.12)
    s = 2 * math.pi * math.floor(t) / 60
    _bar(img, cam, c, (c[0] + 0.09 * math.sin(s), WALL_D, c[2] + 0.09 * math.cos(s)), 0.006, (0.1, 0.1, 0.1))


FAN_D, FAN_HUB = 5.6, 1.0  # depth and hub height of the standing fan


def draw_fan_stand(img, cam: Camera, x: float) -> None:
    """The fan's pole, foot and guard (static)."""
    d = FAN_D
    _bar(img, cam, (x, d, 0.0), (x, d, FAN_HUB), 0.02, (0.3, 0.3, 0.32))
    draw.fill_ellipse(img, cam.project(x, d, 0.0), 0.18 * cam.scale(d), 0.05 * cam.scale(d), (0.3, 0.3, 0.32))
    draw.fill_disc(img, cam.project(x, d, FAN_HUB), 0.2 * cam.scale(d), (0.82, 0.84, 0.86))


def draw_fan_blades(img, cam: Camera, x: float, t: float, rps: float) -> None:
    """Three blades turning at ``rps`` revolutions per second."""
    d = FAN_D
    for k in range(3):
        a = 2 * math.pi * (rps * t + k / 3)
        tip = (x + 0.17 * math.cos(a), d, FAN_HUB + 0.17 * math.sin(a))
        _bar(img, cam, (x, d, FAN_HUB), tip, 0.035, (0.35, 0.55, 0.8))


def draw_table(img, cam: Camera, table: Furniture) -> None:
    x0, x1, d0, d1, top = table.x - table.width / 2, table.x + table.width / 2, table.d, table.d + 0.6, table.seat_h
    leg = draw.shade(table.color, 0.7)
    for lx in (x0 + 0.05, x1 - 0.05):
        _bar(img, cam, (lx, d1 - 0.05, 0), (lx, d1 - 0.05, top), 0.025, draw.shade(leg, 0.8))
    _poly(img, cam, [(x0, d0, top), (x1, d0, top), (x1, d1, top), (x0, d1, top)], draw.shade(table.color, 1.08))
    _poly(img, cam, [(x0, d0, top), (x1, d0, top), (x1, d0, top - 0.05), (x0, d0, top - 0.05)], leg)
    for lx in (x0 + 0.05, x1 - 0.05):
        _bar(img, cam, (lx, d0 + 0.04, 0), (lx, d0 + 0.04, top - 0.05), 0.025, leg)


def draw_chair(img, cam: Camera, chair: Furniture) -> None:
    """A chair seen side-on: legs, seat, and the backrest behind a seated person's back."""
    x, d0, d1, seat = chair.x, chair.d, chair.d + 0.42, chair.seat_h
    x0, x1 = x - 0.22, x + 0.22
    leg, c = draw.shade(chair.color, 0.7), chair.color
    for lx in (x0 + 0.03, x1 - 0.03):
        _bar(img, cam, (lx, d1 - 0.03, 0), (lx, d1 - 0.03, seat), 0.02, draw.shade(leg, 0.8))
    _poly(img, cam, [(x0, d0, seat), (x1, d0, seat), (x1, d1, seat), (x0, d1, seat)], draw.shade(c, 1.1))
    _poly(img, cam, [(x0, d0, seat), (x1, d0, seat), (x1, d0, seat - 0.05), (x0, d0, seat - 0.05)], leg)
    for lx in (x0 + 0.03, x1 - 0.03):
        _bar(img, cam, (lx, d0 + 0.03, 0), (lx, d0 + 0.03, seat - 0.05), 0.02, leg)
    bx = x - chair.facing * 0.2
    b0, b1, top = bx - 0.03, bx + 0.03, seat + 0.5
    _poly(img, cam, [(b0, d0, top), (b1, d0, top), (b1, d1, top), (b0, d1, top)], draw.shade(c, 1.15))
    side = b1 if bx < 0 else b0  # the side of the backrest that faces the camera
    _poly(img, cam, [(side, d0, seat), (side, d1, seat), (side, d1, top), (side, d0, top)], draw.shade(c, 0.8))
    _poly(img, cam, [(b0, d0, seat), (b1, d0, seat), (b1, d0, top), (b0, d0, top)], c)


def draw_box(img, cam: Camera, center: Vec3, size: float, color) -> None:
    """A cube: the side facing the camera's centre line, the top, then the front."""
    x, d, h = center
    s = size / 2
    x0, x1, d0, d1, h0, h1 = x - s, x + s, d - s, d + s, h - s, h + s
    if x0 > 0:
        _poly(img, cam, [(x0, d0, h0), (x0, d1, h0), (x0, d1, h1), (x0, d0, h1)], draw.shade(color, 0.68))
    elif x1 < 0:
        _poly(img, cam, [(x1, d0, h0), (x1, d1, h0), (x1, d1, h1), (x1, d0, h1)], draw.shade(color, 0.68))
    if h1 < cam.height:
        _poly(img, cam, [(x0, d0, h1), (x1, d0, h1), (x1, d1, h1), (x0, d1, h1)], draw.shade(color, 1.15))
    _poly(img, cam, [(x0, d0, h0), (x1, d0, h0), (x1, d0, h1), (x0, d0, h1)], draw.shade(color, 0.9))
    tape = draw.shade(color, 0.75)  # a band across the top, so a box reads as a box
    if h1 < cam.height:
        _poly(img, cam, [(x - 0.03, d0, h1), (x + 0.03, d0, h1), (x + 0.03, d1, h1), (x - 0.03, d1, h1)], tape)


def draw_ball(img, cam: Camera, center: Vec3, size: float, color) -> None:
    x, d, h = center
    r = size / 2 * cam.scale(d)
    cx, cy = cam.project(x, d, h)
    draw.fill_disc(img, (cx, cy), r, draw.shade(color, 0.7))
    draw.fill_disc(img, (cx - 0.18 * r, cy - 0.18 * r), 0.75 * r, color)
    draw.fill_disc(img, (cx - 0.38 * r, cy - 0.38 * r), max(0.2 * r, 0.4), draw.shade(color, 1.6))


def draw_shadow(img, cam: Camera, x: float, d: float, radius: float, opacity: float = 0.32) -> None:
    """A soft dark ellipse on the floor under something ``radius`` metres wide."""
    s = cam.scale(d)
    draw.fill_ellipse(img, cam.project(x, d, 0.0), radius * s, radius * s * 0.3, (0.0, 0.0, 0.0), opacity)


def draw_wall_motion(img, cam: Camera, scene: Scene, t: float, tv_colors) -> None:
    """The distractors on the back wall: clouds past the window, the tv picture, the pendulum."""
    for item in scene.wall_items:
        if item.kind == "window" and "clouds" in scene.distractors:
            draw_clouds(img, cam, item, t, scene.texture_seed)
        elif item.kind == "tv":
            draw_tv(img, cam, item, t, tv_colors)
        elif item.kind == "clock":
            draw_clock(img, cam, item, t)
