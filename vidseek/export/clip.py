"""Export a CLIP or SigLIP model as a zero-shot bundle: search real videos with no trained head.

BUNDLE/
  frame_encoder.onnx  pixels (frames, 3, S, S) -> frame_features (frames, E): the image embeddings
                      (CLIP: projected; SigLIP: attention-pooled), unnormalised (the engine L2-normalises them)
  text_encoder.onnx   input_ids, attention_mask (batch, words) -> retrieval (batch, E): the text embedding
                      (CLIP: projected end-of-text state; SigLIP: head on the last position), L2-normalised
  tokenizer.json      the model's own tokenizer (``tokenizers``), truncating at the tower's context length
                      (SigLIP's also pads every query to it, as SigLIP reads text)
  bundle.json         ``"zero_shot": true``, model name ``clip-zero-shot``, the graphs' inputs and
                      outputs, the frame spec and rate, the parity measured at export, sha256 of every file

There is no video encoder and no head (see ``vidseek.engine.registry``): at index time the frame
embeddings are both the cached states and the retrieval steps, and at query time the span comes
from the frame-query similarity curve (``vidseek.engine.decode.similarity_span``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vidseek import __version__
from vidseek.atomic import atomic_write_text
from vidseek.engine.bundle import BUNDLE_FORMAT_VERSION, Bundle, sha256
from vidseek.engine.calibration import Calibration
from vidseek.engine.registry import ZERO_SHOT_MODEL, graphs_for
from vidseek.engine.video import DEFAULT_RATE
from vidseek.export.onnx import DEFAULT_OPSET, GraphReport, _io_descriptions, export_graph
from vidseek.export.parity import ParityError, check_clip_parity
from vidseek.trainer.encoders import ClipTextTower, load_clip

# A documented default, not a fit: CLIP's cosine similarities of a matching caption and frame sit
# near 0.3 and of unrelated ones near 0.2 (ViT-B/32), so relevance is 0.5 where the clip and the
# peak frame reach about 0.28 and the clip stands out from the other candidates; refit it on
# footage of your own with vidseek.library.calibrate when the threshold matters.
ZERO_SHOT_CALIBRATION = Calibration(weights=(15.0, 15.0, 20.0), bias=-9.0, threshold=0.5,
                                    signals=("retrieval", "span", "distinct"), fitted_on={
    "default": "not fitted: relevance 0.5 near cosine 0.28 for clip and peak frame (CLIP ViT-B/32 scale)"})
PARITY_ATOL = 1e-4  # exported graphs vs PyTorch, max |difference| of the embeddings
EXAMPLE_QUERIES = ["a person opens the door", "someone waves"]  # traced inputs of the text graph


class ZeroShotTextGraph(nn.Module):
    """input_ids, attention_mask (B, M) -> the L2-normalised CLIP text embedding (B, E)."""

    def __init__(self, text: ClipTextTower):
        super().__init__()
        self.text = text

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        _, sentence = self.text(input_ids, attention_mask)
        return F.normalize(sentence, dim=-1)


def siglip_calibration(scale: float, bias: float) -> Calibration:
    """SigLIP's own pairwise probability as the relevance: sigmoid(scale * cosine + bias), the loss it
    was trained with, on the mean of the clip's and the peak frame's cosine. Threshold 0.1: SigLIP
    gives true pairs probabilities well above that and unrelated ones far below; not fitted on video."""
    return Calibration(weights=(scale / 2, scale / 2), bias=bias, threshold=0.1, signals=("retrieval", "span"),
                       fitted_on={
        "default": f"not fitted: SigLIP's sigmoid(scale * cosine + bias) with the checkpoint's scale {scale:.4g} "
                   f"and bias {bias:.4g}, on the mean of clip and peak-frame cosine"})


def siglip_tokenizer(slow):
    """SigLIP's SentencePiece tokenizer (``SiglipTokenizer``, no tokenizer.json) as a ``tokenizers``
    Tokenizer: the Unigram model and the SentencePiece normaliser, preceded by what SiglipTokenizer
    does in Python (lower case, punctuation removed, runs of white space made one space, stripped),
    with ``</s>`` appended. The export's parity check compares its ids with SiglipTokenizer's."""
    import re
    import string

    from tokenizers import Regex, normalizers, processors
    from transformers.convert_slow_tokenizer import SpmConverter

    class SiglipConverter(SpmConverter):
        def vocab(self, proto):
            return [(piece.piece, piece.score) for piece in proto.pieces]

        def normalizer(self, proto):
            steps = [normalizers.Lowercase()] if getattr(self.original_tokenizer, "do_lower_case", True) else []
            steps += [normalizers.Replace(Regex(f"[{re.escape(string.punctuation)}]"), ""),
                      # Python's \s (SiglipTokenizer's re.sub) also counts U+001C..U+001F, the regex here not
                      normalizers.Replace(Regex(r"[\s\x1c-\x1f]+"), " "), normalizers.Strip()]
            return normalizers.Sequence(steps + [super().normalizer(proto)])

        def post_processor(self):
            eos = str(self.original_tokenizer.eos_token)
            return processors.TemplateProcessing(single=["$A", eos], pair=["$A", eos, "$B", eos],
                                                 special_tokens=[(eos, self.original_tokenizer.convert_tokens_to_ids(eos))])

    return SiglipConverter(slow).converted()


def write_clip_tokenizer(tokenizer, path: Path, max_length: int, pad_to_length: bool = False) -> None:
    """The checkpoint's tokenizer as a ``tokenizers`` tokenizer.json, truncating at `max_length`.

    CLIP's: no padding (the engine pads a batch to its longest query). SigLIP's (``pad_to_length``):
    every query padded with its pad token to `max_length`, as SigLIP reads them; a SentencePiece-only
    SigLIP tokenizer is converted first (``siglip_tokenizer``)."""
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is None and type(tokenizer).__name__ == "SiglipTokenizer":
        backend = siglip_tokenizer(tokenizer)
    if backend is None:
        raise ValueError(f"the tokenizer {type(tokenizer).__name__} has no `tokenizers` backend to export; "
                         "use a checkpoint folder with a tokenizer.json")
    backend = backend.__class__.from_str(backend.to_str())
    backend.enable_truncation(max_length)
    if pad_to_length:
        pad = str(tokenizer.pad_token or tokenizer.eos_token)  # SigLIP pads with </s>; some checkpoints name no pad
        backend.enable_padding(length=max_length, pad_id=backend.token_to_id(pad), pad_token=pad)
    else:
        backend.no_padding()
    backend.save(str(path))


def export_clip_bundle(source: str, out_dir: str | Path, opset: int = DEFAULT_OPSET, on_graph=None,
                       check: bool = True, atol: float = PARITY_ATOL, progress: bool = False) -> dict:
    """Export the CLIP or SigLIP model `source` (hub id or local folder, see ``load_clip``) as a zero-shot bundle.

    on_graph: called with a GraphReport after each graph; ``progress``: a progress bar of the steps
    on stderr (the download, when there is one, shows its own). With ``check``, the graphs and the
    tokenizer are measured against PyTorch (``vidseek.export.parity.check_clip_parity``) before
    bundle.json is written, and ParityError is raised beyond `atol`, so a failed export never
    leaves a loadable bundle. Returns the bundle.json content.
    """
    from tqdm import tqdm

    parts = load_clip(source, text=True)
    if parts.text is None:
        raise ValueError(f"CLIP {source!r} is a vision-only checkpoint; zero-shot search needs the text tower "
                         "too: use a full CLIP or SigLIP model (model_type 'clip' or 'siglip')")
    steps = tqdm(total=4 if check else 3, desc=f"exporting {source}", unit="step", disable=not progress,
                 bar_format="{desc}: {n}/{total} {postfix}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    size, dim = parts.spec.height, parts.image.dim
    max_words = int(parts.text.model.config.max_position_embeddings)
    graphs = {}
    for spec in graphs_for(ZERO_SHOT_MODEL, with_frame_encoder=True, retrieval=True):
        t0 = time.perf_counter()
        path = out / f"{spec.name}.onnx"
        steps.set_postfix_str(spec.name)
        if spec.name == "frame_encoder":
            module: nn.Module = parts.image
            args: tuple = (torch.randn(2, 3, size, size),)
        else:
            module = ZeroShotTextGraph(parts.text)
            enc = parts.tokenize(EXAMPLE_QUERIES, max_length=max_words)
            args = (enc["input_ids"], enc["attention_mask"])
        export_graph(module, args, spec, path, opset)
        with torch.no_grad():
            outs = module.eval()(*args)
        sizes = {**dict(zip(spec.inputs, (a.shape for a in args))), spec.outputs[0]: outs.shape}
        graphs[spec.name] = _io_descriptions(path, spec, sizes)
        if on_graph:
            on_graph(GraphReport(spec.name, path.name, time.perf_counter() - t0, path.stat().st_size))
        steps.update()
    steps.set_postfix_str("tokenizer")
    write_clip_tokenizer(parts.tokenizer, out / "tokenizer.json", max_words, pad_to_length=parts.fixed_length)
    steps.update()
    files = sorted([f"{name}.onnx" for name in graphs] + ["tokenizer.json"])
    resolved = str(Path(parts.source).resolve()) if Path(parts.source).exists() else parts.source
    meta = {
        "format_version": BUNDLE_FORMAT_VERSION,
        "vidseek_version": __version__,
        "zero_shot": True,
        "domain": {"kind": "real", "note": f"{'SigLIP' if parts.kind == 'siglip' else 'CLIP'}'s image-text "
                   "pretraining on web photos: open vocabulary, not trained for moments"},
        "calibration": (siglip_calibration(parts.logit_scale, parts.logit_bias) if parts.kind == "siglip"
                        else ZERO_SHOT_CALIBRATION).to_meta(),
        "model": {"name": ZERO_SHOT_MODEL, "clip": resolved, "kind": parts.kind, "projection_dim": dim,
                  "image_size": size},
        "words": {"kind": "clip", "model": resolved, "max_words": max_words, "tokenizer": "tokenizer.json"},
        "retrieval_dim": dim,
        "features": {"dim": dim, "length": None, "rate": DEFAULT_RATE,
                     "frame_encoder": {"spec": parts.spec.to_dict(), "rate": DEFAULT_RATE}},
        "opset": opset,
        "graphs": graphs,
        "files": {name: sha256(out / name) for name in files},
        "source": {"clip": str(source), "resolved": resolved},
        "parity": None,
    }
    if check:
        steps.set_postfix_str("parity vs PyTorch")
        report = check_clip_parity(parts, Bundle(out, meta))
        steps.update()
        worst = max(report.values())
        if worst > atol:
            raise ParityError(f"the exported CLIP graphs disagree with PyTorch (max |diff| {worst:.1e} > {atol:g}: "
                              f"{report}); do not use {out}; try another --opset and report it")
        meta["parity"] = report
    steps.close()
    atomic_write_text(out / "bundle.json", json.dumps(meta, indent=2))
    return meta
