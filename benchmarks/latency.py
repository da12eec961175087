"""Reproduce the figures of docs/benchmarks.md: `vidseek bench` with the settings the doc states.

    python benchmarks/latency.py --model BUNDLE --run RUN_DIR                 # 1k, 10k, 100k videos
    python benchmarks/latency.py --model BUNDLE --run RUN_DIR --sizes 1000     # a quick look

Writes the report to benchmarks/results/latency.json and the plot to docs/benchmarks-latency.png,
and prints the tables. Synthetic libraries are kept in --work-dir (default ~/.cache/vidseek-bench)
and reused by the next run: the 100k library is ~18 GB of float16 states, and building its HNSW
index takes about an hour on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidseek.bench.report import cpu_name

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="bundle folder")
    parser.add_argument("--run", help="the run folder the bundle was exported from (PyTorch eager rows)")
    parser.add_argument("--sizes", default="1000,10000,100000", help="library sizes, videos")
    parser.add_argument("--repeat", type=int, default=100, help="timed calls and searches")
    parser.add_argument("--work-dir", default=str(Path.home() / ".cache" / "vidseek-bench"))
    parser.add_argument("--json-out", default=str(ROOT / "benchmarks" / "results" / "latency.json"))
    parser.add_argument("--plot", default=str(ROOT / "docs" / "benchmarks-latency.png"))
    args = parser.parse_args()

    from vidseek.cli.main import cli

    print(f"machine: {cpu_name()}", file=sys.stderr)
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    argv = ["bench", "--model", args.model, "--library-size", args.sizes, "--repeat", str(args.repeat),
            "--warmup", "10", "--profile", "20", "--work-dir", args.work_dir, "--json-out", args.json_out,
            "--plot", args.plot, "--markdown-out", str(Path(args.json_out).with_suffix(".md"))]
    if args.run:
        argv += ["--run", args.run]
    return cli.main(argv, prog_name="vidseek", standalone_mode=False) or 0


if __name__ == "__main__":
    sys.exit(main())
