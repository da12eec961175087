"""`vidseek search`: ranked moments for a query across the library (``vidseek.Index.search``). Torch-free."""

from __future__ import annotations

import json
from pathlib import Path

import click

from vidseek.cli.common import backend_option, index_option, shown, user_errors, warnings_shown
from vidseek.library import CANDIDATES
from vidseek.errors import VidseekError


class BadQueries(VidseekError, ValueError):
    """A --queries file whose lines are not queries (a qid and a query string)."""


@click.command("search")
@click.argument("query", required=False)
@index_option
@click.option("--queries", "queries_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Batch mode: a jsonl of queries (qid, query[, vid]); needs --out.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), help="Batch mode: predictions jsonl.")
@click.option("--per-video", is_flag=True, help="Batch mode: ground each query in its own `vid` (standalone_eval format).")
@click.option("--top-k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--candidates", type=click.IntRange(min=1), default=CANDIDATES, show_default=True, help="Clips retrieved before the head runs.")
@click.option("--video", help="Search one indexed video only: its path as `vidseek info --videos` lists it, or its "
                              "path on disk (absolute or relative to here).")
@click.option("--phrases", is_flag=True, help="PLPNet bundles: also show the span of each phrase of the query.")
@click.option("--min-score", type=click.FloatRange(0, 1), default=None,
              help="Show moments whose score (a calibrated relevance in [0, 1]) is at least this; default: the "
                   "model's threshold. 0 shows the best candidates even when nothing matches.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines (one moment per line) instead of a table.")
@backend_option
def search_cmd(query: str | None, index_dir: Path | None, queries_path: Path | None, out_path: Path | None,
               per_video: bool, top_k: int, candidates: int, video: str | None, phrases: bool,
               min_score: float | None, as_json: bool, backend: str) -> None:
    """Ranked moments for QUERY across the indexed library (or every query of --queries, for `vidseek eval`)."""
    from vidseek.engine.grounder import QueryError
    from vidseek.library.api import Index
    from vidseek.library.models import domain_note
    from vidseek.library.searcher import DamagedVideoWarning, PhrasesUnavailable, StaleVideoWarning

    if (query is None) == (queries_path is None):
        raise click.UsageError("give a QUERY, or --queries Q.jsonl --out PRED.jsonl")
    if queries_path is not None:
        if out_path is None:
            raise click.BadParameter("batch mode writes its predictions to --out", param_hint="--out")
        if phrases:
            raise click.BadParameter("--phrases applies to a single QUERY, not to --queries", param_hint="--phrases")
        with user_errors(), warnings_shown(DamagedVideoWarning, StaleVideoWarning), Index(index_dir, backend=backend) as index:
            n = _batch(index, queries_path, out_path, per_video=per_video, top_k=top_k, candidates=candidates)
        click.echo(f"{n} queries -> {out_path}")
        return
    with warnings_shown(DamagedVideoWarning, StaleVideoWarning), Index(index_dir, backend=backend) as index, user_errors():
        try:
            moments = index.search(query, top_k=top_k, candidates=candidates, video=video, phrases=phrases,
                                   min_score=min_score)
            note = None if as_json else domain_note(index.searcher.bundle.domain)
        except QueryError as exc:
            raise click.BadParameter(shown(exc), param_hint="QUERY") from None
        except PhrasesUnavailable as exc:
            raise click.BadParameter(shown(exc), param_hint="--phrases") from None
    if as_json:
        for m in moments:
            click.echo(json.dumps(m.to_dict()))
        return
    if note:
        click.echo(note, err=True)
    if moments.corrections:
        click.echo("spelling: searched with " + ", ".join(f"{shown(typed)!r} -> {to!r}" for typed, to in moments.corrections),
                   err=True)
    if moments.unseen_words:
        click.echo(unseen_note(moments.unseen_words), err=True)
    echo_moments(query, moments)


def echo_moments(query: str, moments) -> None:
    """The ranked moments of a search as a table, each with its phrase spans (``--phrases``) under
    it; when none reaches the threshold, the best candidate (and its phrases)."""
    if not moments and moments.best is not None:
        click.echo(no_match(query, moments))
        echo_phrases(moments.best)  # with --phrases: where each phrase of the query is, in the best candidate
        return
    if not moments:
        click.echo("no moments found (is the index empty? see `vidseek info`)")
        return
    click.echo(f"{'rank':>4}  {'score':>6}  {'start':>7}  {'end':>7}  file")
    for m in moments:
        click.echo(f"{m.rank:>4}  {m.score:6.3f}  {m.start:7.2f}  {m.end:7.2f}  {shown(m.video)}")
        echo_phrases(m)


def echo_phrases(moment) -> None:
    """The phrase spans of a moment (PLPNet, ``--phrases``), one line each under the moment's."""
    for p in moment.phrases or ():
        click.echo(f"{'':>14}{p['start']:7.2f}  {p['end']:7.2f}    phrase {p['text']!r} (weight {p['weight']:.2f})")


def unseen_note(words: list[str]) -> str:
    """A note naming the query's words the model was never trained on."""
    listed = ", ".join(repr(shown(w)) for w in words[:8]) + (" ..." if len(words) > 8 else "")
    return (f"note: this model never saw {listed} in training, so it cannot know what "
            f"{'they look' if len(words) > 1 else 'it looks'} like; describe the moment with other words, "
            "or use a model trained on real footage (--model clip:...)")


def no_match(query: str, moments) -> str:
    """The answer to a search whose best candidate (``moments.best``) is below the threshold."""
    b = moments.best
    return (f"no moment matches {shown(query)!r}: the best candidate, {shown(b.video)} {b.start:.2f}-{b.end:.2f} s, "
            f"scores {b.score:.3f}, below the model's threshold {moments.threshold:.3f}; see it anyway with --min-score 0")


def _batch(index, queries_path: Path, out_path: Path, *, per_video: bool, top_k: int, candidates: int) -> int:
    """Search every query of a jsonl; library-wide lines carry pred_moments [[vid, start, end, score]],
    --per-video lines pred_relevant_windows [[start, end, score]] within the query's own video."""
    from tqdm import tqdm

    from vidseek.atomic import atomic_write_text
    from vidseek.evaluation import load_jsonl

    by_vid = {Path(v.path).stem: v.path for v in index.videos("ok")}
    lines = []
    for n, rec in enumerate(tqdm(load_jsonl(queries_path), desc="search", unit="query", disable=None), 1):
        if "qid" not in rec or not isinstance(rec.get("query"), str):
            raise BadQueries(f"{queries_path}: query {n} ({'qid ' + repr(rec['qid']) if 'qid' in rec else 'no qid'}) "
                             "needs a qid and a query string, as in {\"qid\": 1, \"query\": \"person opens door\"}")
        if per_video:
            if rec.get("vid") not in by_vid:
                raise BadQueries(f"query {rec.get('qid')!r}: its video {rec.get('vid')!r} is not indexed")
            moments = index.search(rec["query"], top_k=top_k, candidates=candidates, video=by_vid[rec["vid"]],
                                   min_score=0)  # every query gets its windows: eval scores them all
            lines.append({"qid": rec["qid"], "query": rec["query"], "vid": rec["vid"],
                          "pred_relevant_windows": [[m.start, m.end, m.score] for m in moments]})
        else:
            moments = index.search(rec["query"], top_k=top_k, candidates=candidates, min_score=0)
            lines.append({"qid": rec["qid"], "query": rec["query"],
                          "pred_moments": [[Path(m.video).stem, m.start, m.end, m.score] for m in moments]})
    atomic_write_text(out_path, "".join(json.dumps(x) + "\n" for x in lines))
    return len(lines)
