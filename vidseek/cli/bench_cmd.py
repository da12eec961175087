"""`vidseek bench`: latency of every stage on every backend, side by side, and at library scale."""

from __future__ import annotations

import json
from pathlib import Path

import click

from vidseek.library import CANDIDATES

BACKEND_NAMES = ("pytorch", "onnxruntime", "onnxruntime-cuda", "onnxruntime-tensorrt",
                 "tensorrt-fp32", "tensorrt-fp16", "tensorrt-int8")  # vidseek.bench.backends.BENCH_BACKENDS
PART_NAMES = ("graphs", "index", "query", "naive", "faiss")  # vidseek.bench.PARTS


SCALES = {"k": 1_000, "m": 1_000_000}  # library size suffixes: 1k, 100k, 1M


def _int_list(ctx, param, value: str) -> tuple[int, ...]:
    """'1000,10000' or '1k,100k,1M' -> (1000, 100000, 1000000)."""
    out = []
    for part in (value or "").split(","):
        text = part.strip().lower()
        if not text:
            continue
        scale = SCALES.get(text[-1], 1)
        try:
            number = int(float(text[:-1] if scale > 1 else text) * scale)
        except ValueError:
            raise click.BadParameter(f"expected numbers such as 1000,100000,1000000 (or 1k,100k,1M), got {value!r}") from None
        if number < 1:
            raise click.BadParameter(f"library sizes are >= 1 video, got {part.strip()!r}")
        out.append(number)
    if not out:
        raise click.BadParameter("give at least one library size")
    return tuple(out)


def _names(choices: tuple[str, ...], what: str):
    def parse(ctx, param, value: str) -> tuple[str, ...]:
        names = tuple(v.strip() for v in (value or "").split(",") if v.strip())
        if names == ("all",):
            return choices
        bad = [n for n in names if n not in choices]
        if bad or not names:
            raise click.BadParameter(f"unknown {what} {', '.join(bad) or '(none)'}; choose from all, {', '.join(choices)}")
        return names
    return parse


def _seconds(ctx, param, value: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected MIN,MAX seconds such as 10,60, got {value!r}") from None
    if not 0 < lo <= hi:
        raise click.BadParameter(f"expected 0 < MIN <= MAX, got {value!r}")
    return lo, hi


@click.command("bench")
@click.option("--model", "bundle_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Bundle to measure (default: the built-in bundle).")
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The run folder the bundle was exported from: adds the PyTorch eager rows (needs torch).")
@click.option("--backends", default="all", show_default=True, callback=_names(BACKEND_NAMES, "backends"),
              help=f"Comma-separated: {', '.join(BACKEND_NAMES)}; unavailable ones are reported with the reason.")
@click.option("--library-size", "library_sizes", default="1000", show_default=True, callback=_int_list,
              help="Synthetic library sizes in videos, e.g. 1000,100000,1000000 (or 1k,100k,1M).")
@click.option("--parts", default="all", show_default=True, callback=_names(PART_NAMES, "parts"),
              help=f"What to measure: {', '.join(PART_NAMES)}.")
@click.option("--videos", "videos_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Video files for the index-time stages (default: render a few with `vidseek synth`).")
@click.option("--index-videos", type=click.IntRange(min=1), default=3, show_default=True,
              help="Videos the index-time stages run on.")
@click.option("--video-seconds", default="10,60", show_default=True, callback=_seconds,
              help="MIN,MAX duration of the synthetic library's (and rendered) videos.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Untimed calls first.")
@click.option("--repeat", type=click.IntRange(min=1), default=100, show_default=True,
              help="Timed calls per graph and searches per backend and library size.")
@click.option("--index-repeat", type=click.IntRange(min=1), default=10, show_default=True,
              help="Timed passes over the index-time videos.")
@click.option("--candidates", type=click.IntRange(min=1), default=CANDIDATES, show_default=True,
              help="Clips retrieved before the head runs (as `vidseek search`).")
@click.option("--top-k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Intra-op threads of onnxruntime and torch (default: theirs).")
@click.option("--naive-max", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Videos the naive search (head on every video) runs on; larger libraries are extrapolated.")
@click.option("--naive-repeat", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--faiss-queries", type=click.IntRange(min=1), default=200, show_default=True,
              help="Queries of the FAISS comparison (recall against exact search).")
@click.option("--profile", "profile", type=click.IntRange(min=0), default=0, show_default=True,
              help="cProfile this many searches at the first library size and print the top functions.")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the synthetic libraries and rendered videos here and reuse them next time "
                   "(default: a temporary folder, deleted at the end).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), help="Write the full report as JSON.")
@click.option("--markdown-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the tables as Markdown (for docs/benchmarks.md).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a PNG of latency and memory against library size (needs matplotlib: vidseek[plot]).")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as one JSON document (tables go to stderr).")
@click.option("--same-process", is_flag=True, help="Measure each library in this process (faster; memory figures "
                                                   "then include what earlier sizes left behind).")
def bench_cmd(bundle_dir, run_dir, backends, library_sizes, parts, videos_dir, index_videos, video_seconds, warmup,
              repeat, index_repeat, candidates, top_k, threads, naive_max, naive_repeat, faiss_queries, profile,
              work_dir, seed, json_out, markdown_out, plot_path, as_json, same_process):
    """Time every stage of indexing and search on every backend (warm, repeated, p50/p95/p99), side
    by side in one run, on synthetic libraries of --library-size videos."""
    from vidseek.atomic import atomic_write_text
    from vidseek.bench import BenchConfig, run_benchmark
    from vidseek.bench.report import plot, render_tables
    from vidseek.cli.common import USER_ERRORS, shown

    if bundle_dir is None:
        from vidseek.builtin import builtin_bundle

        try:
            bundle_dir = builtin_bundle()
        except FileNotFoundError as exc:
            raise click.ClickException(str(exc)) from None
    config = BenchConfig(bundle=bundle_dir, run_dir=run_dir, backends=backends, library_sizes=library_sizes,
                         parts=parts, videos=videos_dir, index_videos=index_videos, warmup=warmup, repeat=repeat,
                         index_repeat=index_repeat, candidates=candidates, top_k=top_k, threads=threads,
                         naive_max=naive_max, naive_repeat=naive_repeat, faiss_queries=faiss_queries,
                         profile=profile, min_seconds=video_seconds[0], max_seconds=video_seconds[1], seed=seed,
                         work_dir=work_dir, fresh_process=not same_process)
    try:
        report = run_benchmark(config, log=lambda line: click.echo(line, err=True))
    except (*USER_ERRORS, ValueError) as exc:  # ValueError: a configuration the benchmark cannot run
        raise click.ClickException(shown(exc, lines=True)) from exc

    def say(text: str) -> None:  # with --json, stdout holds the JSON document only
        click.echo(text, err=as_json)

    say(render_tables(report))
    for lib in report["libraries"]:
        if lib.get("profile"):
            say(f"cProfile of {profile} searches at {lib['videos']} videos (ONNX Runtime CPU):\n{lib['profile']}")
    if json_out:
        atomic_write_text(json_out, json.dumps(report, indent=1))
        say(f"report -> {json_out}")
    if markdown_out:
        atomic_write_text(markdown_out, render_tables(report, markdown=True))
        say(f"tables -> {markdown_out}")
    if plot_path:
        problem = plot(report, plot_path)
        say(f"plot skipped: {problem}" if problem else f"plot -> {plot_path}")
    if as_json:
        click.echo(json.dumps(report, indent=1))
