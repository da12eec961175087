"""Named colours. Names are what sentences say ("the red box"), so each must look like its name."""

from __future__ import annotations

import numpy as np

# Attribute colours: shirts, boxes and balls. Kept far apart in hue so the name is unambiguous.
NAMED = {
    "red": (0.82, 0.14, 0.12),
    "blue": (0.13, 0.30, 0.85),
    "green": (0.15, 0.62, 0.20),
    "yellow": (0.95, 0.82, 0.12),
    "orange": (0.96, 0.50, 0.08),
    "purple": (0.52, 0.20, 0.68),
    "white": (0.93, 0.93, 0.93),
    "black": (0.10, 0.10, 0.11),
}
SHIRT_COLORS = ("red", "blue", "green", "yellow", "orange", "purple", "white", "black")
BOX_COLORS = ("red", "blue", "green", "yellow", "orange", "purple")
BALL_COLORS = ("red", "blue", "green", "yellow", "orange", "white")

SKIN = ((0.95, 0.78, 0.62), (0.85, 0.64, 0.47), (0.67, 0.47, 0.32), (0.45, 0.31, 0.21))
HAIR = ((0.10, 0.07, 0.05), (0.35, 0.22, 0.10), (0.75, 0.60, 0.30), (0.55, 0.55, 0.55))
PANTS = ((0.15, 0.18, 0.30), (0.25, 0.25, 0.27), (0.40, 0.33, 0.22), (0.10, 0.10, 0.12))

WALLS = ((0.86, 0.83, 0.74), (0.74, 0.80, 0.84), (0.80, 0.86, 0.76), (0.88, 0.78, 0.72), (0.70, 0.70, 0.72))
FLOORS = ((0.55, 0.40, 0.25), (0.62, 0.50, 0.36), (0.45, 0.45, 0.47), (0.68, 0.62, 0.52), (0.36, 0.26, 0.18))
WOODS = ((0.55, 0.36, 0.20), (0.44, 0.28, 0.16), (0.70, 0.52, 0.33), (0.85, 0.82, 0.76))


def jitter(rng: np.random.Generator, color, amount: float = 0.06) -> tuple[float, float, float]:
    """A colour varied slightly per video, so no model can key on one exact pixel value."""
    c = np.clip(np.asarray(color) * (1.0 + rng.uniform(-amount, amount, 3)), 0.0, 1.0)
    return tuple(float(v) for v in c)


def pick(rng: np.random.Generator, options):
    """One element of a sequence, chosen by rng."""
    return options[int(rng.integers(len(options)))]
