"""Build TensorRT engines from a bundle's ONNX graphs (GPU only; needs the `tensorrt` extra).

Engines are cached per GPU model, TensorRT version and precision under
``BUNDLE/tensorrt/<gpu>-trt<version>-<precision>/<graph>.engine`` and rebuilt only when the ONNX file
changes. Each dynamic axis gets an optimisation profile (min/opt/max). A requested precision the
GPU cannot run fast is an error, never a silent downgrade.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from vidseek.engine.bundle import Bundle
from vidseek.engine.session import BackendUnavailable, _check, _cudart
from vidseek.errors import VidseekError


class PrecisionUnsupported(VidseekError, RuntimeError):
    """The GPU cannot run the requested precision fast; never silently downgraded."""


class EngineBuildError(VidseekError, RuntimeError):
    """TensorRT could not parse a graph or build an engine from it; the message names the graph."""


# Axis ranges (min, opt, max) of the optimisation profiles; "time" opt/max follow the bundle's length L.
AXIS_RANGES = {"batch": (1, 8, 64), "frames": (1, 64, 256), "words": (1, 16, 64)}


def _trt():
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable("TensorRT is not installed: pip install 'vidseek[tensorrt]' (on Jetson it comes with JetPack)") from None
    return trt


def gpu_name() -> str:
    cudart = _cudart()
    props = _check(cudart.cudaGetDeviceProperties(0))
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return name.strip("\x00 ")


def engine_dir(bundle: Bundle, precision: str) -> Path:
    trt = _trt()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name()).strip("-").lower()
    return bundle.path / "tensorrt" / f"{slug}-trt{trt.__version__}-{precision}"


def profile_shapes(graph: dict, length: int) -> dict[str, tuple[tuple, tuple, tuple]]:
    """(min, opt, max) shape of every input from its named axes in bundle.json."""
    ranges = {**AXIS_RANGES, "time": (1, length, max(4 * length, 512))}
    shapes = {}
    for inp in graph["inputs"]:
        lo, opt, hi = [], [], []
        for d in inp["shape"]:
            if isinstance(d, str):
                r = ranges.get(d, (1, 16, 256))
                lo.append(r[0]), opt.append(r[1]), hi.append(r[2])
            else:
                lo.append(d), opt.append(d), hi.append(d)
        shapes[inp["name"]] = (tuple(lo), tuple(opt), tuple(hi))
    return shapes


class NpyCalibrator:
    """INT8 entropy calibration fed from arrays: {input name: (N, ...) array}, in batches of `batch`."""

    def __new__(cls, data: dict[str, np.ndarray], batch: int, cache: Path):
        trt = _trt()
        cudart = _cudart()

        class _Calibrator(trt.IInt8EntropyCalibrator2):
            def __init__(self):
                super().__init__()
                self.data, self.batch, self.cache, self.i = data, batch, cache, 0
                self.n = min(len(v) for v in data.values())
                self.ptrs = {k: _check(cudart.cudaMalloc(v[:batch].nbytes)) for k, v in data.items()}

            def get_batch_size(self):
                return self.batch

            def get_batch(self, names):
                if self.i + self.batch > self.n:
                    return None
                out = []
                for name in names:
                    arr = np.ascontiguousarray(self.data[name][self.i : self.i + self.batch])
                    _check(cudart.cudaMemcpy(self.ptrs[name], arr.ctypes.data, arr.nbytes,
                                             cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
                    out.append(self.ptrs[name])
                self.i += self.batch
                return out

            def read_calibration_cache(self):
                return self.cache.read_bytes() if self.cache.is_file() else None

            def write_calibration_cache(self, blob):
                self.cache.write_bytes(bytes(blob))

        return _Calibrator()


def build_engine(onnx_path: Path, engine_path: Path, shapes: dict, precision: str = "fp32", calibrator=None,
                 workspace_gib: float = 2.0) -> Path:
    trt = _trt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0 if int(trt.__version__.split(".")[0]) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if precision == "fp16":
        if not builder.platform_has_fast_fp16:
            raise PrecisionUnsupported(f"{gpu_name()} has no fast FP16: build with fp32")
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "int8":
        if not builder.platform_has_fast_int8:
            raise PrecisionUnsupported(f"{gpu_name()} has no fast INT8: build with --fp16 or fp32")
        if calibrator is None:
            raise ValueError("INT8 needs calibration data: pass --calib DATA")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
    elif precision != "fp32":
        raise ValueError(f"precision must be fp32, fp16 or int8, got {precision!r}")
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    if calibrator is not None:
        config.set_calibration_profile(profile)
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path} ({precision})")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_suffix(".tmp")
    tmp.write_bytes(bytes(blob))
    tmp.replace(engine_path)
    return engine_path


def build_bundle_engines(bundle: Bundle, precision: str = "fp32", calib: dict[str, dict[str, np.ndarray]] | None = None,
                         on_graph=None) -> Path:
    """Build (or reuse from the cache) one engine per graph; returns the engine folder."""
    if bundle.zero_shot:
        raise ValueError(f"{bundle.path} is a zero-shot CLIP bundle (no fixed length to build profiles for); run it "
                         "on TensorRT through onnxruntime with --backend onnxruntime-tensorrt")
    quantized = bundle.graphs.get("text_encoder", {}).get("quantized")
    if quantized:
        raise ValueError(f"the text encoder of {bundle.path} is onnxruntime {quantized['mode']}-quantized, which "
                         "TensorRT does not build; export the run again (fp32) and use --fp16 or --int8 here")
    out = engine_dir(bundle, precision)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "engines.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    for name, graph in bundle.graphs.items():
        onnx_file = bundle.graph_path(name)
        digest = bundle.meta["files"][graph["file"]]
        engine_path = out / f"{name}.engine"
        if manifest.get(name) == digest and engine_path.is_file():
            continue
        calibrator = None
        if precision == "int8":
            data = (calib or {}).get(name)
            if data is None:
                raise ValueError(f"INT8 needs calibration inputs for {name}: pass --calib with {', '.join(i['name'] for i in graph['inputs'])}")
            calibrator = NpyCalibrator(data, 8, out / f"{name}.calib")
        build_engine(onnx_file, engine_path, profile_shapes(graph, bundle.length), precision, calibrator)
        manifest[name] = digest
        manifest_path.write_text(json.dumps(manifest, indent=2))
        if on_graph:
            on_graph(name, engine_path)
    return out
