"""How fast the engine decodes and samples video: steps/s and x real time per decoder and file.

    python benchmarks/decode_speed.py                              # the asset clips, 112x84 and native size
    python benchmarks/decode_speed.py --sizes 112x84,clip --runs 5 VIDEO ...

Each (file, decoder, size) is timed as ``sample_frames`` end to end (open, index, decode, skip,
convert, resize) after one warm-up run; the table shows the median of ``--runs`` runs. ``naive``
is the baseline a plain PyAV loop gives (every frame decoded *and* converted to RGB, then the
needed ones kept), so the ``vs naive`` column is the gain of skipping conversion. A decoder that
fails on a file is reported and the run goes on.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from vidseek.bench.report import cpu_name

ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets" / "videos"


def naive_sample(path: Path, rate: float, size):
    """Decode and convert every frame with PyAV, keep the one nearest each step centre (the baseline)."""
    import av
    import numpy as np

    from vidseek.engine.video import probe, step_frame_indices, step_times

    info = probe(path, "pyav")
    w, h = size(info.width, info.height) if callable(size) else (size or (info.width, info.height))
    kw = {} if (w, h) == (info.width, info.height) else {"width": w, "height": h, "interpolation": "BILINEAR"}
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        frames = [f.to_ndarray(format="rgb24", **kw) for f in c.decode(s)]
    idx = step_frame_indices(step_times(info.duration, rate), np.arange(len(frames)) / info.fps)
    return np.stack([frames[i] for i in idx])


def time_one(path: Path, decoder: str, rate: float, size) -> tuple[float, int, float]:
    """Seconds to sample one file, its number of steps and its duration."""
    from vidseek.engine.video import sample_frames

    t0 = time.perf_counter()
    if decoder == "naive":
        frames = naive_sample(path, rate, size)
        steps, duration = len(frames), None
    else:
        v = sample_frames(path, rate=rate, size=size, decoder=decoder)
        steps, duration = len(v.times), v.info.duration
    return time.perf_counter() - t0, steps, duration


def parse_size(text: str):
    from vidseek.engine.preprocess import CLIP_SPEC

    if text == "native":
        return None
    if text == "clip":
        return CLIP_SPEC.decode_size
    w, h = text.lower().split("x")
    return int(w), int(h)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("videos", nargs="*", type=Path, help=f"video files (default: every file in {ASSETS})")
    ap.add_argument("--decoders", default="decord,pyav,naive", help="comma-separated: decord, pyav, auto, naive")
    ap.add_argument("--sizes", default="112x84,native", help="comma-separated: WxH, clip (224 shorter side), native")
    ap.add_argument("--rate", type=float, default=5.0, help="steps per second")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per cell (after one warm-up)")
    args = ap.parse_args(argv)

    import warnings

    from vidseek.engine.video import probe

    warnings.simplefilter("ignore")
    videos = args.videos or sorted(p for p in ASSETS.glob("*") if p.is_file())
    decoders = args.decoders.split(",")
    decoders.sort(key=lambda b: b != "naive")  # the baseline first, so each row can show its ratio
    if not videos:
        print(f"no videos given and none found in {ASSETS}", file=sys.stderr)
        return 1
    print(f"# decode speed: {cpu_name()}, {os.cpu_count()} logical CPUs, python {platform.python_version()}, "
          f"rate {args.rate:g} steps/s, median of {args.runs} runs after 1 warm-up")
    print(f"{'file':40s} {'src':>9s} {'sec':>5s} {'steps':>5s} {'size':>7s} {'decoder':>7s} "
          f"{'median s':>8s} {'steps/s':>8s} {'x real':>7s} {'vs naive':>8s}")
    totals: dict[tuple[str, str], list[float]] = {}
    for path in videos:
        try:
            info = probe(path)
        except Exception as e:  # report and go on
            print(f"{path.name:40s} cannot probe: {e}")
            continue
        for size_text in args.sizes.split(","):
            size = parse_size(size_text)
            medians: dict[str, float] = {}
            for decoder in decoders:
                try:
                    time_one(path, decoder, args.rate, size)  # warm-up: file cache, imports, decoder init
                    runs = [time_one(path, decoder, args.rate, size) for _ in range(args.runs)]
                except Exception as e:
                    print(f"{path.name:40s} {size_text:>7s} {decoder:>7s} failed: {str(e).splitlines()[0][:80]}")
                    continue
                med = statistics.median(r[0] for r in runs)
                steps = runs[0][1]
                medians[decoder] = med
                tot = totals.setdefault((size_text, decoder), [0.0, 0.0, 0.0])
                tot[0] += med
                tot[1] += steps
                tot[2] += info.duration
                ratio = f"{medians['naive'] / med:.2f}x" if "naive" in medians and decoder != "naive" else ""
                print(f"{path.name[:40]:40s} {info.width:>4d}x{info.height:<4d} {info.duration:5.1f} {steps:5d} "
                      f"{size_text:>7s} {decoder:>7s} {med:8.3f} {steps / med:8.1f} {info.duration / med:7.1f} "
                      f"{ratio:>8s}")
    print("\n# all files together")
    print(f"{'size':>7s} {'decoder':>7s} {'seconds':>8s} {'steps/s':>8s} {'x real':>7s}")
    for (size_text, decoder), (secs, steps, dur) in totals.items():
        print(f"{size_text:>7s} {decoder:>7s} {secs:8.2f} {steps / secs:8.1f} {dur / secs:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
