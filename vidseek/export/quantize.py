"""Shrink a bundle's text encoder: int8 (dynamic) or fp16 weights, checked against the fp32 graph.

A transformer word tower (all-MiniLM-L6-v2) makes ``text_encoder.onnx`` about 90 MB in fp32, most
of it the tower's weights and its 30k-token embedding table. ``int8`` stores the weights of every
MatMul and of the embedding Gathers as int8 with a scale per output channel (onnxruntime's dynamic
quantization: activations are quantized on the fly at run time), about a quarter of the size;
``fp16`` stores all float tensors in half precision and keeps float32 inputs and outputs, half the
size. Only the text encoder changes: the video side and the head stay fp32.

The result must agree with the fp32 graph it replaces: every output the engine uses (the sentence
or phrase embeddings, PLPNet's word attention, the retrieval embedding) is compared on a set of
queries by cosine similarity per query, and ``quantize_text_encoder`` refuses (leaving the bundle
as it was) when the lowest is under ``min_cosine``. ``bundle.json`` records what was done and the
agreement measured, and its file hashes are updated so ``load_bundle`` verifies the new graph.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from vidseek.atomic import atomic_write_text
from vidseek.engine.bundle import load_bundle, sha256
from vidseek.engine.grounder import Grounder
from vidseek.engine.session import make_session

MODES = ("int8", "fp16")
MIN_COSINE = 0.98  # lowest per-query cosine similarity to the fp32 graph that is accepted
CHECKED_OUTPUTS = ("word_features", "sentence", "phrases", "word_att", "retrieval")
DEFAULT_QUERIES = (
    "person opens the door", "someone turns on the light", "a man sits down on the chair",
    "the woman in the red shirt picks up a box", "somebody throws the ball", "person walks out of the room",
    "a tall person waves", "someone puts down the blue ball", "person closes the door then leaves",
    "a child jumps", "two people talk near the window", "someone drinks from a cup",
)


def _quantize(src: Path, dst: Path, mode: str) -> None:
    if mode == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gather"],
                         per_channel=True)
    elif mode == "fp16":
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
        onnx.save(model, str(dst))
    else:
        raise ValueError(f"text encoder quantization must be one of {MODES}, got {mode!r}")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-query cosine similarity of two (B, ...) arrays, each query's values flattened."""
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    den = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return (a * b).sum(1) / den


def agreement(reference: Grounder, candidate: Grounder, queries: list[str]) -> dict[str, float]:
    """Lowest per-query cosine similarity, per output, of ``candidate``'s text encoder to ``reference``'s.

    Queries are encoded one at a time, so padding never enters the comparison.
    """
    worst: dict[str, float] = {}
    for q in queries:
        ref, got = reference.encode_text([q]), candidate.encode_text([q])
        for key in CHECKED_OUTPUTS:
            if key in ref:
                worst[key] = min(worst.get(key, 1.0), float(_cosines(ref[key], got[key]).min()))
    return worst


def quantize_text_encoder(bundle_dir: str | Path, mode: str = "int8", queries: list[str] | None = None,
                          min_cosine: float = MIN_COSINE) -> dict:
    """Replace BUNDLE_DIR/text_encoder.onnx by its ``mode`` version, ``text_encoder.MODE.onnx``, if it
    agrees with the fp32 graph.

    Returns the record stored in bundle.json under ``graphs.text_encoder.quantized``: mode, bytes
    before and after, and the lowest cosine similarity per output over ``queries``.
    """
    bundle = load_bundle(bundle_dir)
    graph = bundle.graphs["text_encoder"]
    if graph.get("quantized"):
        raise ValueError(f"the text encoder of {bundle.path} is already quantized ({graph['quantized']['mode']}); "
                         "export the run again to start from fp32")
    src = bundle.graph_path("text_encoder")
    reference = Grounder(bundle)
    queries = list(queries or DEFAULT_QUERIES)
    readable = [q for q in queries if _readable(reference, q)]
    final = bundle.path / f"text_encoder.{mode}.onnx"
    with tempfile.TemporaryDirectory(dir=bundle.path) as tmp:
        dst = Path(tmp) / final.name
        _quantize(src, dst, mode)
        cand = copy.copy(reference)  # the reference's tokenizer and sessions, with the new text graph
        cand.sessions = {**reference.sessions, "text_encoder": make_session(dst, "onnxruntime")}
        worst = agreement(reference, cand, readable)
        if not worst or min(worst.values()) < min_cosine:
            raise ValueError(f"the {mode} text encoder disagrees with the fp32 one (lowest cosine similarity per "
                             f"output {worst}, need >= {min_cosine}); keep the fp32 graph or try another mode")
        record = {"mode": mode, "bytes_fp32": src.stat().st_size, "bytes": dst.stat().st_size,
                  "min_cosine_vs_fp32": {k: round(v, 5) for k, v in worst.items()}, "queries": len(readable)}
        os.replace(dst, final)
    # bundle.json switches to the new file in one atomic write; only then does the fp32 graph go, so a
    # crash at any point leaves a bundle that verifies (old graph, or new graph and a stray old file)
    meta = json.loads((bundle.path / "bundle.json").read_text())
    meta["graphs"]["text_encoder"].update(file=final.name, quantized=record)
    del meta["files"][src.name]
    meta["files"][final.name] = sha256(final)
    atomic_write_text(bundle.path / "bundle.json", json.dumps(meta, indent=2))
    src.unlink()
    return record


def _readable(g: Grounder, query: str) -> bool:
    from vidseek.engine.grounder import QueryError

    try:
        g.tokenize([query])
    except QueryError:
        return False
    return True
