"""`vidseek synth`: render a synthetic video dataset with exact moment annotations."""

from __future__ import annotations

import re
import time
from dataclasses import asdict
from pathlib import Path

import click

OPTION_OF = {  # SynthConfig field -> the option a user types
    "fps": "--fps", "width": "--size", "height": "--size", "min_duration": "--min-duration",
    "max_duration": "--max-duration", "container": "--container", "crf": "--crf", "split": "--split",
    "sentences_per_action": "--sentences-per-action",
}


def _parse_size(ctx, param, value: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", value or "")
    if not m:
        raise click.BadParameter(f"expected WIDTHxHEIGHT such as 160x120, got {value!r}")
    return int(m.group(1)), int(m.group(2))


def _parse_split(ctx, param, value: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise click.BadParameter(f"expected three fractions TRAIN,VAL,TEST such as 0.7,0.15,0.15, got {value!r}")
    return parts


def _check_out_dir(out_dir: Path) -> None:
    """Fail early, before any rendering, when OUT_DIR cannot be created or written."""
    try:
        (out_dir / "videos").mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".vidseek-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise click.ClickException(f"cannot write to OUT_DIR {str(out_dir)!r}: {e.strerror or e}. "
                                   "Choose a directory you can write to.") from None


@click.command("synth")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--videos", "n_videos", type=int, required=True, help="Number of videos to render (>= 1).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Dataset seed; video i depends only on (seed, i) and the settings.")
@click.option("--min-duration", type=float, default=10.0, show_default=True, help="Shortest video, seconds.")
@click.option("--max-duration", type=float, default=60.0, show_default=True, help="Longest video, seconds.")
@click.option("--fps", type=float, default=15.0, show_default=True, help="Frames per second.")
@click.option("--size", default="160x120", show_default=True, callback=_parse_size,
              help="Frame size WIDTHxHEIGHT (even numbers).")
@click.option("--split", default="0.7,0.15,0.15", show_default=True, callback=_parse_split,
              help="Train, val and test fractions of the videos.")
@click.option("--container", type=click.Choice(["mp4", "mkv", "webm"]), default="mp4", show_default=True,
              help="mp4 and mkv hold H.264, webm holds VP9.")
@click.option("--crf", type=int, default=23, show_default=True, help="Encoder quality (lower is better).")
@click.option("--sentences-per-action", type=int, default=3, show_default=True,
              help="Distinct sentences written per action.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Videos rendered in parallel processes.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
@click.option("--state-features", "state_rate", type=click.FloatRange(min=0.1), default=None, metavar="RATE",
              help="Also write scene-state features at RATE steps/s to state_features/<vid>.npy "
                   "(a perfect-perception stand-in for training grounding models without a visual encoder).")
def synth_cmd(out_dir: Path, n_videos: int, seed: int, min_duration: float, max_duration: float, fps: float,
              size: tuple[int, int], split: tuple[float, float, float], container: str, crf: int,
              sentences_per_action: int, workers: int, progress: bool, state_rate: float | None) -> None:
    """Render N synthetic videos of people acting in a room, with exact moment annotations, into OUT_DIR.

    Writes videos/<vid>.mp4, train/val/test.jsonl, the compositional split comp_*.jsonl,
    Charades-STA files charades_*.txt with charades.json, and manifest.json.
    """
    from vidseek.synth.config import SynthConfig
    from vidseek.synth.writer import render_dataset

    if n_videos < 1:
        raise click.BadParameter(f"must be at least 1, got {n_videos}", param_hint="--videos")
    fields = dict(fps=fps, width=size[0], height=size[1], min_duration=min_duration, max_duration=max_duration,
                  container=container, crf=crf, split=split, sentences_per_action=sentences_per_action)
    problems = SynthConfig.problems(**{**asdict(SynthConfig()), **fields})
    if problems:
        field, msg = problems[0]
        raise click.BadParameter(msg, param_hint=OPTION_OF.get(field, field))
    config = SynthConfig(**fields)
    _check_out_dir(out_dir)
    t0 = time.perf_counter()
    manifest = render_dataset(out_dir, n_videos, seed=seed, config=config, workers=workers, progress=progress)
    wall = time.perf_counter() - t0
    total = sum(v["duration"] for v in manifest["videos"])
    n_actions = sum(len(v["actions"]) for v in manifest["videos"])
    click.echo(f"wrote {n_videos} videos ({total:.0f} s of video, {n_actions} actions) to {out_dir} "
               f"in {wall:.1f} s ({total / max(wall, 1e-9):.1f}x real time with {workers} worker(s))")
    if state_rate is not None:
        _write_state_features(out_dir, n_videos, seed, config, state_rate)


def _write_state_features(out_dir: Path, n_videos: int, seed: int, config, rate: float) -> None:
    import numpy as np

    from vidseek.synth.features import STATE_DIM, state_features
    from vidseek.synth.video import make_video

    folder = out_dir / "state_features"
    folder.mkdir(exist_ok=True)
    for i in range(n_videos):
        video = make_video(seed, i, config)
        np.save(folder / f"{video.vid}.npy", state_features(video, rate))
    click.echo(f"wrote scene-state features ({STATE_DIM} dims, {rate:g} steps/s) of {n_videos} videos to {folder}")
