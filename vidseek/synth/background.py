"""The static part of a frame: walls, floor, doorway, window, pictures, switch plate, lamp base.

Rendered once per video by casting a ray through every pixel (2x supersampled), with a margin of
``pad`` pixels on every side so camera shake can be a crop.
"""

from __future__ import annotations

import numpy as np

from vidseek.synth.camera import ROOM, Camera
from vidseek.synth.world import Scene, WallItem

BACK, FLOOR, LEFT, RIGHT, CEILING = range(5)
HALLWAY = np.array([0.10, 0.09, 0.085], np.float32)
SKY = np.array([0.55, 0.75, 0.95], np.float32)


def render_background(scene: Scene, cam: Camera, width: int, height: int, pad: int) -> np.ndarray:
    """(height + 2 pad, width + 2 pad, 3) float32 image of the empty room, unlit (gain 1)."""
    ss = 2
    big = Camera(cam.f * ss, (cam.cx + pad) * ss, (cam.y_h + pad) * ss, cam.height)
    H, W = (height + 2 * pad) * ss, (width + 2 * pad) * ss
    X = (np.arange(W, dtype=np.float64) + 0.5)[None, :]
    Y = (np.arange(H, dtype=np.float64) + 0.5)[:, None]
    label, x, d, h = _cast(big, X, Y)
    rng = np.random.default_rng(scene.texture_seed)
    img = np.zeros((H, W, 3), np.float32)
    wall_k = _wall_pattern(scene.wall_texture, x, h, rng)
    img[:] = np.asarray(scene.wall, np.float32) * wall_k[..., None]
    side = (label == LEFT) | (label == RIGHT)
    img[side] = np.asarray(scene.wall, np.float32) * 0.82 * _wall_pattern(scene.wall_texture, d, h, rng)[side][:, None]
    floor = label == FLOOR
    img[floor] = np.asarray(scene.floor, np.float32) * _floor_pattern(scene.floor_texture, x, d, rng)[floor][:, None]
    img[label == CEILING] = np.asarray(scene.wall, np.float32) * 1.05
    _baseboard(img, label, h)
    _ambient_occlusion(img, label, x, d, h)
    back = label == BACK
    _doorway(img, back, x, h, scene)
    for item in (scene.switch,) + scene.wall_items:
        _wall_item(img, back, x, h, item, rng)
    img = img.reshape(H // ss, ss, W // ss, ss, 3).mean(axis=(1, 3))
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _cast(cam: Camera, X: np.ndarray, Y: np.ndarray):
    """Nearest surface along each pixel's ray -> (label, x, d, h) arrays of shape (H, W)."""
    shape = np.broadcast(X, Y).shape
    dx, dy = np.broadcast_to(X - cam.cx, shape), np.broadcast_to(Y - cam.y_h, shape)
    inf = np.full(shape, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        cands = [
            np.full(shape, ROOM.back),
            np.where(dy > 0, cam.f * cam.height / dy, inf),
            np.where(dx < 0, -ROOM.half_width * cam.f / dx, inf),
            np.where(dx > 0, ROOM.half_width * cam.f / dx, inf),
            np.where(dy < 0, cam.f * (ROOM.height - cam.height) / -dy, inf),
        ]
    depth = np.stack(cands)
    label = np.argmin(depth, axis=0)
    d = np.min(depth, axis=0)
    return label, dx * d / cam.f, d, cam.height - dy * d / cam.f


def _smooth_noise(rng: np.random.Generator, shape, cells: int = 12) -> np.ndarray:
    """Blotchy noise in [-1, 1]: a coarse random grid blown up to ``shape`` (nearest neighbour)."""
    coarse = rng.uniform(-1, 1, (cells, cells))
    ys = (np.arange(shape[0]) * cells // shape[0])[:, None]
    xs = (np.arange(shape[1]) * cells // shape[1])[None, :]
    return coarse[ys, xs]


def _wall_pattern(kind: str, u: np.ndarray, h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness multiplier of the wallpaper at wall coordinates (u along the wall, h up)."""
    k = 1.0 + 0.015 * rng.standard_normal(u.shape)
    if kind == "stripes":
        k *= np.where(np.floor(u / 0.16) % 2 == 0, 1.0, 0.93)
    elif kind == "dots":
        fu, fh = (u / 0.2) % 1.0 - 0.5, (h / 0.2) % 1.0 - 0.5
        k *= np.where(fu * fu + fh * fh < 0.03, 0.86, 1.0)
    elif kind == "bricks":
        row = np.floor(h / 0.12)
        fu = ((u + 0.13 * (row % 2)) / 0.26) % 1.0
        mortar = ((h / 0.12) % 1.0 < 0.12) | (fu < 0.06)
        k *= np.where(mortar, 1.12, 0.92 + 0.05 * np.sin(row * 12.9898 + np.floor(u / 0.26) * 78.233))
    elif kind == "panels":
        k *= np.where(h < 0.95, np.where((u / 0.5) % 1.0 < 0.04, 0.78, 0.88), 1.0)
        k *= np.where(np.abs(h - 0.95) < 0.02, 1.15, 1.0)
    return k.astype(np.float32)


def _floor_pattern(kind: str, x: np.ndarray, d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness multiplier of the floor at floor coordinates (x across, d depth)."""
    k = 1.0 + 0.02 * rng.standard_normal(x.shape)
    if kind == "planks":
        board = np.floor(x / 0.2)
        seam = (x / 0.2) % 1.0 < 0.06
        joint = ((d + 0.7 * np.sin(board * 3.1)) / 1.4) % 1.0 < 0.02
        k *= np.where(seam | joint, 0.72, 0.93 + 0.08 * np.sin(board * 7.7))
    elif kind == "tiles":
        check = (np.floor(x / 0.5) + np.floor(d / 0.5)) % 2
        grout = ((x / 0.5) % 1.0 < 0.04) | ((d / 0.5) % 1.0 < 0.04)
        k *= np.where(grout, 1.2, np.where(check == 0, 1.0, 0.86))
    else:  # carpet
        k *= 1.0 + 0.05 * _smooth_noise(rng, x.shape, 24)
    return k.astype(np.float32)


def _baseboard(img: np.ndarray, label: np.ndarray, h: np.ndarray) -> None:
    walls = (label == BACK) | (label == LEFT) | (label == RIGHT)
    img[walls & (h < 0.09)] *= 0.7


def _ambient_occlusion(img: np.ndarray, label: np.ndarray, x, d, h) -> None:
    """Darken towards the corners of the room, and the floor towards the back wall."""
    floor = label == FLOOR
    img[floor] *= (1.0 - 0.25 * np.clip((d[floor] - 4.0) / 2.0, 0, 1))[:, None]
    walls = label != FLOOR
    img[walls] *= (1.0 - 0.12 * np.clip(np.abs(x[walls]) / ROOM.half_width, 0, 1) ** 4)[:, None]


def _rect(x, h, cx: float, ch: float, w: float, hh: float) -> np.ndarray:
    return (np.abs(x - cx) <= w / 2) & (np.abs(h - ch) <= hh / 2)


def _doorway(img: np.ndarray, back: np.ndarray, x, h, scene: Scene) -> None:
    door = scene.door
    frame = back & _rect(x, h, door.center_x, door.height / 2, door.width + 0.14, door.height + 0.14)
    img[frame] = np.asarray(door.frame_color, np.float32)
    hole = back & _rect(x, h, door.center_x, door.height / 2, door.width, door.height)
    shade = (1.0 + 1.6 * np.clip(0.5 - h[hole], 0, 0.5))[:, None]  # the hallway floor catches light
    img[hole] = HALLWAY * shade


def _wall_item(img: np.ndarray, back: np.ndarray, x, h, item: WallItem, rng: np.random.Generator) -> None:
    """Static look of one wall item; moving parts are drawn per frame in ``things.py``."""
    box = back & _rect(x, h, item.x, item.h, item.width, item.height)
    if item.kind == "switch":
        img[box] = np.asarray(item.color, np.float32)
    elif item.kind == "lamp":
        base = back & _rect(x, h, item.x, item.h - 0.06, 0.08, 0.1)
        img[base] = (0.35, 0.33, 0.3)
    elif item.kind == "window":
        img[box] = (0.92, 0.92, 0.9)
        glass = back & _rect(x, h, item.x, item.h, item.width - 0.1, item.height - 0.1)
        img[glass] = SKY * (1.0 - 0.25 * np.clip((h[glass] - item.h + item.height / 2) / item.height, 0, 1))[:, None]
        bar = glass & ((np.abs(x - item.x) < 0.02) | (np.abs(h - item.h) < 0.02))
        img[bar] = (0.92, 0.92, 0.9)
    elif item.kind == "picture":
        img[box] = (0.25, 0.18, 0.12)
        inner = back & _rect(x, h, item.x, item.h, item.width - 0.08, item.height - 0.08)
        img[inner] = np.asarray(item.color, np.float32)
        sub = back & _rect(x, h, item.x + item.width * 0.12, item.h - 0.05, item.width * 0.35, item.height * 0.35)
        img[sub] = np.asarray(item.color, np.float32)[::-1]
    elif item.kind == "clock":
        face = back & ((x - item.x) ** 2 + (h - (item.h + 0.12)) ** 2 < 0.13 ** 2)
        img[face] = (0.2, 0.15, 0.1)
        inner = back & ((x - item.x) ** 2 + (h - (item.h + 0.12)) ** 2 < 0.11 ** 2)
        img[inner] = (0.95, 0.93, 0.86)
        case = back & _rect(x, h, item.x, item.h - 0.12, 0.16, 0.32)
        img[case] = (0.3, 0.2, 0.12)
    elif item.kind == "tv":
        img[box] = (0.05, 0.05, 0.06)
