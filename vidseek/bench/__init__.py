"""Latency benchmarks of vidseek (``vidseek bench``): every stage timed on the product's own code,
on every backend side by side in one run, and at library sizes up to 100k videos.

Parts (``--parts``):

- ``graphs``: each ONNX graph's session (or the PyTorch eager module it was exported from) on one
  typical input, per backend: a 64-frame chunk for the frame encoder, one ~35 s video for the video
  encoder, one query for the text encoder, the search's batch of candidate windows for the head.
- ``index``: per video, as ``vidseek index`` runs it: decode (+ sampling and preprocessing), frame
  encoder, video encoder; videos/s and real-time factor (seconds of video per second of work).
- ``query``: ``Searcher.search`` on synthetic libraries of the sizes asked for (``library.py``),
  each measured in a fresh process (``scale.py``): per stage (tokenize, text encoder, FAISS, cache
  reads, head, post-processing) and end to end, p50/p95/p99 and queries/s, plus process memory and
  index file sizes; optionally a cProfile of the query path.
- ``naive``: the search without a clip index (the head on every whole video), for the ratio.
- ``faiss``: Flat vs HNSW vs IVF on the library's clip vectors, latency and recall@k against exact.

Backends (``backends.py``): PyTorch eager (with ``--run``), ONNX Runtime CPU / CUDA / TensorRT EP,
native TensorRT FP32 / FP16 / INT8; one that cannot run here is reported as unavailable with the
reason. ``run.run_benchmark`` returns the report (a dict, written as JSON by ``--json-out``);
``report.py`` renders its tables and the plot.
"""

from __future__ import annotations

from vidseek.bench.run import PARTS, BenchConfig, run_benchmark

__all__ = ["PARTS", "BenchConfig", "run_benchmark"]
