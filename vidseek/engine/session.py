"""Inference sessions with one face: ``inputs()``, ``outputs()``, ``run(feeds) -> {name: array}``.

OrtSession runs an ONNX graph with onnxruntime (CPU, CUDA or TensorRT execution providers);
TrtSession runs a serialized TensorRT engine with cuda-python for device memory. Torch-free.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidseek.engine.bundle import BundleError
from vidseek.engine.registry import BACKENDS
from vidseek.errors import VidseekError


class BackendUnavailable(VidseekError, RuntimeError):
    """The requested backend cannot run on this machine; the message says what to install."""


def session_options(threads: int | None = None, spinning: bool = False):
    """onnxruntime ``SessionOptions`` for vidseek's graphs, tuned with ``vidseek bench``.

    - every graph optimisation (``ORT_ENABLE_ALL``: constant folding, fusions, layout changes);
    - ``threads`` intra-op threads (default: onnxruntime's, one per physical core); one graph runs
      at a time, so a single inter-op thread and sequential execution;
    - no spin-waiting of the intra-op threads after a run (``spinning=False``): a search runs
      FAISS, cache reads and numpy post-processing between its graph calls, and spinning threads
      would take the cores from them (measured on a loaded 2-core machine: p95 of a lone FAISS
      query 8.5 ms after a spinning text-encoder run; text encoder p50 5.4 vs 9.5 ms without spinning).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
    return opts


class OrtSession:
    def __init__(self, path: str | Path, providers=("CPUExecutionProvider",), provider_options=None, threads: int | None = None):
        import onnxruntime as ort

        missing = [p for p in providers if p not in ort.get_available_providers()]
        if missing:
            raise BackendUnavailable(
                f"onnxruntime here has no {', '.join(missing)} (available: {', '.join(ort.get_available_providers())}); "
                "install vidseek[gpu] (onnxruntime-gpu) on a machine with an NVIDIA GPU, or use the CPU backend"
            )
        opts = session_options(threads)
        self.path = Path(path)
        try:
            self._s = ort.InferenceSession(str(path), opts, providers=list(providers),
                                           provider_options=provider_options or [{} for _ in providers])
        except Exception as exc:  # onnxruntime's own errors (Fail, InvalidGraph, NoSuchFile ...)
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            raise BundleError(f"onnxruntime cannot load the graph {path} ({lines[0][:300]}): the file is damaged, "
                              "or its external data is missing or lies outside the bundle folder; re-export the "
                              "bundle with `vidseek export`") from None
        self._outputs = [o.name for o in self._s.get_outputs()]

    def inputs(self) -> list[str]:
        return [i.name for i in self._s.get_inputs()]

    def providers(self) -> list[str]:
        """The execution providers onnxruntime actually runs this graph with, in priority order."""
        return list(self._s.get_providers())

    def outputs(self) -> list[str]:
        return list(self._outputs)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._outputs, self._s.run(self._outputs, feeds)))


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            raise BackendUnavailable("native TensorRT needs cuda-python: pip install 'vidseek[tensorrt]'") from None
    return cudart


def _check(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {err}")
    return rest[0] if len(rest) == 1 else rest


class TrtSession:
    """A TensorRT engine file run with explicit device buffers (reused while shapes fit)."""

    def __init__(self, path: str | Path):
        try:
            import tensorrt as trt
        except ImportError:
            raise BackendUnavailable("TensorRT is not installed: pip install 'vidseek[tensorrt]' (or use JetPack's)") from None
        self.trt, self.cudart = trt, _cudart()
        self.path = Path(path)
        logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise BundleError(f"TensorRT cannot load the engine {path}: it was built for another GPU or TensorRT "
                              "version; build the engines again on this machine (`vidseek export --format tensorrt`)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self._in = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._out = [n for n in names if n not in self._in]
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        self.stream = _check(self.cudart.cudaStreamCreate())

    def inputs(self) -> list[str]:
        return list(self._in)

    def outputs(self) -> list[str]:
        return list(self._out)

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                _check(self.cudart.cudaFree(ptr))
            ptr = _check(self.cudart.cudaMalloc(max(nbytes, 1)))
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart, h2d, d2h = self.cudart, self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self._in:
            dtype = np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(name)))
            arr = np.ascontiguousarray(feeds[name], dtype=dtype)
            self.context.set_input_shape(name, arr.shape)
            ptr = self._buffer(name, arr.nbytes)
            _check(cudart.cudaMemcpyAsync(ptr, arr.ctypes.data, arr.nbytes, h2d, self.stream))
            self.context.set_tensor_address(name, ptr)
        results = {}
        for name in self._out:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(name)))
            results[name] = np.empty(shape, dtype)
            self.context.set_tensor_address(name, self._buffer(name, results[name].nbytes))
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError(f"{self.path}: TensorRT execution failed")
        for name, arr in results.items():
            _check(cudart.cudaMemcpyAsync(arr.ctypes.data, self._buffers[name][0], arr.nbytes, d2h, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        return results

    def __del__(self):
        for ptr, _ in getattr(self, "_buffers", {}).values():
            self.cudart.cudaFree(ptr)


def make_session(path: str | Path, backend: str = "onnxruntime", cache_dir: str | Path | None = None,
                 fp16: bool = False, threads: int | None = None):
    """A session for one graph file on `backend` (a key of ``registry.BACKENDS``)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if backend == "tensorrt":
        return TrtSession(path)
    providers = BACKENDS[backend]["providers"]
    options = []
    for p in providers:
        if p == "TensorrtExecutionProvider":
            options.append({"trt_fp16_enable": fp16, "trt_engine_cache_enable": True,
                            "trt_engine_cache_path": str(cache_dir or Path(path).parent / "trt_cache")})
        else:
            options.append({})
    return OrtSession(path, providers, options, threads)
