"""What an index was built with: one ``IndexSettings`` object, stored in the catalog's ``settings`` table.

The clip windows of a video follow from three of its fields (rate, window, stride), so they are
computed here and nowhere else: ``settings.windows(steps)`` and ``settings.n_windows(steps)``.

>>> s = IndexSettings(rate=1.0, window_s=10.0, stride_s=5.0)
>>> s.windows(23), s.n_windows(23)
([(0, 10), (5, 15), (10, 20), (13, 23)], 4)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

# The catalog's settings keys are these field names; values are stored as JSON.
SETTING_ROOT = "root"
SETTING_FINGERPRINT = "fingerprint"
SETTING_WINDOW_S = "window_s"
SETTING_STRIDE_S = "stride_s"
SETTING_RATE = "rate"
SETTING_DIM = "dim"
SETTING_STATE_DIM = "state_dim"


@dataclass(frozen=True)
class IndexSettings:
    """The settings of one index; a field is None until the first indexing run sets it."""

    root: str | None = None  # absolute path of the library root the catalog's paths are relative to
    fingerprint: str | None = None  # Bundle.fingerprint of the model the index was built with
    bundle: str | None = None  # the bundle folder it was built with
    model: str | None = None  # the --model choice that re-creates that bundle (builtin, clip:...), if any
    window_s: float | None = None  # clip window length, seconds
    stride_s: float | None = None  # clip window stride, seconds
    rate: float | None = None  # feature steps per second
    dim: int | None = None  # clip embedding dimension E (cache/<id>.clips.npy is (windows, E))
    state_dim: int | None = None  # video encoder state dimension H (cache/<id>.states.npy is (steps, H))
    states: str | None = None  # how states are stored: float16, int8 or int4 (None: float16, an older index)
    clips_crc32: int | None = None  # CRC-32 of clips.faiss as the writer saved it (a mismatch: damaged, rebuilt)
    clips_crc32_next: int | None = None  # that of the clips.faiss being saved: recorded before it replaces the file

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> IndexSettings:
        """The settings from the catalog's key -> value table (unknown keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in stored.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def has_windows(self) -> bool:
        """Whether rate, window and stride are known (an index that was indexed into)."""
        return None not in (self.rate, self.window_s, self.stride_s)

    def windows(self, steps: int) -> list[tuple[int, int]]:
        """The clip windows ``(start_step, end_step)`` of a video of ``steps`` feature steps."""
        if not self.has_windows:
            raise ValueError("the index records no clip windows yet (rate, window_s, stride_s): it was never indexed into")
        return windows(steps, float(self.rate), float(self.window_s), float(self.stride_s))

    def n_windows(self, steps: int) -> int:
        """How many clip windows a video of ``steps`` feature steps has (its rows in ``<id>.clips.npy``)."""
        return len(self.windows(steps))


def windows(n_steps: int, rate: float, length_s: float, stride_s: float) -> list[tuple[int, int]]:
    """Windows ``(start_step, end_step)`` covering all ``n_steps`` steps sampled at ``rate`` steps/s.

    ``end_step`` is exclusive: ``states[start:end]`` is the window, spanning ``start / rate`` to
    ``end / rate`` seconds (unlike the inclusive index spans of ``vidseek.spans``). Windows are
    ``round(length_s * rate)`` steps long and start every ``round(stride_s * rate)`` steps; the last
    one is aligned to the end of the video, and a video shorter than one window gets one window.

    >>> windows(23, 1.0, 10, 5)
    [(0, 10), (5, 15), (10, 20), (13, 23)]
    >>> windows(20, 1.0, 10, 5)
    [(0, 10), (5, 15), (10, 20)]
    >>> windows(4, 5.0, 4.0, 2.0)
    [(0, 4)]
    >>> windows(0, 5.0, 4.0, 2.0)
    []
    """
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    if not (rate > 0 and length_s > 0 and stride_s > 0):
        raise ValueError(f"rate, length_s and stride_s must be > 0, got {rate}, {length_s}, {stride_s}")
    if stride_s > length_s:
        raise ValueError(f"stride {stride_s} s is longer than the window {length_s} s, which would leave "
                         "parts of the video in no window; use a stride <= the window length")
    length = max(1, round(length_s * rate))
    stride = max(1, min(length, round(stride_s * rate)))
    if n_steps == 0:
        return []
    if n_steps <= length:
        return [(0, n_steps)]
    out = [(s, s + length) for s in range(0, n_steps - length + 1, stride)]
    if out[-1][1] < n_steps:
        out.append((n_steps - length, n_steps))
    return out
