"""Numpy frames of one video: background crop (camera shake), things in depth order, light, noise.

>>> from vidseek.synth import make_video
>>> video = make_video(seed=0, index=0, config=None)
>>> frame = Renderer(video).frame(0)
>>> frame.shape, frame.dtype.name
((120, 160, 3), 'uint8')
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from vidseek.synth import things
from vidseek.synth.background import render_background
from vidseek.synth.camera import ROOM, Camera
from vidseek.synth.figure import draw_person
from vidseek.synth.state import FrameState, state_at

PAD = 3  # background margin in pixels for camera shake
NOISE_BANK = 8  # distinct sensor-noise frames per video, picked at random per frame


class SpriteCache:
    """Remembers what a painter did to any image, so static things are drawn once per camera shift.

    Every primitive blends ``img += a * (c - img)``, so any sequence of them maps an image to
    ``img * keep + add``; two paints (on black and on white) recover ``keep`` and ``add`` exactly.
    """

    def __init__(self, height: int, width: int, capacity: int = 256):
        self.h, self.w, self.capacity = height, width, capacity
        self.sprites: dict = {}

    def paint(self, img: np.ndarray, key, painter) -> None:
        if key is None:
            painter(img)
            return
        sprite = self.sprites.get(key, False)
        if sprite is False:
            if len(self.sprites) >= self.capacity:
                self.sprites.clear()
            sprite = self.sprites[key] = self._make(painter)
        if sprite is not None:
            (ya, yb, xa, xb), keep, add = sprite
            region = img[ya:yb, xa:xb]
            region *= keep
            region += add

    def _make(self, painter):
        black = np.zeros((self.h, self.w, 3), np.float32)
        white = np.ones((self.h, self.w, 3), np.float32)
        painter(black)
        painter(white)
        keep = (white - black)[..., :1]
        ys, xs = np.nonzero(keep[..., 0] < 1.0 - 1e-6)
        if len(ys) == 0:
            return None
        box = (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1)
        ya, yb, xa, xb = box
        return box, keep[ya:yb, xa:xb].copy(), black[ya:yb, xa:xb].copy()


class Renderer:
    """Draws frames of one ``Video`` (see ``vidseek.synth.video``); deterministic given the video."""

    def __init__(self, video):
        self.video = video
        self.scene, self.timeline = video.scene, video.timeline
        self.w, self.h = video.width, video.height
        self.cam = Camera.for_size(self.w, self.h)
        rng = np.random.default_rng([video.seed, video.index, 7])
        self.bg = render_background(self.scene, self.cam, self.w, self.h, PAD)
        self._bake_static_shadows()
        self.sprites = SpriteCache(self.h, self.w)
        light = self.scene.lighting
        self.noise = rng.standard_normal((NOISE_BANK, self.h, self.w, 3)).astype(np.float32) * light.noise
        self.noise_pick = rng.integers(0, NOISE_BANK, 4096)
        self.shake = rng.uniform(0.15, 0.9, (2, 3)), rng.uniform(0, 2 * np.pi, (2, 3))
        self.tv_colors = rng.uniform(0.1, 1.0, (32, 3)).astype(np.float32)
        self.fan_rps = float(rng.uniform(0.4, 1.2))
        self.vignette = self._vignette(light.vignette)
        self.glow = self._glow()
        self.tint = np.asarray(light.tint, np.float32)

    def _bake_static_shadows(self) -> None:
        """Shadows of the chair and the table never move: draw them into the background."""
        cam, sc = self.cam.shifted(PAD, PAD), self.scene
        things.draw_shadow(self.bg, cam, sc.chair.x, sc.chair.d + 0.21, 0.3)
        things.draw_shadow(self.bg, cam, sc.table.x, sc.table.d + 0.3, sc.table.width * 0.6)
        if "fan" in sc.distractors:
            things.draw_shadow(self.bg, cam, sc.fan_x, 5.6, 0.22)

    def _vignette(self, strength: float) -> np.ndarray:
        y = (np.arange(self.h) + 0.5) / self.h - 0.5
        x = (np.arange(self.w) + 0.5) / self.w - 0.5
        r2 = (x[None, :] ** 2 + y[:, None] ** 2) / 0.5
        return (1.0 - strength * r2)[..., None].astype(np.float32)

    def _glow(self) -> np.ndarray:
        """Warm light the lamp throws on the wall around it, added in proportion to the light level."""
        lamp = self.scene.item("lamp")
        if lamp is None:
            return np.zeros((self.h, self.w, 3), np.float32)
        cx, cy = self.cam.project(lamp.x, ROOM.back, lamp.h)
        r = 0.9 * self.cam.scale(ROOM.back)
        y, x = np.mgrid[0:self.h, 0:self.w].astype(np.float32) + 0.5
        k = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        return (k[..., None] * np.array([0.16, 0.13, 0.06], np.float32)).astype(np.float32)

    def shake_at(self, t: float) -> tuple[int, int]:
        """Integer camera shake (dx, dy) in pixels at time t: a smooth wobble, rounded."""
        amp = self.scene.lighting.jitter
        freq, phase = self.shake
        v = [amp * float(np.mean(np.sin(2 * np.pi * freq[i] * t + phase[i]))) * 1.6 for i in (0, 1)]
        return int(np.clip(round(v[0]), -PAD, PAD)), int(np.clip(round(v[1]), -PAD, PAD))

    def state(self, t: float) -> FrameState:
        return state_at(self.scene, self.timeline, t)

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as (H, W, 3) uint8 RGB."""
        t = index / self.video.fps
        return self.frame_at(t, index)

    def frame_at(self, t: float, index: int = 0) -> np.ndarray:
        dx, dy = self.shake_at(t)
        cam = self.cam.shifted(dx, dy)
        img = self.bg[PAD - dy:PAD - dy + self.h, PAD - dx:PAD - dx + self.w].copy()
        st = self.state(t)
        self._draw_scene(img, cam, st)
        lit = self.scene.lighting
        gain = lit.off_gain + (lit.on_gain - lit.off_gain) * st.light
        img *= self.vignette * (gain * self.tint)
        img += self.glow * st.light
        img += self.noise[self.noise_pick[index % len(self.noise_pick)]]
        img *= 255.0
        np.clip(img, 0.0, 255.0, out=img)
        return (img + 0.5).astype(np.uint8)

    def frames(self) -> Iterator[np.ndarray]:
        for i in range(self.video.n_frames):
            yield self.frame(i)

    def _draw_scene(self, img: np.ndarray, cam: Camera, st: FrameState) -> None:
        scene, cache, shift = self.scene, self.sprites, (cam.cx, cam.y_h)
        settled = st.light in (0.0, 1.0)
        cache.paint(img, ("switch", st.light > 0.5, shift),
                    lambda im: things.draw_switch(im, cam, scene.switch, st.light > 0.5))
        lamp = scene.item("lamp")
        if lamp is not None:
            cache.paint(img, ("lamp", st.light, shift) if settled else None,
                        lambda im: things.draw_lamp(im, cam, lamp, st.light))
        things.draw_wall_motion(img, cam, scene, st.t, self.tv_colors)
        cache.paint(img, ("door", st.door, shift) if st.door in (0.0, 1.0) else None,
                    lambda im: things.draw_door(im, cam, scene.door, st.door))
        self._draw_shadows(img, cam, st, shift)
        for _, key, paint in sorted(self._drawables(cam, st, shift), key=lambda p: -p[0]):
            cache.paint(img, key, paint)

    def _draw_shadows(self, img: np.ndarray, cam: Camera, st: FrameState, shift) -> None:
        resting = tuple((p.center[0], p.center[1], p.prop.size * 0.6) for p in st.props if p.on_floor)
        self.sprites.paint(img, ("shadows", resting, shift),
                           lambda im: [things.draw_shadow(im, cam, *s) for s in resting])
        for pv in st.people:
            things.draw_shadow(img, cam, pv.pose.x, pv.pose.d, 0.28)
        for p in st.props:
            if not p.on_floor:
                x, d, h = p.center
                things.draw_shadow(img, cam, x, d, p.prop.size * 0.6 / (1.0 + max(h - p.prop.size / 2, 0.0)))

    def _drawables(self, cam: Camera, st: FrameState, shift):
        """(depth, cache key or None, painter) for everything standing in the room; painted far to near."""
        sc = self.scene
        out = [(sc.table.d + 0.3, ("table", shift), lambda im: things.draw_table(im, cam, sc.table)),
               (sc.chair.d + 0.21, ("chair", shift), lambda im: things.draw_chair(im, cam, sc.chair))]
        if "fan" in sc.distractors:
            out.append((5.6, ("fan", shift), lambda im: things.draw_fan_stand(im, cam, sc.fan_x)))
            out.append((5.599, None, lambda im: things.draw_fan_blades(im, cam, sc.fan_x, st.t, self.fan_rps)))
        for p in st.props:
            fn = things.draw_box if p.prop.kind == "box" else things.draw_ball
            key = ("prop", p.prop.pid, p.center, shift) if p.on_floor else None
            out.append((p.sort_d, key, lambda im, p=p, fn=fn: fn(im, cam, p.center, p.prop.size, p.prop.color)))
        for pv in st.people:
            out.append((pv.pose.d, None, lambda im, pv=pv: draw_person(im, cam, pv.skeleton, pv.person)))
        return out
