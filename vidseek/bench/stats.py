"""Timing and memory primitives of the benchmark: repeated measurement, percentiles, memory.

Every latency is wall-clock time from ``time.perf_counter``; summaries are in milliseconds.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Stats:
    """Summary of ``n`` timed repetitions, in milliseconds; ``per_s`` is repetitions per second of
    total measured time (the sequential throughput)."""

    n: int
    p50: float
    p95: float
    p99: float
    mean: float
    min: float
    max: float
    per_s: float

    def to_dict(self) -> dict[str, float]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def summarise(seconds: list[float] | np.ndarray) -> Stats:
    """``Stats`` of a list of durations in seconds (at least one)."""
    x = np.asarray(seconds, np.float64) * 1e3
    if x.size == 0:
        raise ValueError("no measurements to summarise")
    total = float(x.sum())
    p50, p95, p99 = (float(v) for v in np.percentile(x, [50, 95, 99]))
    return Stats(int(x.size), p50, p95, p99, float(x.mean()), float(x.min()), float(x.max()),
                 x.size / (total / 1e3) if total > 0 else float("inf"))


def measure(fn: Callable[[], Any], warmup: int, repeat: int) -> Stats:
    """Call ``fn()`` ``warmup`` times untimed, then ``repeat`` times timed one by one."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return summarise(samples)


def rss_bytes() -> dict[str, int]:
    """This process's resident memory now (``rss``) and its peak so far (``peak``), in bytes
    (/proc/self/status; ``getrusage`` for the peak where /proc is missing)."""
    out = {"rss": 0, "peak": 0}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss"] = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                out["peak"] = int(line.split()[1]) * 1024
    except OSError:
        out["peak"] = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    return out


def folder_bytes(path: str | Path) -> int:
    """Total size of the regular files under ``path`` (0 when it does not exist)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    if not path.is_dir():
        return 0
    total = 0
    for p in path.rglob("*"):
        if p.is_file():
            total += p.stat().st_size
    return total
