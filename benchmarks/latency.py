"""Reproduce the figures of docs/benchmarks.md: `vidseek bench` with the settings the doc states.

    python benchmarks/latency.py                                    # the built-in bundle, 1k, 10k, 100k videos
    python benchmarks/latency.py --model BUNDLE --run RUN_DIR --sizes 1000   # + PyTorch eager rows, a quick look

Writes the report to benchmarks/results/latency.json (and .md) and the plot to
docs/img/bench-latency.png, and prints the tables. Synthetic libraries are kept in --work-dir
(default ~/.cache/vidseek-bench) and reused by the next run: with the built-in bundle the 100k
library is 8.5 GB of float16 states and 1.3 GB of HNSW index, written in 6 minutes and indexed in
14 on a 2-core CPU. The committed results/latency.json is the run docs/benchmarks.md quotes;
results/latency-fp32.json is its ONNX Runtime vs PyTorch comparison on an fp32 export.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidseek.bench.report import cpu_name

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin", help="bundle folder (default: the built-in bundle)")
    parser.add_argument("--run", help="the run folder the bundle was exported from (PyTorch eager rows)")
    parser.add_argument("--sizes", default="1000,10000,100000", help="library sizes, videos")
    parser.add_argument("--repeat", type=int, default=100, help="timed calls and searches")
    parser.add_argument("--work-dir", default=str(Path.home() / ".cache" / "vidseek-bench"))
    parser.add_argument("--json-out", default=str(ROOT / "benchmarks" / "results" / "latency.json"))
    parser.add_argument("--plot", default=str(ROOT / "docs" / "img" / "bench-latency.png"))
    args = parser.parse_args()

    from vidseek.cli.main import cli

    print(f"machine: {cpu_name()}", file=sys.stderr)
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    argv = ["bench", *(["--model", args.model] if args.model != "builtin" else []), "--library-size", args.sizes, "--repeat", str(args.repeat),
            "--warmup", "10", "--profile", "20", "--work-dir", args.work_dir, "--json-out", args.json_out,
            "--plot", args.plot, "--markdown-out", str(Path(args.json_out).with_suffix(".md"))]
    if args.run:
        argv += ["--run", args.run]
    return cli.main(argv, prog_name="vidseek", standalone_mode=False) or 0


if __name__ == "__main__":
    sys.exit(main())
