"""Export of a frame encoder (the built-in CNN or a CLIP image tower) to one ONNX graph.

The graph is the registry's ``frame_encoder``: ``pixels`` (frames, 3, H, W) float32, preprocessed per the
encoder's FrameSpec, -> ``frame_features`` (frames, D) float32, with a dynamic ``frames`` axis.
Self-contained: torch and onnx are imported inside the functions.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

OPSET = 17


def _frame_graph():
    """The frame_encoder entry of the engine's graph table (the same for every model family)."""
    from vidseek.engine.registry import FRAME_GRAPH

    return FRAME_GRAPH


def export_frame_encoder(encoder, path: str | Path, spec, opset: int = OPSET) -> dict:
    """Write ``encoder`` (a FrameEncoder or an nn.Module mapping (N, 3, H, W) -> (N, D)) to ONNX at ``path``.

    ``spec`` is the FrameSpec the encoder expects (it fixes H and W). Returns a JSON-ready description:
    ``{"graph", "opset", "inputs": [{"name", "shape", "dtype"}], "outputs": [...], "dynamic_axes", "spec"}``,
    where symbolic axes are strings (``"frames"``).
    """
    import onnx
    import torch

    module = getattr(encoder, "module", encoder)
    graph = _frame_graph()
    (pixels,), (features,) = graph.inputs, graph.outputs
    axis = graph.dynamic[pixels][0]  # "frames"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    was_training, device = module.training, next(module.parameters()).device
    module.eval().cpu()
    try:
        example = torch.zeros(2, 3, spec.height, spec.width)  # batch 2 so the tracer keeps the batch axis symbolic
        with torch.no_grad():
            dim = int(module(example).shape[-1])
        tmp = path.with_name(f".{path.name}.tmp")
        with warnings.catch_warnings():  # the TorchScript exporter warns that it is the legacy path
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), str(tmp), dynamo=False, opset_version=opset,
                              input_names=[pixels], output_names=[features],
                              dynamic_axes={pixels: {0: axis}, features: {0: axis}}, do_constant_folding=True)
        onnx.checker.check_model(str(tmp))
        tmp.replace(path)
    finally:
        module.to(device).train(was_training)
    return {
        "graph": graph.name,
        "opset": opset,
        "inputs": [{"name": pixels, "shape": [axis, 3, spec.height, spec.width], "dtype": "float32"}],
        "outputs": [{"name": features, "shape": [axis, dim], "dtype": "float32"}],
        "dynamic_axes": {pixels: {"0": axis}, features: {"0": axis}},
        "spec": spec.to_dict(),
    }


def frame_encoder_parity(encoder, path: str | Path, spec, batch_sizes=(1, 5), seed: int = 0) -> dict[int, float]:
    """Largest |onnxruntime - PyTorch| over the outputs for random pixels at each batch size."""
    import onnxruntime as ort
    import torch

    module = getattr(encoder, "module", encoder)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rng = np.random.default_rng(seed)
    device = next(module.parameters()).device
    module.eval()
    diffs = {}
    for n in batch_sizes:
        x = rng.standard_normal((n, 3, spec.height, spec.width)).astype(np.float32)
        with torch.no_grad():
            ref = module(torch.from_numpy(x).to(device)).float().cpu().numpy()
        out = session.run(None, {name: x})[0]
        if out.shape != ref.shape:
            raise AssertionError(f"{path}: ONNX output shape {out.shape} != PyTorch {ref.shape} at batch {n}")
        diffs[n] = float(np.abs(out - ref).max())
    return diffs
