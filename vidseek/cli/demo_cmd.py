"""`vidseek demo`: the main job in one command, on a fresh machine, with nothing but vidseek installed.

Renders a small synthetic library (once), indexes it with the built-in bundle, searches it, and
prints the moments found next to the ground truth the renderer knows. Torch-free.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import click

from vidseek.cli.common import user_errors
from vidseek.cli.search_cmd import echo_moments, no_match

NONSENSE = "qwzx blorft"  # made-up words: the calibrated score answers that nothing matches
PHRASE_QUERY = "the person in the red shirt picks up the ball"  # PLPNet: where each of its phrases is
DEMO_SEED = 2026  # a world the built-in bundle never saw (it was trained on seed 11, tested on 12)
QUERIES = {  # the demo's queries and the synthetic world's action each one names
    "person opens door": "open_door",
    "someone turns off the light": "turn_off_light",
    "a person sits down on the chair": "sit_down",
}


def this_command() -> str:
    """How to run this vidseek from the user's shell: ``vidseek`` when that name finds this very
    program (an activated environment, a pip install), else its path (``.venv/bin/vidseek`` after
    ``make demo``)."""
    me = Path(sys.argv[0])
    if me.name != "vidseek":  # run some other way (python -c, a test runner): the module path always works
        return f"{sys.executable} -c 'from vidseek.cli.main import cli; cli()'"
    found = shutil.which("vidseek")
    if found and Path(found).resolve() == me.resolve():
        return "vidseek"
    relative = os.path.relpath(me.resolve())
    return relative if not relative.startswith("..") else str(me.resolve())


def _iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    import numpy as np

    from vidseek.spans import temporal_iou_paired

    return float(temporal_iou_paired(np.array([a], float), np.array([b], float))[0])


def _truth(manifest: dict) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(video file name, verb) -> the moments the renderer recorded."""
    out: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for v in manifest["videos"]:
        for a in v["actions"]:
            out.setdefault((Path(v["file"]).name, a["verb"]), []).append((a["start"], a["end"]))
    return out


def _show(query: str, verb: str, moments, truth, top_k: int) -> tuple[int, int]:
    """Print the ranked moments with the nearest true moment of the named action; returns (hits, shown)."""
    click.echo(f'\n$ vidseek search "{query}" --top-k {top_k}')
    videos_with = len({k[0] for k in truth if k[1] == verb})
    if not moments and moments.best is not None:
        click.echo(f"{no_match(query, moments)}\n({videos_with} videos of the library contain a '{verb}' moment)")
        return 0, 0
    click.echo(f"{'rank':>4}  {'score':>6}  {'found':>13}  {'truth':>13}  {'IoU':>5}  video")
    hits = 0
    for m in moments:
        true = truth.get((Path(m.video).name, verb), [])
        best = max(true, key=lambda t: _iou((m.start, m.end), t), default=None)
        iou = _iou((m.start, m.end), best) if best else 0.0
        hits += iou >= 0.5
        shown = f"{best[0]:5.1f}-{best[1]:5.1f} s" if best else f"{'(none)':>13}"
        click.echo(f"{m.rank:>4}  {m.score:6.3f}  {m.start:5.1f}-{m.end:5.1f} s  {shown}  {iou:5.2f}  {m.video}")
    click.echo(f"{hits} of {len(moments)} moments overlap a true '{verb}' moment by IoU >= 0.5 "
               f"({videos_with} videos of the library contain one)")
    return hits, len(moments)


@click.command("demo")
@click.option("--dir", "demo_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-library"),
              show_default=True, help="Where the synthetic library and its index live.")
@click.option("--videos", "n_videos", type=click.IntRange(min=2, max=500), default=24, show_default=True,
              help="Videos to render the first time.")
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Rendering processes.")
def demo_cmd(demo_dir: Path, n_videos: int, top_k: int, workers: int) -> None:
    """Render a small synthetic library (if absent), index it with the built-in bundle, search
    "person opens door" and two more queries, and show each moment next to the ground truth."""
    from vidseek.library.api import Index
    from vidseek.synth.config import SynthConfig
    from vidseek.synth.writer import render_dataset

    t0 = time.perf_counter()
    manifest_path = demo_dir / "manifest.json"
    if not manifest_path.is_file():
        if demo_dir.exists() and any(demo_dir.iterdir()):
            raise click.ClickException(f"{demo_dir} exists and is not a demo library (no manifest.json); "
                                       "choose another --dir or remove it")
        click.echo(f"rendering {n_videos} synthetic videos into {demo_dir} (once) ...")
        config = SynthConfig(min_duration=10.0, max_duration=30.0, split=(0.0, 0.0, 1.0))
        render_dataset(demo_dir, n_videos, seed=DEMO_SEED, config=config, workers=workers, progress=True)
    manifest = json.loads(manifest_path.read_text())
    with Index(demo_dir / "index") as index, user_errors():
        _add(index, demo_dir, "builtin")
        truth = _truth(manifest)
        results = [_show(q, verb, index.search(q, top_k=top_k), truth, top_k) for q, verb in QUERIES.items()]
        hits, shown = sum(h for h, _ in results), sum(n for _, n in results)
        nonsense = index.search(NONSENSE, top_k=top_k)
        click.echo(f'\n$ vidseek search "{NONSENSE}"\n' + (no_match(NONSENSE, nonsense) if nonsense.best else
                   f"{len(nonsense)} moments at or above the threshold {nonsense.threshold:.3f}"))
    with Index(demo_dir / "index-plpnet") as index, user_errors():  # PLPNet: each phrase of a query has its span
        click.echo("\nthe PLPNet bundle finds each phrase of a query too:")
        _add(index, demo_dir, "builtin-plpnet")
        _show_phrases(PHRASE_QUERY, index.search(PHRASE_QUERY, top_k=3, phrases=True), demo_dir / "index-plpnet")
    command = this_command()
    click.echo(f"\n{hits} of {shown} moments found are true moments; demo took {time.perf_counter() - t0:.0f} s. "
               f"Try your own query:\n  {command} search \"QUERY\" --index {demo_dir / 'index'}\n"
               f"  {command} search \"QUERY\" --phrases --index {demo_dir / 'index-plpnet'}")
    click.echo(f"See the moments and play them in your browser{_serve_note()}:\n"
               f"  {command} serve --index {demo_dir / 'index'} --open")


def _add(index, demo_dir: Path, model: str) -> None:
    """Index the demo library with a built-in bundle (again from scratch when that bundle changed)."""
    from vidseek.index.catalog import IndexMismatch

    try:
        report = index.add(demo_dir / "videos", model=model, progress=True)
    except IndexMismatch:  # the demo's own index, from an older built-in bundle: rebuild it, no question
        click.echo(f"the {model} model changed since this demo library was indexed: indexing it again")
        report = index.add(demo_dir / "videos", model=model, progress=True, rebuild=True)
    flag = "" if model == "builtin" else f" --model {model}"
    click.echo(f"$ vidseek index {demo_dir / 'videos'} --index {index.path}{flag}\n{report.summary()}")


def _show_phrases(query: str, moments, index_dir: Path) -> None:
    """A phrase search as `vidseek search --phrases` prints it: each moment, and under it each phrase."""
    click.echo(f'\n$ vidseek search "{query}" --phrases --top-k 3 --index {index_dir}')
    echo_moments(query, moments)


def _serve_note() -> str:
    """What `vidseek serve` still needs here ('' when its extra is installed, as `make demo` does)."""
    from vidseek.library.models import missing_packages

    return " (first: pip install 'vidseek[serve]')" if missing_packages(("fastapi", "uvicorn")) else ""
