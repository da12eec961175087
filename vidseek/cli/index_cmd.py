"""`vidseek index`, `vidseek search`, `vidseek info`: the library commands. Torch-free."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from vidseek.engine.registry import BACKENDS


def default_index() -> Path:
    """$VIDSEEK_INDEX, else ./.vidseek"""
    return Path(os.environ.get("VIDSEEK_INDEX", ".vidseek"))


index_option = click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                            help="Index folder (default: $VIDSEEK_INDEX, else ./.vidseek).")
backend_option = click.option("--backend", type=click.Choice(list(BACKENDS)), default="onnxruntime", show_default=True)

USER_ERRORS = (OSError, ValueError, RuntimeError)


def _errors():
    from vidseek.engine.bundle import BundleError
    from vidseek.index import IndexStorageError

    return USER_ERRORS + (BundleError, IndexStorageError)


@click.command("index")
@click.argument("video_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@index_option
@click.option("--model", "bundle_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Bundle folder from `vidseek export` (with a frame encoder and a retrieval embedding).")
@click.option("--window", "window_s", type=click.FloatRange(min=0.5), default=4.0, show_default=True, help="Clip window, seconds.")
@click.option("--stride", "stride_s", type=click.FloatRange(min=0.25), default=2.0, show_default=True, help="Clip stride, seconds.")
@backend_option
@click.option("--progress/--no-progress", default=True, show_default=True)
def index_cmd(video_dir, index_dir, bundle_dir, window_s, stride_s, backend, progress):
    """Index VIDEO_DIR (recursively): new and changed videos are encoded once, deleted ones dropped."""
    from vidseek.index.builder import index_folder

    index_dir = index_dir or default_index()
    try:
        report = index_folder(video_dir, index_dir, bundle_dir, backend, window_s, stride_s, progress)
    except _errors() as exc:
        raise click.ClickException(str(exc)) from exc
    for path, error in report.errors:
        click.echo(f"  skipped {path}: {error}", err=True)
    click.echo(f"{index_dir}: {report.summary()}")


@click.command("search")
@click.argument("query", required=False)
@index_option
@click.option("--queries", "queries_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Batch mode: a jsonl of queries (qid, query[, vid]); needs --out.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), help="Batch mode: predictions jsonl.")
@click.option("--per-video", is_flag=True, help="Batch mode: ground each query in its own `vid` (standalone_eval format).")
@click.option("--top-k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--candidates", type=click.IntRange(min=1), default=50, show_default=True, help="Clips retrieved before the head runs.")
@click.option("--video", help="Search one indexed video only (its path as `vidseek info` lists it).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@backend_option
def search_cmd(query, index_dir, queries_path, out_path, per_video, top_k, candidates, video, as_json, backend):
    """Ranked moments for QUERY across the indexed library (or every query of --queries, for `vidseek eval`)."""
    from vidseek.engine.grounder import QueryError
    from vidseek.engine.search import Searcher

    if (query is None) == (queries_path is None):
        raise click.UsageError("give a QUERY, or --queries Q.jsonl --out PRED.jsonl")
    if queries_path is not None:
        if out_path is None:
            raise click.BadParameter("batch mode writes its predictions to --out", param_hint="--out")
        try:
            n = _batch(Searcher(index_dir or default_index(), backend=backend), queries_path, out_path, per_video,
                       top_k, candidates)
        except _errors() as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"{n} queries -> {out_path}")
        return
    try:
        moments = Searcher(index_dir or default_index(), backend=backend).search(query, top_k, candidates, video)
    except QueryError as exc:
        raise click.BadParameter(str(exc), param_hint="QUERY") from None
    except _errors() as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        for m in moments:
            click.echo(json.dumps(m.to_dict()))
        return
    if not moments:
        click.echo("no moments found (is the index empty? see `vidseek info`)")
        return
    click.echo(f"{'rank':>4}  {'score':>6}  {'start':>7}  {'end':>7}  file")
    for m in moments:
        click.echo(f"{m.rank:>4}  {m.score:6.3f}  {m.start:7.2f}  {m.end:7.2f}  {m.video}")


def _batch(searcher, queries_path: Path, out_path: Path, per_video: bool, top_k: int, candidates: int) -> int:
    """Search every query of a jsonl; library-wide lines carry pred_moments [[vid, start, end, score]],
    --per-video lines pred_relevant_windows [[start, end, score]] within the query's own video."""
    from tqdm import tqdm

    from vidseek.atomic import atomic_write_text
    from vidseek.evaluation import load_jsonl

    by_vid = {Path(v.path).stem: v.path for v in searcher.videos.values()}
    lines = []
    for rec in tqdm(load_jsonl(queries_path), desc="search", unit="query", disable=None):
        if per_video:
            if rec.get("vid") not in by_vid:
                raise ValueError(f"query {rec.get('qid')!r}: its video {rec.get('vid')!r} is not indexed")
            moments = searcher.search(rec["query"], top_k, candidates, video=by_vid[rec["vid"]])
            lines.append({"qid": rec["qid"], "query": rec["query"], "vid": rec["vid"],
                          "pred_relevant_windows": [[m.start, m.end, m.score] for m in moments]})
        else:
            moments = searcher.search(rec["query"], top_k, candidates)
            lines.append({"qid": rec["qid"], "query": rec["query"],
                          "pred_moments": [[Path(m.video).stem, m.start, m.end, m.score] for m in moments]})
    atomic_write_text(out_path, "".join(json.dumps(x) + "\n" for x in lines))
    return len(lines)


@click.command("info")
@index_option
def info_cmd(index_dir):
    """What an index holds: library, bundle, settings, videos by status."""
    from vidseek.index.catalog import Catalog

    index_dir = index_dir or default_index()
    if not (index_dir / "catalog.sqlite").is_file():
        raise click.ClickException(f"no index in {index_dir}: build one with `vidseek index VIDEO_DIR --index {index_dir}`")
    try:
        with Catalog(index_dir, readonly=True) as cat:
            settings, counts, videos = cat.settings(), cat.counts(), cat.videos()
            problems = cat.integrity_check()
    except _errors() as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"index    {index_dir}\nlibrary  {settings.get('root')}\nbundle   {settings.get('bundle')} "
               f"(fingerprint {settings.get('fingerprint')})\nclips    {settings.get('window_s')} s windows every "
               f"{settings.get('stride_s')} s, {settings.get('rate')} steps/s, {settings.get('dim')}-d embeddings")
    click.echo("videos   " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    total = sum(v.duration or 0 for v in videos if v.status == "ok")
    click.echo(f"duration {total:.0f} s indexed")
    for v in videos:
        if v.status == "error":
            click.echo(f"  error  {v.path}: {v.error}")
    click.echo("integrity ok" if not problems else "integrity problems:\n  " + "\n  ".join(problems))
