"""How many candidate clips the head needs: accuracy on a held-out world and latency at 1k videos,
side by side in one run (the figures of docs/benchmarks.md, "Fewer candidates").

    python benchmarks/candidates.py WORLD_INDEX WORLD_DIR BIG_INDEX [--counts 50,30,20,12] [--sentences 600]

WORLD_INDEX is an index of WORLD_DIR's videos (a `vidseek synth ... --split 0,0,1` world the bundle
never saw, indexed with `vidseek index`); BIG_INDEX a large library for latency (the bench's
synthetic 1k library, `vidseek bench --library-size 1k --work-dir W` leaves one in W). For each
count: VCMR-true R1@0.5 and R10@0.5 of the world's test sentences searched library-wide
(``min_score=0``), and p50/p95 of 120 warm searches of six queries on BIG_INDEX.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import click
import numpy as np

QUERIES = ["person opens door", "someone turns off the light", "a person sits down on the chair",
           "the person picks up the red box", "person waves", "someone closes the door"]


@click.command()
@click.argument("world_index", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("world_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("big_index", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--counts", default="50,30,20,12", show_default=True)
@click.option("--sentences", "n", type=int, default=600, show_default=True)
def main(world_index: Path, world_dir: Path, big_index: Path, counts: str, n: int) -> None:
    from vidseek.evaluation import load_jsonl
    from vidseek.library.api import Index
    from vidseek.library.calibrate import _is_true

    sentences = [s for s in load_jsonl(world_dir / "test.jsonl") if isinstance(s.get("library_windows"), dict)][:n]
    with Index(world_index) as world, Index(big_index) as big:
        for c in (int(x) for x in counts.split(",")):
            r1 = r10 = 0
            for s in sentences:
                true = [_is_true(m, s["library_windows"]) for m in world.search(s["query"], top_k=10, candidates=c,
                                                                                  min_score=0)]
                r1, r10 = r1 + bool(true and true[0]), r10 + any(true)
            big.search(QUERIES[0], candidates=c)  # warm
            seconds = []
            for i in range(120):
                t0 = time.perf_counter()
                big.search(QUERIES[i % len(QUERIES)], candidates=c, min_score=0)
                seconds.append(time.perf_counter() - t0)
            print(f"candidates {c:3d}: VCMR-true R1@0.5 {100 * r1 / len(sentences):.1f}  R10@0.5 "
                  f"{100 * r10 / len(sentences):.1f}  |  p50 {1000 * statistics.median(seconds):.1f} ms  "
                  f"p95 {1000 * np.quantile(seconds, 0.95):.1f} ms", flush=True)


if __name__ == "__main__":
    main()
