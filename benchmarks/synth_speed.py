"""How fast `vidseek synth` renders, on one core: x real time per video (median and p95) and per stage.

    python benchmarks/synth_speed.py --videos 12                  # default settings (160x120, 15 fps)
    python benchmarks/synth_speed.py --contact-sheet docs/synth-contact-sheet.png

Each video is planned, rendered, encoded (H.264, the dataset's settings) and annotated exactly as
`vidseek synth` does, after one warm-up video. The process is pinned to one CPU core where the OS
allows it (Linux), and x264 runs single-threaded anyway.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from vidseek.bench.report import cpu_name


def time_one(seed: int, index: int, config, out: Path) -> dict:
    """Seconds spent planning, rendering, encoding and annotating one video, and its duration."""
    from vidseek.synth import Renderer, annotate, make_video
    from vidseek.synth.writer import encode_video

    t0 = time.perf_counter()
    video = make_video(seed, index, config)
    renderer = Renderer(video)
    t1 = time.perf_counter()
    frames = [renderer.frame(i) for i in range(video.n_frames)]
    t2 = time.perf_counter()
    encode_video(out / f"{video.vid}{config.suffix}", frames, video.fps, video.width, video.height,
                 config.container, config.crf)
    t3 = time.perf_counter()
    annotate(video, config.sentences_per_action)
    t4 = time.perf_counter()
    return {"duration": video.duration, "plan": t1 - t0, "render": t2 - t1, "encode": t3 - t2,
            "annotate": t4 - t3, "total": t4 - t0}


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(int(round(q * (len(xs) - 1))), len(xs) - 1)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=12, help="videos to time (after one warm-up)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-duration", type=float, default=10.0)
    ap.add_argument("--max-duration", type=float, default=60.0)
    ap.add_argument("--size", default="160x120")
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--contact-sheet", type=Path, help="also write a contact sheet PNG here")
    args = ap.parse_args(argv)

    from vidseek.synth import SynthConfig, contact_sheet

    w, h = (int(v) for v in args.size.lower().split("x"))
    config = SynthConfig(fps=args.fps, width=w, height=h, min_duration=args.min_duration,
                         max_duration=args.max_duration)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    with tempfile.TemporaryDirectory() as tmp:
        time_one(args.seed, 10_000, config, Path(tmp))  # warm-up: imports, codec start
        rows = [time_one(args.seed, i, config, Path(tmp)) for i in range(args.videos)]
    speed = [r["duration"] / r["total"] for r in rows]
    video_s = sum(r["duration"] for r in rows)
    print(f"machine: {cpu_name()}, 1 core, Python {platform.python_version()}")
    print(f"settings: {w}x{h} @ {args.fps:g} fps, {args.min_duration:g}-{args.max_duration:g} s videos, "
          f"{config.container} crf {config.crf}")
    print(f"{len(rows)} videos, {video_s:.0f} s of video")
    print(f"x real time per video: median {statistics.median(speed):.1f}  p5 {_pct(speed, 0.05):.1f}  "
          f"p95 {_pct(speed, 0.95):.1f}")
    for stage in ("plan", "render", "encode", "annotate"):
        share = sum(r[stage] for r in rows) / sum(r["total"] for r in rows)
        fps = sum(r["duration"] * args.fps for r in rows) / max(sum(r[stage] for r in rows), 1e-9)
        print(f"  {stage:9s} {100 * share:5.1f} % of the time, {fps:8.0f} frames/s")
    if args.contact_sheet:
        sheet = contact_sheet(args.contact_sheet, seed=args.seed, n_videos=4, frames_per_video=5,
                              config=SynthConfig(min_duration=20.0, max_duration=40.0), start_index=4)
        print(f"wrote {args.contact_sheet} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
