"""The fixed camera and room geometry: world metres to image pixels.

World coordinates: ``x`` metres across the room (0 = centre, + = right), ``d`` metres of depth from
the camera (the back wall is at ``ROOM.back``), ``h`` metres above the floor. The camera is a pinhole
with a vertical lens shift, looking at the back wall from high up, like a wall-mounted camera:

    X = cx + f * x / d          Y = y_h + f * (cam_h - h) / d

>>> cam = Camera.for_size(160, 120)
>>> X, Y = cam.project(0.0, ROOM.back, 0.0)
>>> round(X), round(Y)
(80, 74)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Room:
    """Room size in metres; the camera stands at depth 0 on the centre line."""

    half_width: float = 2.5  # side walls at x = +-half_width
    back: float = 6.0  # depth of the back wall
    height: float = 2.7  # ceiling height
    near: float = 4.0  # nearest depth people and props use
    far: float = 5.75  # farthest depth people stand at (just in front of the back wall)


ROOM = Room()
CAM_HEIGHT = 2.4  # metres above the floor; the same for every image size


def to_plane(x: float, d: float, h: float, d_plane: float) -> tuple[float, float]:
    """Move a world point along its camera ray to depth ``d_plane`` -> (x, h) there.

    A hand in a figure's plane at ``d_plane`` aimed at the result touches the point in the image.
    """
    k = d_plane / d
    return x * k, CAM_HEIGHT - (CAM_HEIGHT - h) * k


@dataclass(frozen=True)
class Camera:
    """Pinhole camera with lens shift; all in pixels except ``height`` (metres)."""

    f: float  # focal length, pixels
    cx: float  # image x of the centre line
    y_h: float  # image y of the horizon (eye level)
    height: float = CAM_HEIGHT  # camera height above the floor, metres

    @classmethod
    def for_size(cls, width: int, height: int) -> "Camera":
        """The default framing: the back wall fills the top 62 % of the image, the floor the rest.

        The focal length follows the width for frames wider than 4:3 (the same part of the room is
        seen across, less floor and wall is seen up and down) and the height otherwise.
        """
        f = 1.4167 * max(height, 0.75 * width)
        return cls(f=f, cx=width / 2.0, y_h=0.62 * height - f * CAM_HEIGHT / ROOM.back)

    def shifted(self, dx: float, dy: float) -> "Camera":
        """The same camera with the image moved by (dx, dy) pixels (camera jitter, padding)."""
        return replace(self, cx=self.cx + dx, y_h=self.y_h + dy)

    def project(self, x, d, h):
        """World (x, d, h) -> image (X, Y); works on floats and numpy arrays alike."""
        s = self.f / d
        return self.cx + s * x, self.y_h + s * (self.height - h)

    def scale(self, d) -> float:
        """Pixels per metre at depth d."""
        return self.f / d

    def floor_point(self, X: np.ndarray, Y: np.ndarray):
        """Image points below the horizon -> floor (x, d); invalid (above horizon) give d = inf."""
        dy = Y - self.y_h
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(dy > 0, self.f * self.height / np.maximum(dy, 1e-9), np.inf)
        return (X - self.cx) * d / self.f, d

    def visible_x(self, d: float, margin: float = 0.0) -> float:
        """Largest |x| at depth d still in view with ``margin`` metres to spare (negative: beyond)."""
        return self.cx * d / self.f - margin
