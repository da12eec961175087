"""The room and what is in it: one dataclass per thing, sampled from a seeded rng by ``make_scene``.

All positions are world metres (see ``camera.py``). Nothing here knows about time; the timeline of
actions lives in ``plan.py`` and ``timeline.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from vidseek.synth import palette
from vidseek.synth.camera import ROOM

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class Door:
    """A door in the back wall, hinged on one side, swinging into the room towards the camera."""

    center_x: float  # x of the doorway centre
    side: int  # +1: the leaf's free edge is right of the hinge; -1: left
    color: tuple  # leaf colour
    frame_color: tuple  # door frame colour
    width: float = 0.9  # metres
    height: float = 2.0  # metres
    max_angle: float = math.radians(82)  # angle of a fully open door

    @property
    def hinge_x(self) -> float:
        return self.center_x - self.side * self.width / 2

    def free_edge(self, frac: float) -> tuple[float, float]:
        """(x, d) of the free (handle) edge when the door is ``frac`` open (0 closed, 1 open)."""
        a = frac * self.max_angle
        return self.hinge_x + self.side * self.width * math.cos(a), ROOM.back - self.width * math.sin(a)

    def leaf(self, frac: float) -> list[Vec3]:
        """The leaf's four corners (x, d, h): hinge bottom, hinge top, free top, free bottom."""
        fx, fd = self.free_edge(frac)
        return [(self.hinge_x, ROOM.back, 0.0), (self.hinge_x, ROOM.back, self.height),
                (fx, fd, self.height), (fx, fd, 0.0)]

    def handle(self, frac: float) -> Vec3:
        """Where the handle is: near the free edge at hand height."""
        a = frac * self.max_angle
        r = self.width * 0.86
        return self.hinge_x + self.side * r * math.cos(a), ROOM.back - r * math.sin(a), 1.0


@dataclass(frozen=True)
class Furniture:
    """A chair or a table standing on the floor."""

    kind: str  # "chair" | "table"
    x: float  # centre, metres
    d: float  # depth, metres
    facing: int  # chair: direction a seated person faces (+1 right, -1 left); table: unused
    color: tuple
    width: float  # metres along x
    seat_h: float = 0.46  # chair seat / table top height, metres


@dataclass(frozen=True)
class Prop:
    """A movable object: a box or a ball, with its colour name (used in sentences)."""

    pid: int  # index among the scene's props
    kind: str  # "box" | "ball"
    color_name: str
    color: tuple
    size: float  # box edge / ball diameter, metres
    x: float  # initial floor position
    d: float


@dataclass(frozen=True)
class Person:
    """One actor: looks (for attributes and drawing) and how they move."""

    pid: int
    shirt_name: str  # colour name of the shirt, e.g. "red"
    shirt: tuple
    pants: tuple
    skin: tuple
    hair: tuple
    height: float  # metres
    size_name: str  # "tall" | "short"
    speed: float  # walking speed, m/s


@dataclass(frozen=True)
class WallItem:
    """Something on the back wall: window, lamp, switch, picture, clock, tv."""

    kind: str
    x: float  # centre
    h: float  # centre height
    width: float
    height: float
    color: tuple = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Lighting:
    """Global light and sensor: the room light multiplies every pixel."""

    on_gain: float  # brightness with the light on
    off_gain: float  # brightness with the light off (daylight only)
    tint: tuple  # per-channel white balance
    noise: float  # sensor noise standard deviation (0..1 scale)
    jitter: float  # camera shake amplitude, pixels
    vignette: float  # darkening towards the corners, 0..1


@dataclass(frozen=True)
class Scene:
    """Everything static about one video: the room, furniture, props, people, lighting."""

    wall: tuple
    wall_texture: str  # "plain" | "stripes" | "dots" | "bricks" | "panels"
    floor: tuple
    floor_texture: str  # "planks" | "tiles" | "carpet"
    door: Door
    switch: WallItem
    wall_items: tuple[WallItem, ...]  # lamp, window, pictures, clock, tv
    chair: Furniture
    table: Furniture
    props: tuple[Prop, ...]
    people: tuple[Person, ...]
    distractors: tuple[str, ...]  # moving things that are not actions: "clouds", "tv", "clock", "fan"
    fan_x: float  # where the floor fan stands (if any)
    light_on: bool  # light state at t = 0
    door_open: bool  # door state at t = 0
    lighting: Lighting
    texture_seed: int = 0  # seeds the wall/floor texture noise

    def item(self, kind: str) -> WallItem | None:
        return next((w for w in self.wall_items if w.kind == kind), None)


@dataclass
class _Slots:
    """Non-overlapping x intervals on the back wall or floor, for placing things."""

    lo: float
    hi: float
    taken: list = field(default_factory=list)

    def take(self, a: float, b: float) -> None:
        self.taken.append((a, b))

    def place(self, rng: np.random.Generator, width: float, gap: float = 0.1) -> float | None:
        """A random centre where ``width`` fits between the taken intervals, or None when nothing fits."""
        lo, hi = self.lo + width / 2, self.hi - width / 2
        if hi < lo:
            return None
        fits = [float(x) for x in np.linspace(lo, hi, 64)
                if all(x + width / 2 + gap <= s or x - width / 2 - gap >= e for s, e in self.taken)]
        if not fits:
            return None
        x = fits[int(rng.integers(len(fits)))]
        self.take(x - width / 2, x + width / 2)
        return x


def make_scene(rng: np.random.Generator) -> Scene:
    """Sample a room with a door, a light, a chair, a table, boxes, balls and one or two people."""
    wall_slots = _Slots(-ROOM.half_width + 0.15, ROOM.half_width - 0.15)
    door = _make_door(rng)
    wall_slots.take(door.center_x - door.width / 2 - 0.1, door.center_x + door.width / 2 + 0.1)
    switch = WallItem("switch", door.center_x + door.side * (door.width / 2 + 0.3), 1.25, 0.09, 0.14,
                      palette.jitter(rng, (0.92, 0.92, 0.88), 0.03))
    wall_slots.take(switch.x - 0.1, switch.x + 0.1)
    floor_slots = _Slots(-2.1, 2.1)
    reach = (door.hinge_x - door.side * 0.15, door.hinge_x + door.side * 1.85)  # door swing, door and switch spots
    floor_slots.take(min(reach), max(reach))
    distractors = _pick_distractors(rng)
    wall_items = _make_wall_items(rng, wall_slots, distractors)
    chair_slots = _Slots(floor_slots.lo, floor_slots.hi, list(floor_slots.taken))  # only the door's reach
    table = _make_table(rng, floor_slots, door)
    chair = _make_chair(rng, chair_slots, table)
    floor_slots.take(chair.x - 0.3, chair.x + 0.3)
    fan_x = floor_slots.place(rng, 0.4) if "fan" in distractors else None
    if fan_x is None:
        distractors = tuple(k for k in distractors if k != "fan")
    lighting = Lighting(
        on_gain=float(rng.uniform(0.95, 1.08)), off_gain=float(rng.uniform(0.35, 0.55)),
        tint=tuple(float(v) for v in rng.uniform(0.92, 1.08, 3)), noise=float(rng.uniform(0.004, 0.025)),
        jitter=float(rng.uniform(0.0, 1.2)), vignette=float(rng.uniform(0.0, 0.3)))
    return Scene(
        wall=palette.jitter(rng, palette.pick(rng, palette.WALLS)),
        wall_texture=palette.pick(rng, ("plain", "stripes", "dots", "bricks", "panels")),
        floor=palette.jitter(rng, palette.pick(rng, palette.FLOORS)),
        floor_texture=palette.pick(rng, ("planks", "tiles", "carpet")),
        door=door, switch=switch, wall_items=wall_items, chair=chair, table=table,
        props=_make_props(rng, (chair, table)), people=_make_people(rng), distractors=distractors,
        fan_x=float(fan_x or 0.0), light_on=bool(rng.random() < 0.7), door_open=bool(rng.random() < 0.35),
        lighting=lighting, texture_seed=int(rng.integers(2**31)))


def _make_door(rng: np.random.Generator) -> Door:
    center = float(rng.uniform(-1.35, 1.35))
    outwards = 1 if center > 0 else -1  # the free edge mostly faces the nearer side wall: more floor left
    return Door(center_x=center, side=outwards if rng.random() < 0.7 else -outwards,
                color=palette.jitter(rng, palette.pick(rng, palette.WOODS)),
                frame_color=palette.jitter(rng, (0.93, 0.92, 0.88), 0.05),
                width=float(rng.uniform(0.82, 0.95)), height=float(rng.uniform(1.95, 2.1)))


def _pick_distractors(rng: np.random.Generator) -> tuple[str, ...]:
    chosen = ["clouds"] if rng.random() < 0.8 else []
    for kind, p in (("tv", 0.45), ("clock", 0.5), ("fan", 0.35)):
        if rng.random() < p:
            chosen.append(kind)
    return tuple(chosen)


def _make_wall_items(rng: np.random.Generator, slots: _Slots, distractors) -> tuple[WallItem, ...]:
    items = []
    wants = [("lamp", 0.22, 2.05, 0.22), ("window", rng.uniform(0.8, 1.2), 1.55, 0.9),
             ("picture", rng.uniform(0.4, 0.7), 1.6, 0.45)]
    if "tv" in distractors:
        wants.append(("tv", 0.7, 1.45, 0.42))
    if "clock" in distractors:
        wants.append(("clock", 0.26, 1.95, 0.55))
    for kind, w, h, hh in wants:
        x = slots.place(rng, float(w))
        if x is None and kind in ("lamp", "window"):
            x = float(rng.uniform(-2.0, 2.0))  # always have a lamp and a window, even if they overlap
        if x is not None:
            color = palette.jitter(rng, palette.NAMED[palette.pick(rng, palette.BOX_COLORS)], 0.2)
            items.append(WallItem(kind, x, float(h), float(w), float(hh), color))
    return tuple(items)


def _make_table(rng: np.random.Generator, slots: _Slots, door: Door) -> Furniture:
    """A table against the back wall, clear of the door and the places people stand to use it."""
    color = palette.jitter(rng, palette.pick(rng, palette.WOODS))
    d = float(rng.uniform(5.35, 5.6))
    for w in (float(rng.uniform(0.8, 1.05)), 0.7):
        x = slots.place(rng, w)
        if x is not None:
            return Furniture("table", x, d, 1, color, w, 0.74)
    x = -np.sign(door.center_x or 1.0) * (slots.hi - 0.35)  # rare: as far from the door as possible
    return Furniture("table", float(x), d, 1, color, 0.7, 0.74)


def _make_chair(rng: np.random.Generator, slots: _Slots, table: Furniture) -> Furniture:
    """A chair facing left or right, clear of the door's reach; pulled up in front of the table when
    it stands at the table, and in front of the door only when there is no room beside it."""
    color = palette.jitter(rng, palette.pick(rng, palette.WOODS))
    facing = int(rng.choice([-1, 1]))
    x = slots.place(rng, 0.6, gap=0.15)
    if x is None:
        x, d = float(rng.uniform(-1.6, 1.6)), float(rng.uniform(4.3, 4.5))
        return Furniture("chair", x, d, facing, color, 0.45, 0.46)
    at_table = abs(x - table.x) < table.width / 2 + 0.35
    d = float(rng.uniform(4.5, 4.85)) if at_table else float(rng.uniform(4.5, 5.1))
    return Furniture("chair", x, d, facing, color, 0.45, 0.46)


def _make_props(rng: np.random.Generator, furniture: tuple[Furniture, ...]) -> tuple[Prop, ...]:
    n_box, n_ball = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    box_colors = rng.permutation(len(palette.BOX_COLORS))[:n_box]
    ball_colors = rng.permutation(len(palette.BALL_COLORS))[:n_ball]
    specs = [("box", palette.BOX_COLORS[i], rng.uniform(0.28, 0.4)) for i in box_colors]
    specs += [("ball", palette.BALL_COLORS[i], rng.uniform(0.2, 0.26)) for i in ball_colors]
    props = []
    for pid, (kind, name, size) in enumerate(specs):
        x, d = _free_floor_spot(rng, furniture)
        props.append(Prop(pid, kind, name, palette.jitter(rng, palette.NAMED[name], 0.05), float(size), x, d))
    return tuple(props)


def _free_floor_spot(rng: np.random.Generator, furniture: tuple[Furniture, ...]) -> tuple[float, float]:
    """A floor position in view (for 4:3 and wider frames) and not under a chair or table."""
    for _ in range(30):
        d = float(rng.uniform(4.3, 5.4))
        x = float(rng.uniform(-1.0, 1.0)) * min(1.9, 0.47 * d - 0.3)
        if all(abs(x - f.x) > f.width / 2 + 0.3 or not (f.d - 0.3 < d < f.d + 0.8) for f in furniture):
            return x, d
    return x, d


def _make_people(rng: np.random.Generator) -> tuple[Person, ...]:
    n = 1 if rng.random() < 0.5 else 2
    shirts = rng.permutation(len(palette.SHIRT_COLORS))[:n]
    sizes = ["tall", "short"] if rng.random() < 0.5 else ["short", "tall"]
    if n == 1 or rng.random() < 0.25:
        sizes = [palette.pick(rng, ("tall", "short")) for _ in range(n)]
    people = []
    for pid in range(n):
        h = rng.uniform(1.76, 1.92) if sizes[pid] == "tall" else rng.uniform(1.48, 1.62)
        people.append(Person(
            pid=pid, shirt_name=palette.SHIRT_COLORS[shirts[pid]],
            shirt=palette.jitter(rng, palette.NAMED[palette.SHIRT_COLORS[shirts[pid]]], 0.05),
            pants=palette.jitter(rng, palette.pick(rng, palette.PANTS)),
            skin=palette.jitter(rng, palette.pick(rng, palette.SKIN), 0.03),
            hair=palette.jitter(rng, palette.pick(rng, palette.HAIR)),
            height=float(h), size_name=sizes[pid], speed=float(rng.uniform(0.75, 1.35))))
    return tuple(people)
