"""Settings shared by the synthetic world: what a dataset is rendered with."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from types import SimpleNamespace

RENDERER_VERSION = "synth-1.0"  # bump whenever frames or annotations for a seed change

CONTAINERS = {  # container -> (file suffix, codec, pixel format)
    "mp4": (".mp4", "libx264", "yuv420p"),
    "mkv": (".mkv", "libx264", "yuv420p"),
    "webm": (".webm", "libvpx-vp9", "yuv420p"),
}


@dataclass(frozen=True)
class SynthConfig:
    """How every video of a dataset is rendered and annotated."""

    fps: float = 15.0  # frames per second of the written videos
    width: int = 160  # frame width in pixels (even, for yuv420p)
    height: int = 120  # frame height in pixels (even)
    min_duration: float = 10.0  # shortest video, seconds
    max_duration: float = 60.0  # longest video, seconds
    container: str = "mp4"  # one of CONTAINERS
    crf: int = 23  # encoder quality (lower = better); fixed so decoded frames are reproducible
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)  # train / val / test fractions
    sentences_per_action: int = 3  # distinct sentences written for every action

    def __post_init__(self) -> None:
        problems = self.problems(**asdict(self))
        if problems:
            raise ValueError("invalid SynthConfig: " + "; ".join(msg for _, msg in problems))

    @staticmethod
    def problems(**fields) -> list[tuple[str, str]]:
        """(field, message) for every reason a configuration with these fields cannot be rendered.

        >>> SynthConfig.problems(**{**asdict(SynthConfig()), "width": 161})
        [('width', 'width must be an even number of pixels in [32, 4096], got 161')]
        """
        self = SimpleNamespace(**fields)
        out = []
        if not (1.0 <= self.fps <= 120.0):
            out.append(("fps", f"fps must be in [1, 120], got {self.fps}"))
        for name, v in (("width", self.width), ("height", self.height)):
            if v < 32 or v > 4096 or v % 2:
                out.append((name, f"{name} must be an even number of pixels in [32, 4096], got {v}"))
        if self.min_duration < MIN_VIDEO_SECONDS:
            out.append(("min_duration", f"min_duration must be >= {MIN_VIDEO_SECONDS} s, got {self.min_duration}"))
        if self.max_duration < self.min_duration:
            out.append(("max_duration", f"max_duration ({self.max_duration} s) is below min_duration "
                                        f"({self.min_duration} s)"))
        if self.max_duration > MAX_VIDEO_SECONDS:
            out.append(("max_duration", f"max_duration must be <= {MAX_VIDEO_SECONDS} s, got {self.max_duration}"))
        if self.container not in CONTAINERS:
            out.append(("container", f"container must be one of {sorted(CONTAINERS)}, got {self.container!r}"))
        if not (0 <= self.crf <= 63):
            out.append(("crf", f"crf must be in [0, 63], got {self.crf}"))
        if len(self.split) != 3 or min(self.split) < 0 or abs(sum(self.split) - 1.0) > 1e-6:
            out.append(("split", f"split must be three non-negative fractions summing to 1, got {self.split}"))
        if self.sentences_per_action < 1:
            out.append(("sentences_per_action", f"sentences_per_action must be >= 1, got {self.sentences_per_action}"))
        return out

    @property
    def suffix(self) -> str:
        return CONTAINERS[self.container][0]

    def to_json(self) -> dict:
        d = asdict(self)
        d["split"] = list(self.split)
        return d


MIN_VIDEO_SECONDS = 8.0  # room for three actions of at least a second with approaches and idles
MAX_VIDEO_SECONDS = 3600.0
