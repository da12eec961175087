"""The backends the benchmark compares, each opened as a ``Grounder`` whose sessions run one way.

Every backend gives the same ``Grounder`` interface (``encode_text``, ``video_outputs``, ``head``,
``video_features``), so each stage is timed through the code the product runs; only the
``sessions`` dict differs:

- ``pytorch``: the run's PyTorch modules in eager mode (the very modules ``vidseek export`` traces),
  fed the same numpy arrays; needs ``--run RUN_DIR`` and torch.
- ``onnxruntime``, ``onnxruntime-cuda``, ``onnxruntime-tensorrt``: the bundle's ONNX graphs through
  ``engine.session.make_session`` (CPU, CUDA and TensorRT execution providers).
- ``tensorrt-fp32``, ``tensorrt-fp16``, ``tensorrt-int8``: native TensorRT engines built from the
  bundle (``export.tensorrt.build_bundle_engines``, cached in the bundle folder). INT8 is calibrated
  on random inputs of the graphs' shapes, so its figures are speed only, not accuracy.

A backend that cannot run here raises ``BackendUnavailable`` with the reason; the benchmark reports
it and goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidseek.engine.bundle import Bundle
from vidseek.engine.grounder import Grounder
from vidseek.engine.registry import BACKENDS, GRAPH_NAMES
from vidseek.engine.session import BackendUnavailable

BENCH_BACKENDS = ("pytorch", "onnxruntime", "onnxruntime-cuda", "onnxruntime-tensorrt",
                  "tensorrt-fp32", "tensorrt-fp16", "tensorrt-int8")
LABELS = {
    "pytorch": "PyTorch eager (CPU)",
    "onnxruntime": "ONNX Runtime CPU",
    "onnxruntime-cuda": "ONNX Runtime CUDA",
    "onnxruntime-tensorrt": "ONNX Runtime TensorRT EP",
    "tensorrt-fp32": "TensorRT FP32",
    "tensorrt-fp16": "TensorRT FP16",
    "tensorrt-int8": "TensorRT INT8",
}
PARITY_TOLERANCE = 1e-3  # max |difference| between the eager modules and the bundle's graphs


@dataclass
class BackendStatus:
    """Whether a backend ran here, and why not when it did not."""

    name: str
    available: bool
    reason: str | None = None
    detail: str | None = None  # e.g. the measured parity of the eager modules with the bundle

    def to_dict(self) -> dict:
        return {"name": self.name, "label": LABELS.get(self.name, self.name), "available": self.available,
                "reason": self.reason, "detail": self.detail}


class TorchSession:
    """A PyTorch module behind the session interface: numpy feeds in, numpy outputs out, in
    inference mode on the CPU. Inputs are passed in the graph's input order."""

    def __init__(self, module, inputs: list[str], outputs: list[str]):
        import torch

        self.torch = torch
        self.module = module.eval()
        self._in, self._out = list(inputs), list(outputs)

    def inputs(self) -> list[str]:
        return list(self._in)

    def outputs(self) -> list[str]:
        return list(self._out)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self.torch
        with torch.inference_mode():
            result = self.module(*(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self._in))
        result = result if isinstance(result, tuple) else (result,)
        return {name: value.numpy() for name, value in zip(self._out, result)}


def graph_io(bundle: Bundle, graph: str) -> tuple[list[str], list[str]]:
    """Input and output names of one graph of the bundle, in order."""
    meta = bundle.graphs[graph]
    return [i["name"] for i in meta["inputs"]], [o["name"] for o in meta["outputs"]]


def same_run(bundle: Bundle, run_config: dict) -> str | None:
    """None when the run folder's config is the one the bundle was exported from, else why not."""
    trained = bundle.meta.get("trained") or {}
    if run_config.get("model") != bundle.meta.get("model"):
        return "its model config differs from the bundle's"
    if trained.get("data") is not None and json.dumps(run_config.get("data"), sort_keys=True) != \
            json.dumps(trained["data"], sort_keys=True):
        return "its data settings differ from those recorded in the bundle (bundle.json 'trained')"
    return None


def _torch_sessions(bundle: Bundle, run_dir: Path | None, threads: int | None) -> tuple[dict, str]:
    """Eager sessions for every graph of the bundle, and a note on their parity with the bundle."""
    if run_dir is None:
        raise BackendUnavailable("needs the PyTorch weights: pass --run RUN_DIR (the run the bundle was exported from)")
    try:
        import torch
    except ImportError:
        raise BackendUnavailable("torch is not installed (pip install 'vidseek[train]')") from None
    try:
        from vidseek.export.onnx import HeadGraph, TextEncoderGraph, VideoEncoderGraph, frame_encoder_for
        from vidseek.trainer.checkpoint import load_run
    except ImportError as exc:
        raise BackendUnavailable(f"the PyTorch side of vidseek cannot be imported ({exc}); "
                                 "pip install 'vidseek[train]'") from None
    if threads:
        torch.set_num_threads(int(threads))
    try:
        run = load_run(run_dir)
    except (OSError, ValueError) as exc:
        raise BackendUnavailable(f"cannot load the run {run_dir}: {exc}") from None
    mismatch = same_run(bundle, run.config)
    if mismatch:
        raise BackendUnavailable(f"{run_dir} is not the run of this bundle: {mismatch}")
    modules = {"video_encoder": VideoEncoderGraph(run.model), "text_encoder": TextEncoderGraph(run.model, run.featurizer),
               "head": HeadGraph(run.model)}
    if "frame_encoder" in bundle.graphs:
        found = frame_encoder_for(run)
        if found is None:
            raise BackendUnavailable(f"{run_dir} has no frame encoder but the bundle has one")
        modules["frame_encoder"] = found[0].float()
    return {g: TorchSession(m, *graph_io(bundle, g)) for g, m in modules.items() if g in bundle.graphs}, \
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"


def _tensorrt_sessions(bundle: Bundle, precision: str) -> tuple[dict, str]:
    """Native TensorRT sessions for every graph, building (or reusing) the engines."""
    from vidseek.engine.session import TrtSession
    from vidseek.export.tensorrt import build_bundle_engines

    calib = calibration_inputs(bundle) if precision == "int8" else None
    try:
        folder = build_bundle_engines(bundle, precision, calib)
    except BackendUnavailable:
        raise
    except Exception as exc:  # no GPU, unsupported precision, a graph TensorRT cannot parse: say so and go on
        raise BackendUnavailable(f"could not build {precision} engines: {type(exc).__name__}: {exc}") from None
    return {g: TrtSession(folder / f"{g}.engine") for g in bundle.graphs}, f"engines in {folder}"


def open_backend(name: str, bundle: Bundle, run_dir: str | Path | None = None,
                 threads: int | None = None) -> tuple[Grounder, BackendStatus]:
    """A ``Grounder`` of ``bundle`` whose sessions run on backend ``name``, and its status.

    Raises ``BackendUnavailable`` (with the reason) when the backend cannot run here.
    """
    if name not in BENCH_BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BENCH_BACKENDS)}")
    if name.startswith("onnxruntime"):
        try:
            grounder = Grounder(bundle, name, threads=threads)
            grounder.warm(GRAPH_NAMES)  # graphs load lazily: load them here, where a failure is caught
        except BackendUnavailable:
            raise
        except Exception as exc:  # a provider that is listed but fails to start (no device, driver mismatch)
            raise BackendUnavailable(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}") from None
        wanted = BACKENDS[name]["providers"][0]
        active = next(iter(grounder.sessions.values())).providers()
        if wanted not in active:
            raise BackendUnavailable(f"onnxruntime could not start {wanted} and fell back to {', '.join(active)}")
        return grounder, BackendStatus(name, True, detail=f"onnxruntime {_ort_version()}, providers {', '.join(active)}")
    if name.startswith("tensorrt-"):
        sessions, detail = _tensorrt_sessions(bundle, name.split("-", 1)[1])
    else:
        sessions, detail = _torch_sessions(bundle, Path(run_dir) if run_dir else None, threads)
    grounder = Grounder(bundle, "onnxruntime", threads=threads)  # the interface; its sessions are replaced
    grounder.sessions = sessions
    return grounder, BackendStatus(name, True, detail=detail)


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def parity(reference: Grounder, other: Grounder, query: str, steps: int = 40, seed: int = 0) -> float:
    """Max |difference| of the text encoder, video encoder and head outputs of two backends on the
    same inputs (a check that they hold the same weights)."""
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(2, steps, reference.bundle.feature_dim)).astype(np.float32)
    mask = np.ones((2, steps), bool)
    worst = 0.0
    text_a, text_b = reference.encode_text([query]), other.encode_text([query])
    for key, value in text_a.items():
        if key != "tokens":
            worst = max(worst, float(np.abs(np.asarray(value) - np.asarray(text_b[key])).max()))
    video_a, video_b = reference.video_outputs(feats, mask), other.video_outputs(feats, mask)
    for key, value in video_a.items():
        worst = max(worst, float(np.abs(value - video_b[key]).max()))
    text = {k: v for k, v in text_a.items() if k != "tokens"}
    head_a = reference.head(video_a["video_states"], mask, text)
    head_b = other.head(video_a["video_states"], mask, text)
    for key, value in head_a.items():
        worst = max(worst, float(np.abs(value - head_b[key]).max()))
    return worst


def calibration_inputs(bundle: Bundle, items: int = 16, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Random INT8 calibration inputs {graph: {input: (items, ...)}} at each graph's typical shape:
    batch 1 of L steps, 16 words, one frame. Speed-only calibration: no accuracy claim."""
    rng = np.random.default_rng(seed)
    axes = {"batch": 1, "frames": 1, "time": bundle.length, "words": 16}
    vocab = max(2, bundle.tokenizer().get_vocab_size())
    out: dict[str, dict[str, np.ndarray]] = {}
    for graph, meta in bundle.graphs.items():
        arrays = {}
        for inp in meta["inputs"]:
            dims = [axes.get(d, 1) if isinstance(d, str) else int(d) for d in inp["shape"]]
            dims[0] = items * dims[0]
            if inp["dtype"] == "bool":
                arrays[inp["name"]] = np.ones(dims, bool)
            elif inp["dtype"].startswith("int"):
                arrays[inp["name"]] = (np.ones(dims, np.int64) if inp["name"] == "attention_mask"
                                       else rng.integers(1, vocab, size=dims)).astype(inp["dtype"])
            else:
                arrays[inp["name"]] = rng.normal(0, 0.5, size=dims).astype(inp["dtype"])
        out[graph] = arrays
    return out
