"""What storing the video states in fewer bytes costs in accuracy, on a world the bundle never saw.

    python benchmarks/state_precision.py WORLD_INDEX WORLD_DIR WORK [--sentences 600]

WORLD_INDEX is an index of WORLD_DIR's videos (a `vidseek synth ... --split 0,0,1` world, indexed
with `vidseek index --states float16`). For each way of storing the states (``--states``), the
index is copied into WORK with every states file written again that way, and the world's test
sentences are searched: per video (R1@0.5: the head alone) and library-wide (VCMR-true R1@0.5 and
R10@0.5: clip retrieval is untouched, so what changes is the head's spans and scores). Bytes per
video are the mean size of the states files; the p50 is that of the library-wide searches (reading
quantized states dequantizes the rows read).
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path

import click
import numpy as np


def copy_with(index: Path, out: Path, precision: str) -> float:
    """A copy of ``index`` whose states files are written again as ``precision`` stores them;
    returns their mean size in bytes."""
    from vidseek.index.cache import FeatureCache
    from vidseek.index.catalog import Catalog

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(index, out)
    source, target = FeatureCache(index, "states"), FeatureCache(out, "states", precision=precision)
    sizes = []
    for vid in source.video_ids():
        sizes.append(target.put(vid, np.asarray(source.get(vid), np.float32)).stat().st_size)
    with Catalog(out) as catalog:
        catalog.update_settings(states=precision)
    return float(np.mean(sizes))


def iou(a, b) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


@click.command()
@click.argument("world_index", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("world_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("work", type=click.Path(file_okay=False, path_type=Path))
@click.option("--sentences", "n", type=int, default=600, show_default=True)
@click.option("--storages", default="float16,int8,int4", show_default=True)
def main(world_index: Path, world_dir: Path, work: Path, n: int, storages: str) -> None:
    from vidseek.evaluation import load_jsonl
    from vidseek.library.api import Index
    from vidseek.library.calibrate import _is_true

    manifest = json.loads((world_dir / "manifest.json").read_text())
    files = {v["vid"]: Path(v["file"]).name for v in manifest["videos"]}
    sentences = [s for s in load_jsonl(world_dir / "test.jsonl") if isinstance(s.get("library_windows"), dict)][:n]
    rows = {}
    for name in storages.split(","):
        copy = work / name
        size = copy_with(world_index, copy, name)
        r1_video = vr1 = vr10 = 0
        seconds = []
        with Index(copy) as index:
            for s in sentences:
                found = index.search(s["query"], video=files[s["vid"]], top_k=1, min_score=0)
                r1_video += bool(found) and any(iou((found[0].start, found[0].end), w) >= 0.5
                                                for w in s["relevant_windows"])
                t0 = time.perf_counter()
                moments = index.search(s["query"], top_k=10, min_score=0)
                seconds.append(time.perf_counter() - t0)
                true = [_is_true(m, s["library_windows"]) for m in moments]
                vr1, vr10 = vr1 + bool(true and true[0]), vr10 + any(true)
        k = len(sentences)
        rows[name] = {"bytes_per_video": round(size), "single_video_R1@0.5": round(100 * r1_video / k, 1),
                      "vcmr_true_R1@0.5": round(100 * vr1 / k, 1), "vcmr_true_R10@0.5": round(100 * vr10 / k, 1),
                      "library_search_p50_ms": round(1000 * statistics.median(seconds[1:]), 2)}
        print(f"{name:15s} {rows[name]}", flush=True)
    (work / "state-precision.json").write_text(json.dumps({"sentences": len(sentences), "storages": rows}, indent=1))


if __name__ == "__main__":
    main()
