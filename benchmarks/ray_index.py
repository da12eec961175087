"""Indexing throughput on Ray against the single-process indexer, in one run on this machine.

    python benchmarks/ray_index.py VIDEO_DIR [--videos 48] [--repeat 2] [--json-out FILE]

Copies the first N videos of VIDEO_DIR (a `vidseek synth` world's videos/, say) into a work folder
and indexes them from scratch with the built-in bundle: without Ray, then on a local Ray with 1 and
with 2 workers (``ray.init(num_cpus=W)``: one encoder actor per CPU, each with one inference
thread), alternating, ``--repeat`` times each. Ray's start (``ray.init``) is timed apart from the
indexing, which includes the actors' start (loading the bundle). Reports medians: seconds, videos
per second and the real-time factor, and each as a ratio to the single process.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import click


def _index(videos: Path, work: Path, ray_workers: int | None) -> dict:
    from vidseek.builtin import builtin_bundle
    from vidseek.library.indexer import index_folder

    index = work / f"idx-{ray_workers or 0}"
    shutil.rmtree(index, ignore_errors=True)
    started = 0.0
    if ray_workers:
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=ray_workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        started = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        report = index_folder(videos, index, builtin_bundle(), progress=False, ray="local" if ray_workers else None)
        seconds = time.perf_counter() - t0
    finally:
        if ray_workers:
            import ray

            ray.shutdown()
    assert not report.errors, report.errors
    return {"seconds": seconds, "ray_init_s": started, "videos": len(report.indexed), "video_s": report.video_seconds}


@click.command()
@click.argument("video_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--videos", "n", type=int, default=48, show_default=True)
@click.option("--repeat", type=int, default=2, show_default=True)
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path))
def main(video_dir: Path, n: int, repeat: int, json_out: Path | None) -> None:
    work = Path(tempfile.mkdtemp(prefix="vidseek-ray-bench-"))
    videos = work / "videos"
    videos.mkdir()
    for path in sorted(video_dir.glob("*.mp4"))[:n]:
        shutil.copy(path, videos / path.name)
    runs: dict[str, list[dict]] = {"single process": [], "ray, 1 worker": [], "ray, 2 workers": []}
    load = os.getloadavg()
    for _ in range(repeat):
        runs["single process"].append(_index(videos, work, None))
        runs["ray, 1 worker"].append(_index(videos, work, 1))
        runs["ray, 2 workers"].append(_index(videos, work, 2))
    rows = {}
    for name, rs in runs.items():
        seconds = statistics.median(r["seconds"] for r in rs)
        rows[name] = {"seconds": round(seconds, 2), "ray_init_s": round(statistics.median(r["ray_init_s"] for r in rs), 2),
                      "videos_per_s": round(rs[0]["videos"] / seconds, 2),
                      "realtime": round(rs[0]["video_s"] / seconds, 1), "runs": len(rs)}
    base = rows["single process"]["seconds"]
    for row in rows.values():
        row["speed_vs_single"] = round(base / row["seconds"], 2)
    result = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "load_average_at_start": load,
              "videos": len(list(videos.iterdir())), "video_seconds": round(runs["single process"][0]["video_s"], 1),
              "rows": rows}
    print(json.dumps(result, indent=2))
    if json_out:
        json_out.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
