"""`vidseek index`, `vidseek search`, `vidseek info`: the library commands. Torch-free."""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path

import click

from vidseek.engine.registry import BACKENDS


def default_index() -> Path:
    """$VIDSEEK_INDEX, else ./.vidseek (as ``vidseek.Index``)."""
    from vidseek.engine.api import default_index_dir

    return default_index_dir()


index_option = click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                            help="Index folder (default: $VIDSEEK_INDEX, else ./.vidseek).")
backend_option = click.option("--backend", type=click.Choice(list(BACKENDS)), default="onnxruntime", show_default=True)

USER_ERRORS = (OSError, ValueError, RuntimeError)


def _shown(text: str) -> str:
    """Text safe to print: a file name that is not UTF-8 shows its odd bytes as \\xNN instead of
    crashing the output (``vidseek.index.catalog.printable``)."""
    from vidseek.index.catalog import printable

    return printable(str(text))


@contextmanager
def _damaged_videos_shown():
    """Print the ``DamagedVideoWarning`` of each video a search skips as a ``warning:`` line on
    stderr, when it happens (other warnings are shown as usual)."""
    from vidseek.engine.search import DamagedVideoWarning

    with warnings.catch_warnings():
        show = warnings.showwarning

        def showwarning(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, DamagedVideoWarning):
                click.echo(f"warning: {_shown(message)}", err=True)
            else:
                show(message, category, filename, lineno, file, line)

        warnings.showwarning = showwarning
        warnings.simplefilter("always", DamagedVideoWarning)
        yield


def _errors():
    from vidseek.engine.bundle import BundleError
    from vidseek.index import IndexStorageError

    return USER_ERRORS + (BundleError, IndexStorageError)


@click.command("index")
@click.argument("video_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@index_option
@click.option("--model", "model", default="builtin", show_default=True, metavar="builtin|BUNDLE_DIR|clip:ID_OR_PATH",
              help="builtin: the bundle shipped with vidseek; BUNDLE_DIR: a bundle from `vidseek export`; "
                   "clip:ID_OR_PATH: a CLIP model (hub id or folder) used zero-shot, exported once into the cache "
                   "(needs PyTorch that once).")
@click.option("--window", "window_s", type=click.FloatRange(min=0.5), default=4.0, show_default=True, help="Clip window, seconds.")
@click.option("--stride", "stride_s", type=click.FloatRange(min=0.25), default=2.0, show_default=True, help="Clip stride, seconds.")
@click.option("--rebuild", is_flag=True,
              help="Discard the index's catalog, cached features and clip index, and index VIDEO_DIR from scratch: "
                   "to change --model, --window or --stride, to index another library into the same folder, or to "
                   "repair a damaged index. Until it ends, new searches find the videos encoded so far.")
@backend_option
@click.option("--progress/--no-progress", default=True, show_default=True)
def index_cmd(video_dir, index_dir, model, window_s, stride_s, rebuild, backend, progress):
    """Index VIDEO_DIR (recursively): new and changed videos are encoded once, deleted ones dropped."""
    from vidseek.engine.models import recreatable, resolve_model
    from vidseek.index.builder import index_folder

    index_dir = index_dir or default_index()

    def exporting(source: str, folder: Path) -> None:
        click.echo(f"exporting CLIP {source} as a zero-shot bundle into {folder} (once)", err=True)

    try:
        bundle_dir = resolve_model(model, on_export=exporting)
        report = index_folder(video_dir, index_dir, bundle_dir, backend, window_s, stride_s, progress,
                              model=recreatable(model), rebuild=rebuild)
    except _errors() as exc:
        raise click.ClickException(_shown(exc)) from exc
    for path, error in report.errors:
        click.echo(f"  skipped {_shown(path)}: {_shown(error)}", err=True)
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
@click.option("--phrases", is_flag=True, help="PLPNet bundles: also show the span of each phrase of the query.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@backend_option
def search_cmd(query, index_dir, queries_path, out_path, per_video, top_k, candidates, video, phrases, as_json, backend):
    """Ranked moments for QUERY across the indexed library (or every query of --queries, for `vidseek eval`)."""
    from vidseek.engine.grounder import QueryError
    from vidseek.engine.search import PhrasesUnavailable, Searcher

    if (query is None) == (queries_path is None):
        raise click.UsageError("give a QUERY, or --queries Q.jsonl --out PRED.jsonl")
    if queries_path is not None:
        if out_path is None:
            raise click.BadParameter("batch mode writes its predictions to --out", param_hint="--out")
        if phrases:
            raise click.BadParameter("--phrases applies to a single QUERY, not to --queries", param_hint="--phrases")
        try:
            with _damaged_videos_shown(), Searcher(index_dir or default_index(), backend=backend) as searcher:
                n = _batch(searcher, queries_path, out_path, per_video, top_k, candidates)
        except _errors() as exc:
            raise click.ClickException(_shown(exc)) from exc
        click.echo(f"{n} queries -> {out_path}")
        return
    try:
        with _damaged_videos_shown(), Searcher(index_dir or default_index(), backend=backend) as searcher:
            moments = searcher.search(query, top_k, candidates, video, phrases=phrases)
    except QueryError as exc:
        raise click.BadParameter(_shown(exc), param_hint="QUERY") from None
    except PhrasesUnavailable as exc:
        raise click.BadParameter(_shown(exc), param_hint="--phrases") from None
    except _errors() as exc:
        raise click.ClickException(_shown(exc)) from exc
    if as_json:
        for m in moments:
            click.echo(json.dumps(m.to_dict()))
        return
    if not moments:
        click.echo("no moments found (is the index empty? see `vidseek info`)")
        return
    click.echo(f"{'rank':>4}  {'score':>6}  {'start':>7}  {'end':>7}  file")
    for m in moments:
        click.echo(f"{m.rank:>4}  {m.score:6.3f}  {m.start:7.2f}  {m.end:7.2f}  {_shown(m.video)}")
        for p in m.phrases or ():
            click.echo(f"{'':>14}{p['start']:7.2f}  {p['end']:7.2f}    phrase {p['text']!r} (weight {p['weight']:.2f})")


def _batch(searcher, queries_path: Path, out_path: Path, per_video: bool, top_k: int, candidates: int) -> int:
    """Search every query of a jsonl; library-wide lines carry pred_moments [[vid, start, end, score]],
    --per-video lines pred_relevant_windows [[start, end, score]] within the query's own video."""
    from tqdm import tqdm

    from vidseek.atomic import atomic_write_text
    from vidseek.evaluation import load_jsonl

    by_vid = {Path(v.path).stem: v.path for v in searcher.videos.values()}
    lines = []
    for n, rec in enumerate(tqdm(load_jsonl(queries_path), desc="search", unit="query", disable=None), 1):
        if "qid" not in rec or not isinstance(rec.get("query"), str):
            raise ValueError(f"{queries_path}: query {n} ({'qid ' + repr(rec['qid']) if 'qid' in rec else 'no qid'}) "
                             "needs a qid and a query string, as in {\"qid\": 1, \"query\": \"person opens door\"}")
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
        raise click.ClickException(_shown(exc)) from exc
    model = f", --model {settings['model']}" if settings.get("model") else ""
    click.echo(f"index    {index_dir}\nlibrary  {settings.get('root')}\nbundle   {settings.get('bundle')} "
               f"(fingerprint {settings.get('fingerprint')}{model})\nclips    {settings.get('window_s')} s windows every "
               f"{settings.get('stride_s')} s, {settings.get('rate')} steps/s, {settings.get('dim')}-d embeddings")
    click.echo("videos   " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    total = sum(v.duration or 0 for v in videos if v.status == "ok")
    click.echo(f"duration {total:.0f} s indexed")
    for v in videos:
        if v.status == "error":
            click.echo(f"  error  {_shown(v.path)}: {_shown(v.error)}")
    click.echo("integrity ok" if not problems else "integrity problems:\n  " + "\n  ".join(map(_shown, problems)))
