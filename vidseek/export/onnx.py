"""Export a trained run to a bundle of separate ONNX graphs (see ``vidseek.engine.registry``).

BUNDLE/
  video_encoder.onnx  text_encoder.onnx  head.onnx  [frame_encoder.onnx]
  tokenizer.json      the query tokenizer (``tokenizers``), run outside the graphs
  bundle.json         format version, model config, graph inputs/outputs, opset, dims, sha256 of every file
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidseek import __version__
from vidseek.engine.bundle import BUNDLE_FORMAT_VERSION, sha256
from vidseek.engine.registry import GraphSpec, family, graph_spec, graphs_for
from vidseek.atomic import atomic_write_text
from vidseek.trainer.checkpoint import Run, load_run
from vidseek.trainer.words import WORD_RE, ClipWords, LearnedWords, StaticWords, TransformerWords

DEFAULT_OPSET = 17


# ---- one torch module per graph ------------------------------------------------------------------


class VideoEncoderGraph(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, features, video_mask):
        states = self.model.encode_video(features, video_mask)
        if getattr(self.model, "retrieval", None) is not None:
            return states, self.model.retrieval.embed_steps(states)
        return states


class TextEncoderGraph(nn.Module):
    """Token ids in; word features, sentence embedding (and PLPNet's phrases and word attention) out.

    The word features are computed inside the graph: a frozen transformer tower, a static vector
    table, or the model's own learned embedding.
    """

    def __init__(self, model: nn.Module, featurizer):
        super().__init__()
        self.model = model
        self.outputs = graph_spec(model.cfg.name, "text_encoder", retrieval=True).outputs
        self.tower = self.clip = None
        self.register_buffer("table", None)
        if isinstance(featurizer, TransformerWords):
            self.tower = featurizer.st[0].auto_model
        elif isinstance(featurizer, ClipWords):
            self.clip = featurizer.tower
        elif isinstance(featurizer, StaticWords):
            words = sorted(featurizer.vectors)
            table = torch.zeros(len(words) + 2, featurizer.dim)
            table[2:] = torch.from_numpy(np.stack([featurizer.vectors[w] for w in words]).astype(np.float32))
            self.register_buffer("table", table)

    def forward(self, input_ids, attention_mask):
        mask = attention_mask > 0
        if self.tower is not None:
            words = self.tower(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            feats = words
        elif self.clip is not None:
            words = feats = self.clip(input_ids, attention_mask)[0]
        elif self.table is not None:
            words = feats = F.embedding(input_ids, self.table)
        else:
            words, feats = input_ids, self.model.embedding(input_ids)
        out = {"word_features": feats, **self.model.encode_text(words, mask)}
        return tuple(out[name] for name in self.outputs if name in out)  # "retrieval" only when the model has it


class HeadGraph(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.text = family(model.cfg.name).head_text
        self.outputs = graph_spec(model.cfg.name, "head").outputs

    def forward(self, video_states, video_mask, text):
        out = self.model.head(video_states, video_mask, {self.text: text})
        return tuple(out[name] for name in self.outputs)


# ---- tokenizer ----------------------------------------------------------------------------------


def word_level_tokenizer(vocab: dict[str, int], max_words: int):
    """A `tokenizers` WordLevel tokenizer that splits exactly like ``trainer.words.simple_tokenize``."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(WORD_RE.pattern), behavior="isolated")]
    )
    tok.enable_truncation(max_words)
    return tok


def write_tokenizer(featurizer, path: Path) -> None:
    """tokenizer.json for the bundle: the transformer's own, or a WordLevel one over the run's vocabulary."""
    if isinstance(featurizer, (TransformerWords, ClipWords)):
        tok = featurizer.st[0].tokenizer if isinstance(featurizer, TransformerWords) else featurizer.parts.tokenizer
        backend = getattr(tok, "backend_tokenizer", None) or getattr(tok, "_tokenizer", None)
        if backend is None:
            raise ValueError(f"the tokenizer of {featurizer.model!r} has no `tokenizers` backend to export")
        backend = backend.__class__.from_str(backend.to_str())
        backend.no_padding()
        backend.enable_truncation(featurizer.max_words)
        backend.save(str(path))
        return
    if isinstance(featurizer, LearnedWords):
        vocab = featurizer.vocab
    else:
        vocab = {"<pad>": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate(sorted(featurizer.vectors))}}
    word_level_tokenizer(vocab, featurizer.max_words).save(str(path))


# ---- export -------------------------------------------------------------------------------------


@dataclass
class GraphReport:
    name: str
    file: str
    seconds: float
    bytes: int


def _dummy_inputs(spec: GraphSpec, run: Run, module: nn.Module) -> tuple:
    b, t, m = 2, min(16, run.length), 6
    cfg = run.model.cfg
    if spec.name == "video_encoder":
        return torch.randn(b, t, run.config["data"]["feature_dim"]), torch.ones(b, t, dtype=torch.bool)
    if spec.name == "text_encoder":
        return torch.ones(b, m, dtype=torch.long), torch.ones(b, m, dtype=torch.long)  # id 1 exists in every vocabulary
    states = run.model.encode_video(torch.randn(b, t, run.config["data"]["feature_dim"]), torch.ones(b, t, dtype=torch.bool))
    text = torch.randn(b, cfg.n_phrases, cfg.dim) if spec.outputs[0] == "span" else torch.randn(b, 2 * cfg.query_hidden)
    return states.detach(), torch.ones(b, t, dtype=torch.bool), text


def _io_descriptions(path: Path, spec: GraphSpec, sizes: dict[str, tuple[int, ...]]) -> dict:
    """Inputs and outputs of a graph file: name, dtype and shape, with the registry's axis names for
    dynamic axes and the traced size for fixed ones (`sizes`: tensor name -> shape seen at export)."""
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model)

    def describe(values):
        out = []
        for v in values:
            tt = v.type.tensor_type
            axes = spec.dynamic.get(v.name, ())
            dims = [axes[i] if i < len(axes) and axes[i] else int(sizes[v.name][i]) for i in range(len(sizes[v.name]))]
            out.append({"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name, "shape": dims})
        return out

    return {"file": path.name, "stage": spec.stage, "inputs": describe(model.graph.input), "outputs": describe(model.graph.output)}


def export_graph(module: nn.Module, args: tuple, spec: GraphSpec, path: Path, opset: int) -> None:
    module = module.eval()  # a wrapper left in training mode would export active dropout
    dynamic_axes = {name: {i: ax for i, ax in enumerate(axes) if ax} for name, axes in spec.dynamic.items()}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter; parity is measured instead
        torch.onnx.export(module, args, str(path), input_names=list(spec.inputs), output_names=list(spec.outputs),
                          dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False)


def frame_encoder_for(run: Run):
    """The run's frame encoder as ``(module, FrameSpec, rate)``, or None for precomputed features.

    A jointly trained run carries its encoder; a run trained on `vidseek features` output names the
    encoder in its data settings, rebuilt here and checked against the weights the features came from.
    """
    from vidseek.engine.preprocess import FrameSpec

    joint = run.config["data"].get("frame_encoder")
    if joint:
        return run.model.encoder, FrameSpec.from_dict(joint["spec"]), joint["rate"]
    meta = run.config["data"].get("features_meta") or {}
    if not meta.get("encoder"):
        return None
    from vidseek.trainer.encoders import build_frame_encoder

    enc = build_frame_encoder(meta["encoder"])
    if meta.get("weights_sha256") and enc.weights_sha256() != meta["weights_sha256"]:
        raise ValueError(f"the features of {run.path} were made by {meta['encoder']} with other weights "
                         f"than it has now ({meta['weights_sha256'][:12]}…): export needs the same encoder")
    return enc.module, enc.spec, meta.get("rate")


def export_bundle(run_dir: str | Path, out_dir: str | Path, opset: int = DEFAULT_OPSET, on_graph=None,
                  domain: str = "unknown") -> dict:
    """Export RUN_DIR into the bundle folder OUT_DIR; returns the bundle.json content.

    The frame encoder graph is included when the run has one (see ``frame_encoder_for``).
    on_graph: called with a GraphReport after each graph (for the CLI's status lines).
    domain: what footage the run was trained on (``vidseek.engine.bundle.DOMAINS``), which search
    tells users of a "synthetic" bundle.
    """
    run = load_run(run_dir)
    frame_encoder = frame_encoder_for(run)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    graphs, reports = {}, []
    retrieval = getattr(run.model, "retrieval", None) is not None
    for spec in graphs_for(run.name, frame_encoder is not None, retrieval):
        t0 = time.perf_counter()
        path = out / f"{spec.name}.onnx"
        if spec.name == "frame_encoder":
            module, frame_spec, _ = frame_encoder
            module = module.float()
            args = (torch.randn(2, 3, frame_spec.height, frame_spec.width),)
        elif spec.name == "video_encoder":
            module = VideoEncoderGraph(run.model)
            args = _dummy_inputs(spec, run, module)
        elif spec.name == "text_encoder":
            module = TextEncoderGraph(run.model, run.featurizer)
            args = _dummy_inputs(spec, run, module)
        else:
            module = HeadGraph(run.model)
            args = _dummy_inputs(spec, run, module)
        export_graph(module, args, spec, path, opset)
        with torch.no_grad():
            outs = module.eval()(*args)
        outs = outs if isinstance(outs, tuple) else (outs,)
        sizes = {**dict(zip(spec.inputs, (a.shape for a in args))), **dict(zip(spec.outputs, (o.shape for o in outs)))}
        graphs[spec.name] = _io_descriptions(path, spec, sizes)
        report = GraphReport(spec.name, path.name, time.perf_counter() - t0, path.stat().st_size)
        reports.append(report)
        if on_graph:
            on_graph(report)
    write_tokenizer(run.featurizer, out / "tokenizer.json")
    files = sorted([f"{name}.onnx" for name in graphs] + ["tokenizer.json"])
    fe = None
    if frame_encoder is not None:
        fe = {"spec": frame_encoder[1].to_dict(), "rate": frame_encoder[2]}
    meta = {
        "format_version": BUNDLE_FORMAT_VERSION,
        "vidseek_version": __version__,
        "model": run.config["model"],
        "words": {**run.config["words"], "tokenizer": "tokenizer.json"},
        "retrieval_dim": int(run.model.cfg.retrieval_dim),
        "features": {"dim": run.config["data"]["feature_dim"], "length": run.length,
                     "rate": fe["rate"] if fe else run.config["data"].get("rate"), "frame_encoder": fe},
        "opset": opset,
        "graphs": graphs,
        "files": {name: sha256(out / name) for name in files},
        "trained": {"best": run.config.get("best"), "data": run.config["data"]},
        "domain": {"kind": domain},
    }
    atomic_write_text(out / "bundle.json", json.dumps(meta, indent=2))
    return meta
