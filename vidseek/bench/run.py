"""``run_benchmark(config)``: every part of ``vidseek bench`` in one run, side by side, as one report."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from vidseek import __version__
from vidseek.library import CANDIDATES
from vidseek.bench.backends import BENCH_BACKENDS, PARITY_TOLERANCE, BackendStatus, open_backend, parity
from vidseek.bench.library import LibrarySpec, bundle_dims, bundle_rate, synthetic_library
from vidseek.bench.report import compute_ratios, library_versions, machine_info
from vidseek.bench.scale import LibraryJob, measure_library, run_in_fresh_process
from vidseek.bench.stages import graph_feeds, graph_stages, index_stages, known_queries
from vidseek.engine.bundle import Bundle, load_bundle
from vidseek.engine.grounder import Grounder
from vidseek.engine.session import BackendUnavailable

PARTS = ("graphs", "index", "query", "naive", "faiss")


@dataclass
class BenchConfig:
    """What to measure and how often; see ``vidseek bench --help`` for each setting."""

    bundle: Path
    run_dir: Path | None = None
    backends: tuple[str, ...] = BENCH_BACKENDS
    library_sizes: tuple[int, ...] = (1000,)
    parts: tuple[str, ...] = PARTS
    videos: Path | None = None  # video files for the index-time stages (default: rendered with `vidseek synth`)
    index_videos: int = 3
    warmup: int = 10
    repeat: int = 100
    index_repeat: int = 10  # with 3, the ORT vs eager ratio of the frame encoder once flipped (noise)
    candidates: int = CANDIDATES
    top_k: int = 10
    threads: int | None = None
    naive_max: int = 1000
    naive_repeat: int = 3
    faiss_queries: int = 200
    profile: int = 0
    min_seconds: float = 10.0
    max_seconds: float = 60.0
    seed: int = 0
    work_dir: Path | None = None
    fresh_process: bool = True


def bundle_info(bundle: Bundle) -> dict:
    """What the report says about the bundle measured: model, hidden sizes, dims, graph files."""
    cfg = bundle.meta["model"].get("config", {})
    hidden = {k: cfg[k] for k in ("video_hidden", "query_hidden", "span_hidden", "mlp_hidden", "dim", "retrieval_dim")
              if k in cfg}
    d, h, e = bundle_dims(bundle)
    fe = bundle.meta["features"].get("frame_encoder") or {}
    return {"path": str(bundle.path), "model": bundle.model_name, "fingerprint": bundle.fingerprint,
            "hidden": hidden, "feature_dim": d, "state_dim": h, "retrieval_dim": e, "length": bundle.length,
            "rate": bundle_rate(bundle),
            "words": {k: v for k, v in (bundle.meta.get("words") or {}).items() if k in ("kind", "model", "dim")},
            "frame_spec": fe.get("spec"),
            "graph_bytes": {g: bundle.graph_path(g).stat().st_size for g in bundle.graphs}}


def _order(backends: tuple[str, ...]) -> list[str]:
    """ONNX Runtime CPU first (the reference, and the memory figures are taken right after it, before
    torch is loaded), then the rest in the registry's order."""
    wanted = set(backends)
    first = ["onnxruntime"] if "onnxruntime" in wanted else []
    return first + [b for b in BENCH_BACKENDS if b in wanted and b != "onnxruntime"]


def _videos_for_index(config: BenchConfig, work: Path, log: Callable[[str], None]) -> list[Path]:
    """The video files the index-time stages run on: ``config.videos`` or freshly rendered ones."""
    from vidseek.index.catalog import VIDEO_SUFFIXES

    if config.videos is not None:
        files = sorted(p for p in Path(config.videos).rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
        if not files:
            raise ValueError(f"no video files under {config.videos}")
        return files[: config.index_videos]
    from vidseek.synth.config import SynthConfig
    from vidseek.synth.writer import render_dataset

    folder = work / f"videos-{config.index_videos}-{config.seed}-{config.min_seconds:g}-{config.max_seconds:g}"
    files = sorted((folder / "videos").glob("*.mp4"))
    if len(files) < config.index_videos:
        log(f"rendering {config.index_videos} synthetic videos for the index-time stages into {folder}")
        render_dataset(folder, config.index_videos, seed=config.seed, progress=False,
                       config=SynthConfig(min_duration=config.min_seconds, max_duration=config.max_seconds))
        files = sorted((folder / "videos").glob("*.mp4"))
    return files[: config.index_videos]


def open_backends(bundle: Bundle, config: BenchConfig, reference: Grounder, query: str,
                  log: Callable[[str], None]) -> tuple[dict[str, Grounder], list[BackendStatus]]:
    """Every requested backend opened (or its reason for being unavailable); the PyTorch eager one
    is checked to hold the bundle's weights (max |difference| of every graph's outputs)."""
    grounders, statuses = {}, []
    for name in _order(config.backends):
        try:
            grounder, status = open_backend(name, bundle, config.run_dir, config.threads)
        except BackendUnavailable as exc:
            statuses.append(BackendStatus(name, False, reason=str(exc)))
            log(f"  {name}: unavailable: {exc}")
            continue
        if name != "onnxruntime":
            diff = parity(reference, grounder, query)
            status.detail = f"{status.detail}; max |output difference| vs ONNX Runtime CPU {diff:.1e}"
            if name == "pytorch" and diff > PARITY_TOLERANCE:
                quantized = (bundle.graphs["text_encoder"].get("quantized") or {}).get("mode")
                why = (f"the bundle's text encoder is {quantized}, the run's fp32: export the run again "
                       "(`vidseek export RUN_DIR --out BUNDLE`) and bench that bundle to compare on the same weights"
                       if quantized else "not the same weights")
                statuses.append(BackendStatus(name, False, reason=f"the run's outputs differ from the bundle's by "
                                              f"{diff:.2e} (> {PARITY_TOLERANCE:g}): {why}"))
                log(f"  {name}: unavailable: {statuses[-1].reason}")
                continue
        grounders[name] = grounder
        statuses.append(status)
        log(f"  {name}: ok ({status.detail})")
    return grounders, statuses


def run_benchmark(config: BenchConfig, log: Callable[[str], None] = print) -> dict:
    """Run the parts of the benchmark in ``config.parts`` and return the report (see
    ``vidseek.bench`` for its layout)."""
    unknown = set(config.parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    bundle = load_bundle(config.bundle)
    bundle_dims(bundle)  # refuses bundles without a retrieval embedding
    rate = bundle_rate(bundle)
    temporary = config.work_dir is None
    work = Path(tempfile.mkdtemp(prefix="vidseek-bench-")) if temporary else Path(config.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    report: dict = {
        "vidseek_version": __version__, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(), "versions": library_versions(), "bundle": bundle_info(bundle),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "backends": [], "graphs": {}, "index": {}, "libraries": [],
    }
    try:
        reference = Grounder(bundle, "onnxruntime", threads=config.threads)
        queries = known_queries(reference)
        report["queries"] = queries
        log("backends:")
        grounders, statuses = open_backends(bundle, config, reference, queries[0], log)
        report["backends"] = [s.to_dict() for s in statuses]
        window_steps = max(1, round(LibrarySpec(1).window_s * rate))
        if "graphs" in config.parts:
            feeds = graph_feeds(bundle, reference, queries[0], config.candidates, window_steps, rate, config.seed)
            for name, grounder in grounders.items():
                log(f"graphs alone: {name}")
                report["graphs"][name] = graph_stages(grounder, feeds, config.warmup, config.repeat)
        if "index" in config.parts:
            if "frame_encoder" not in bundle.graphs:
                report["index"] = {"skipped": "the bundle has no frame encoder (it expects precomputed features)"}
            else:
                videos = _videos_for_index(config, work, log)
                for name, grounder in grounders.items():
                    log(f"index time: {name} on {len(videos)} videos")
                    report["index"][name] = index_stages(grounder, videos, 1, config.index_repeat)
        del grounders
        if "query" in config.parts:
            available = [s.name for s in statuses if s.available]
            for i, size in enumerate(config.library_sizes):
                folder = work / f"library-{size}-{config.seed}-{config.min_seconds:g}-{config.max_seconds:g}"
                log(f"library of {size} videos: writing or reusing {folder}")
                info = synthetic_library(folder, bundle, LibrarySpec(size, config.min_seconds, config.max_seconds,
                                                                     seed=config.seed),
                                         progress=lambda done, total: log(f"  {done}/{total} videos written"))
                job = LibraryJob(str(folder), str(bundle.path), available, queries, config.warmup, config.repeat,
                                 config.top_k, config.candidates,
                                 run_dir=str(config.run_dir) if config.run_dir else None, threads=config.threads,
                                 naive_max=config.naive_max if "naive" in config.parts else 0,
                                 naive_repeat=config.naive_repeat,
                                 faiss_queries=config.faiss_queries if "faiss" in config.parts else 0,
                                 profile=config.profile if i == 0 else 0)
                log(f"library of {size} videos: measuring searches ({', '.join(available)})")
                result = run_in_fresh_process(job) if config.fresh_process else measure_library(job)
                report["libraries"].append({"videos": size, "library": info, **result})
    finally:
        if temporary:
            shutil.rmtree(work, ignore_errors=True)
    report["ratios"] = compute_ratios(report)
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    return report
