"""Measure an exported bundle against PyTorch (its run, or the CLIP model of a zero-shot bundle): per-graph max |difference| and a task check."""

from __future__ import annotations

import numpy as np
import torch

from vidseek.engine.decode import decode_windows
from vidseek.engine.bundle import Bundle
from vidseek.engine.grounder import Grounder
from vidseek.errors import VidseekError
from vidseek.spans import temporal_iou_paired
from vidseek.trainer.checkpoint import Run


class ParityError(VidseekError, RuntimeError):
    """An exported bundle disagrees with PyTorch (its graphs beyond the tolerance, or its tokenizer
    splitting queries differently); the bundle must not be used."""


PARITY_ATOL = 1e-4  # fp32 graphs vs PyTorch: largest max |difference| accepted
PARITY_MIN_IOU = 0.99  # decoded top-1 spans: smallest IoU with PyTorch's accepted (strictly above)


def require_parity(report: dict, bundle: Bundle) -> None:
    """Raise ``ParityError`` when a ``check_parity`` report is beyond ``PARITY_ATOL`` or
    ``PARITY_MIN_IOU``: the export decision, the same for every caller."""
    worst = max(v for k, v in report.items() if k != "task_min_iou")
    if worst > PARITY_ATOL or report["task_min_iou"] <= PARITY_MIN_IOU:
        raise ParityError(
            f"the exported graphs disagree with PyTorch (max |diff| {worst:.1e} > {PARITY_ATOL:g} or top-1 IoU "
            f"{report['task_min_iou']:.3f} <= {PARITY_MIN_IOU}); do not deploy {bundle.path}; try another --opset "
            "and report it")


QUERIES = ["person opens the door", "someone picks up the red box and walks out", "waves"]


def _max_diff(ort_out: dict, torch_out: dict, masks: dict) -> float:
    worst = 0.0
    for name, ref in torch_out.items():
        got, ref = np.asarray(ort_out[name], np.float64), ref.detach().double().numpy()
        m = masks.get(name)
        diff = np.abs(got - ref) if m is None else np.abs(got - ref)[m]
        worst = max(worst, float(diff.max()) if diff.size else 0.0)
    return worst


def _known_queries(g: Grounder) -> list[str]:
    """QUERIES the bundle's tokenizer can read, or a query made of its own vocabulary (tiny learned vocabularies)."""
    from vidseek.engine.grounder import QueryError

    def readable(q: str) -> bool:
        try:
            g.tokenize([q])
        except QueryError:
            return False
        return True

    known = [q for q in QUERIES if readable(q)]
    if not known:
        vocab = [w for w, _ in sorted(g.tokenizer.get_vocab().items(), key=lambda kv: kv[1]) if not w.startswith("<")]
        known = [" ".join(vocab[:5]), " ".join(vocab[5:8]) or vocab[0]]
    return known


@torch.no_grad()
def check_parity(run: Run, bundle: Bundle, lengths=(8, 32, None), batch: int = 3, seed: int = 0) -> dict:
    """Fresh random inputs at several lengths T (None = the trained length L), with padded items.

    Returns {"video_encoder": max_diff, "text_encoder": max_diff, "head": max_diff, "task_min_iou": float}.
    Padded steps are excluded from the comparison (they carry no meaning).
    """
    g = Grounder(bundle)
    model = run.model.eval()
    rng = np.random.default_rng(seed)
    report = {"video_encoder": 0.0, "text_encoder": 0.0, "head": 0.0, "task_min_iou": 1.0}
    if "frame_encoder" in bundle.graphs:
        from vidseek.export.onnx import frame_encoder_for

        module, spec, _ = frame_encoder_for(run)
        pixels = rng.normal(size=(5, 3, spec.height, spec.width)).astype(np.float32)
        got = g.sessions["frame_encoder"].run({"pixels": pixels})["frame_features"]
        report["frame_encoder"] = _max_diff({"f": got}, {"f": module.eval()(torch.from_numpy(pixels))}, {})

    queries = _known_queries(g)
    text_ort = g.encode_text(queries)
    feeds = g.tokenize(queries)[0]
    ids, mask_w = torch.from_numpy(feeds["input_ids"]), torch.from_numpy(feeds["attention_mask"]) > 0
    words = run.featurizer.encode(queries)
    torch_text = model.encode_text(words.words, words.mask)
    if ids.shape != words.mask.shape or not torch.equal(mask_w, words.mask):  # before comparing their outputs
        raise ParityError("the bundle's tokenizer splits the queries differently from the trainer's")
    keys = [k for k in ("sentence", "phrases", "word_att", "retrieval") if k in text_ort]
    report["text_encoder"] = _max_diff({k: text_ort[k] for k in keys}, {k: torch_text[k] for k in keys}, {})

    for t in lengths:
        t = t or bundle.length
        feats = rng.normal(size=(batch, t, bundle.feature_dim)).astype(np.float32)
        vmask = np.ones((batch, t), bool)
        vmask[-1, max(1, t * 2 // 3):] = False  # one padded item
        video_ort = g.video_outputs(feats, vmask)
        states_pt = model.encode_video(torch.from_numpy(feats), torch.from_numpy(vmask))
        video_pt = {"video_states": states_pt}
        if "retrieval_steps" in video_ort:
            video_pt["retrieval_steps"] = model.retrieval.embed_steps(states_pt)
        report["video_encoder"] = max(report["video_encoder"],
                                      _max_diff(video_ort, video_pt, {k: vmask for k in video_pt}))
        # the head on one query, tiled over the batch
        one = {k: v[:1] for k, v in text_ort.items() if k != "tokens"}
        out_ort = g.head(states_pt.numpy(), vmask, one)
        pt_text = {k: v[:1].expand(batch, *v.shape[1:]) for k, v in torch_text.items()}
        out_pt = model.head(states_pt, torch.from_numpy(vmask), pt_text)
        step_masks = {"start_logits": vmask, "end_logits": vmask, "frame_att": vmask}
        report["head"] = max(report["head"], _max_diff(out_ort, {k: out_pt[k] for k in out_ort}, step_masks))
        lens = vmask.sum(1)
        for i in range(batch):
            a = decode_windows(run.name, {k: v[i] for k, v in out_ort.items()}, 100.0, int(lens[i]), 1)[0][:2]
            b = decode_windows(run.name, {k: v[i].numpy() for k, v in out_pt.items()}, 100.0, int(lens[i]), 1)[0][:2]
            iou = float(temporal_iou_paired(np.array([a]), np.array([b]))[0]) if b[1] > b[0] else float(a == b)
            report["task_min_iou"] = min(report["task_min_iou"], iou)
    return report


@torch.no_grad()
def check_clip_parity(parts, bundle: Bundle, batch_sizes=(1, 5), seed: int = 0) -> dict[str, float]:
    """A zero-shot CLIP bundle against the CLIP model it was exported from (``ClipParts`` of ``load_clip``).

    frame_encoder: random pixels at each batch size. text_encoder: QUERIES tokenised by the bundle's
    tokenizer and padded into one batch by the engine, against PyTorch's normalised embedding of each
    query tokenised on its own by transformers, so the tokenizer and padding are measured too.
    Returns {"frame_encoder": max_diff, "text_encoder": max_diff}; raises ParityError when the
    bundle's tokenizer splits a query differently from CLIP's.
    """
    g = Grounder(bundle)
    rng = np.random.default_rng(seed)
    image = parts.image.eval()
    report = {"frame_encoder": 0.0, "text_encoder": 0.0}
    for n in batch_sizes:
        pixels = rng.normal(size=(n, 3, parts.spec.height, parts.spec.width)).astype(np.float32)
        got = g.sessions["frame_encoder"].run({"pixels": pixels})["frame_features"]
        report["frame_encoder"] = max(report["frame_encoder"],
                                      _max_diff({"f": got}, {"f": image(torch.from_numpy(pixels))}, {}))
    feeds, _ = g.tokenize(QUERIES)
    got = g.encode_text(QUERIES)["retrieval"]
    max_words = int(bundle.meta["words"]["max_words"])
    for i, query in enumerate(QUERIES):
        enc = parts.tokenize([query], max_length=max_words)
        n = int(feeds["attention_mask"][i].sum())
        if enc["input_ids"][0].tolist() != feeds["input_ids"][i, :n].tolist():
            raise ParityError(f"the bundle's tokenizer splits {query!r} differently from CLIP's; do not use "
                              f"{bundle.path}: export from a CLIP folder whose tokenizer.json matches the model")
        ref = torch.nn.functional.normalize(parts.text(enc["input_ids"], enc["attention_mask"])[1], dim=-1)
        report["text_encoder"] = max(report["text_encoder"], _max_diff({"r": got[i:i + 1]}, {"r": ref}, {}))
    return report
