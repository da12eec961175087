"""How a bundle copes with real wording: single-video R1@0.5 of the template test sentences of a
synthetic world next to its held-out paraphrase bank (``vidseek.synth.paraphrase``), per kind,
and whether opposites (on/off, open/close, sit/stand, in/out, pick up/put down) are told apart.

``report(index, world_dir)`` searches each sentence in its own video (top 1, ``min_score=0``, as
``vidseek eval`` scores single-video grounding) in an index of the world's videos.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vidseek.spans import temporal_iou_paired

TRUE_IOU = 0.5


def _best_iou(span: tuple[float, float], windows: list[list[float]]) -> float:
    if not windows:
        return 0.0
    return float(temporal_iou_paired(np.array([span] * len(windows), float), np.array(windows, float)).max())


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def report(index, world_dir: str | Path) -> dict:
    """{"template": R1@0.5, "synonym": ..., "casual": ..., "typo": ..., "opposite": ..., "paraphrase":
    all four kinds together, "opposites_told_apart": share of opposite sentences whose top moment
    overlaps their own action more than the opposite one, "counts": sentences per kind}, in percent.
    ``index`` is a ``vidseek.Index`` holding the world's videos (``WORLD/videos``)."""
    world = Path(world_dir)
    path_of = {Path(v.path).stem: v.path for v in index.videos("ok")}
    template = [r for r in _records(world / "test.jsonl") if r["vid"] in path_of]
    bank = [r for r in _records(world / "paraphrase_test.jsonl") if r["vid"] in path_of]
    hits: dict[str, list[bool]] = {"template": []}
    told_apart = []
    for kind, record in [("template", r) for r in template] + [(r["kind"], r) for r in bank]:
        moments = index.search(record["query"], top_k=1, video=path_of[record["vid"]], min_score=0)
        span = (moments[0].start, moments[0].end) if moments else (0.0, 0.0)
        own = _best_iou(span, record["relevant_windows"])
        hits.setdefault(kind, []).append(own >= TRUE_IOU)
        if kind == "opposite":
            told_apart.append(own > _best_iou(span, record["opposite_windows"]))
    out = {kind: round(100.0 * float(np.mean(h)), 1) for kind, h in hits.items() if h}
    paraphrase = [h for kind, hs in hits.items() if kind != "template" for h in hs]
    out["paraphrase"] = round(100.0 * float(np.mean(paraphrase)), 1) if paraphrase else None
    out["opposites_told_apart"] = round(100.0 * float(np.mean(told_apart)), 1) if told_apart else None
    out["counts"] = {kind: len(h) for kind, h in hits.items()}
    return out
