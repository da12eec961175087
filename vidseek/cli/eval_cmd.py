"""`vidseek eval`: score a moment-retrieval prediction file against QVHighlights-format ground truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from vidseek.cli.common import DATASETS

_JSONL = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)


@click.command("eval")
@click.option("--gt", "gt_path", required=True, type=_JSONL,
              help="Ground truth: JSONL (qid, relevant_windows), or any annotation file `vidseek predict` reads "
                   "(with --dataset).")
@click.option("--dataset", type=click.Choice(DATASETS), default="jsonl", show_default=True,
              help="Format of --gt; its qids are the ones `vidseek predict` gives the same file.")
@click.option("--durations", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="charades-sta: video durations JSON (default: charades.json beside --gt).")
@click.option(
    "--pred", "pred_path", required=True, type=_JSONL, help="Prediction JSONL (qid, pred_relevant_windows)."
)
@click.option("--json", "as_json", is_flag=True, help="Print every metric as JSON instead of the summary table.")
def eval_cmd(gt_path: Path, dataset: str, durations: Path | None, pred_path: Path, as_json: bool) -> None:
    """Compute QVHighlights (Moment-DETR standalone_eval) and R1/mIoU grounding metrics.

    Each prediction line is {"qid": ..., "pred_relevant_windows": [[start, end, score], ...]},
    best window first; every ground-truth qid needs exactly one prediction line. Library-wide
    predictions from `vidseek search --queries` ({"qid", "pred_moments": [[vid, start, end, score], ...]})
    are scored with the VCMR metrics (R1/R5/R10 at IoU 0.5/0.7, right video required), and, when the
    ground truth has the sentences, VCMR-any (a moment also counts in any other video annotated with
    the same sentence). When every ground-truth line has "library_windows" (test sentences of
    `vidseek synth`: every video where the sentence is true), VCMR-true counts a moment in any of
    them, and VCMR-ceiling-R1/R5/R10 is the best right-video score a model can expect there.

    --dataset charades-sta|tacos|activitynet reads the ground truth from the dataset's own file, so
    that `vidseek predict RUN --dataset charades-sta --annotations test.txt` is scored against
    test.txt as it is.
    """
    from vidseek.evaluation import evaluate, read_located, vcmr_ceiling, vcmr_metrics

    try:
        located_preds = read_located(pred_path)
        preds = [record for _, record in located_preds]
        located = _ground_truth(gt_path, dataset, durations)
        gt = [record for _, record in located]
        if preds and "pred_moments" in preds[0]:
            metrics = vcmr_metrics(gt, preds)
            if gt and "query" in gt[0]:  # also count moments in other videos annotated with the same sentence
                metrics.update(vcmr_metrics(gt, preds, same_sentence=True))
            if gt and all(isinstance(g.get("library_windows"), dict) for g in gt):
                metrics.update(vcmr_metrics(gt, preds, library=True))
                metrics.update(vcmr_ceiling(gt))
            click.echo(json.dumps(metrics, indent=2) if as_json else
                       "\n".join(f"{k:18} {v:8.2f}" for k, v in metrics.items()))
            return
        metrics = evaluate(located, located_preds)
    except (ValueError, OSError) as err:
        raise click.ClickException(
            f"cannot evaluate {pred_path} against {gt_path}: {err}\n"
            "Fix the file named above (see `vidseek eval --help` for the expected line format) and run again"
            + (f"; a ground truth in a dataset's own format needs --dataset ({', '.join(DATASETS)})."
               if dataset == "jsonl" else ".")
        ) from err
    click.echo(json.dumps(metrics, indent=2) if as_json else format_summary(metrics))


def _ground_truth(path: Path, dataset: str, durations: Path | None) -> list[tuple[str, dict]]:
    """(location, record) of each ground-truth query: the lines of a JSONL file as they are, or the
    queries of a dataset file as ``vidseek predict`` reads them (the same qids)."""
    from vidseek.evaluation import read_located

    if dataset == "jsonl" and durations is None:
        return read_located(path)
    from vidseek.trainer.data.annotations import read_annotations

    return [(f"{path} qid {s.qid!r}", {"qid": s.qid, "query": s.query, "vid": s.vid, "duration": s.duration,
                                       "relevant_windows": [list(w) for w in s.windows]})
            for s in read_annotations(path, dataset, durations)]


def format_summary(metrics: dict[str, Any]) -> str:
    """Two-column table of the ``brief`` and ``grounding`` metrics of an :func:`evaluate_files` report."""
    rows = [("metric", "value")]
    rows += [(name, _fmt(value)) for name, value in metrics["brief"].items()]
    rows += [(f"grounding {name}", _fmt(value)) for name, value in metrics.get("grounding", {}).items()]
    counts = metrics.get("num_queries", {})
    rows += [(f"queries ({bucket})", str(n)) for bucket, n in counts.items()]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value:>7}" for name, value in rows)


def _fmt(value: float | None) -> str:
    """Two decimals, or ``n/a`` for a bucket without queries."""
    return "n/a" if value is None else f"{value:.2f}"
