"""`vidseek export`: a trained run -> a bundle of ONNX graphs (and TensorRT engines on a GPU), or a
CLIP model -> a zero-shot bundle (`--clip ID_OR_PATH OUT_DIR`)."""

from __future__ import annotations

from pathlib import Path

import click

from vidseek.cli.common import USER_ERRORS, need_torch
from vidseek.engine.registry import FORMATS



def _load_calib(path: Path | None) -> dict | None:
    """--calib: an .npz whose arrays are named GRAPH.INPUT (e.g. video_encoder.features), N samples each."""
    if path is None:
        return None
    import numpy as np

    data: dict[str, dict] = {}
    with np.load(path) as npz:
        for key in npz.files:
            graph, sep, name = key.partition(".")
            if not sep:
                raise click.BadParameter(f"array {key!r} in {path} is not named GRAPH.INPUT", param_hint="--calib")
            data.setdefault(graph, {})[name] = npz[key]
    return data


def _status(report) -> None:
    """One line per exported graph."""
    click.echo(f"  {report.file:22} {report.seconds:6.1f} s  {report.bytes / 1e6:8.2f} MB")


@click.command("export")
@click.argument("run_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Bundle folder to write.")
@click.option("--clip", "clip_source", metavar="ID_OR_PATH",
              help="Export this CLIP model (hub id or local folder) as a zero-shot bundle instead of a run: "
                   "`vidseek export --clip ID_OR_PATH OUT_DIR`.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="onnx", show_default=True)
@click.option("--fp16", is_flag=True, help="TensorRT: build FP16 engines (fails if the GPU has no fast FP16).")
@click.option("--int8", is_flag=True, help="TensorRT: build INT8 engines calibrated on --calib.")
@click.option("--calib", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="INT8 calibration inputs (.npz of GRAPH.INPUT arrays).")
@click.option("--opset", type=click.IntRange(14, 20), default=17, show_default=True, help="ONNX opset.")
@click.option("--domain", type=click.Choice(["synthetic", "real", "unknown"]), default="unknown", show_default=True,
              help="What footage the run was trained on; search tells users of a synthetic-only bundle.")
@click.option("--check/--no-check", default=True, show_default=True, help="Measure every graph against PyTorch after export.")
@click.option("--text-precision", type=click.Choice(["fp32", "int8", "fp16"]), default="fp32", show_default=True,
              help="Store the text encoder in int8 (about 4x smaller) or fp16, kept only if its outputs agree "
                   "with the fp32 graph (cosine >= 0.98).")
def export_cmd(run_dir, out_dir, clip_source, fmt, fp16, int8, calib, opset, domain, check, text_precision):
    """Export RUN_DIR (from `vidseek train`) to a bundle: separate video encoder, text encoder and head graphs.

    With --clip ID_OR_PATH, export a CLIP model as a zero-shot bundle (its image and text towers, no
    trained head) into OUT_DIR, for `vidseek index --model OUT_DIR` on machines without PyTorch.
    """
    if clip_source is not None:
        if text_precision != "fp32":
            raise click.BadParameter("applies to the text encoder of a trained run, not to a CLIP bundle",
                                     param_hint="--text-precision")
        _export_clip(clip_source, run_dir, out_dir, fmt, fp16 or int8 or calib is not None, opset, check)
        return
    if run_dir is None:
        raise click.UsageError("give the RUN_DIR to export (with --out BUNDLE_DIR), or --clip ID_OR_PATH OUT_DIR")
    if not run_dir.is_dir():
        raise click.BadParameter(f"directory {str(run_dir)!r} does not exist", param_hint="RUN_DIR")
    if out_dir is None:
        raise click.BadParameter("the bundle folder to write is required", param_hint="--out")
    if fp16 and int8:
        raise click.BadParameter("choose one of --fp16 and --int8", param_hint="--int8")
    if (fp16 or int8) and fmt != "tensorrt":
        raise click.BadParameter("--fp16/--int8 apply to --format tensorrt (ONNX graphs are exported in fp32)", param_hint="--format")
    if int8 and calib is None:
        raise click.BadParameter("INT8 needs calibration data", param_hint="--calib")
    if text_precision != "fp32" and fmt != "onnx":
        raise click.BadParameter("a quantized text encoder is an ONNX graph; export with --format onnx",
                                 param_hint="--text-precision")
    need_torch("export")
    if fmt == "tensorrt":  # fail before a long ONNX export when the engines cannot be built here
        from vidseek.engine.session import BackendUnavailable
        from vidseek.export.tensorrt import _trt

        try:
            _trt()
        except BackendUnavailable as exc:
            raise click.ClickException(str(exc)) from None
    from vidseek.engine.bundle import load_bundle
    from vidseek.export.onnx import export_bundle
    from vidseek.trainer.checkpoint import load_run

    try:
        click.echo(f"exporting {run_dir} -> {out_dir} (ONNX opset {opset})")
        export_bundle(run_dir, out_dir, opset, on_graph=_status, domain=domain)
        bundle = load_bundle(out_dir)
        click.echo(f"  tokenizer.json, bundle.json (fingerprint {bundle.fingerprint})")
        if check:
            from vidseek.export.parity import check_parity, require_parity

            r = check_parity(load_run(run_dir), bundle)
            click.echo("parity vs PyTorch (max |diff|): " + "  ".join(f"{k} {v:.1e}" for k, v in r.items() if k != "task_min_iou")
                       + f"  top-1 span IoU >= {r['task_min_iou']:.3f}")
            require_parity(r, bundle)
        if text_precision != "fp32":
            from vidseek.export.quantize import quantize_text_encoder

            record = quantize_text_encoder(out_dir, text_precision)
            click.echo(f"text encoder {text_precision}: {record['bytes_fp32'] / 1e6:.1f} MB -> {record['bytes'] / 1e6:.1f} MB, "
                       "lowest cosine to fp32 " + ", ".join(f"{k} {v}" for k, v in record["min_cosine_vs_fp32"].items())
                       + f" (fingerprint {load_bundle(out_dir).fingerprint})")
        if fmt == "tensorrt":
            from vidseek.export.tensorrt import build_bundle_engines

            precision = "fp16" if fp16 else "int8" if int8 else "fp32"
            folder = build_bundle_engines(bundle, precision, _load_calib(calib),
                                          on_graph=lambda name, path: click.echo(f"  {path.name:22} built"))
            click.echo(f"TensorRT {precision} engines in {folder}")
    except (*USER_ERRORS, ValueError) as exc:  # ValueError: a run or option export cannot use
        raise click.ClickException(str(exc)) from exc


def _export_clip(source: str, positional: Path | None, out_dir: Path | None, fmt: str, tensorrt_options: bool,
                 opset: int, check: bool) -> None:
    """`vidseek export --clip ID_OR_PATH OUT_DIR`: a zero-shot bundle, parity-checked unless --no-check."""
    if positional is not None and out_dir is not None:
        raise click.UsageError("with --clip give the bundle folder once: `vidseek export --clip ID_OR_PATH OUT_DIR`")
    out = positional or out_dir
    if out is None:
        raise click.UsageError("give the bundle folder to write: `vidseek export --clip ID_OR_PATH OUT_DIR`")
    if fmt != "onnx" or tensorrt_options:
        raise click.BadParameter("a zero-shot CLIP bundle is exported as ONNX only; run it on TensorRT with "
                                 "`--backend onnxruntime-tensorrt`", param_hint="--format")
    from vidseek.library.models import missing_packages

    missing = missing_packages()
    if missing:
        raise click.ClickException(f"exporting a CLIP model needs PyTorch, transformers and onnx ({', '.join(missing)} "
                                   "not installed here): pip install 'vidseek[train]'")
    from vidseek.engine.bundle import load_bundle
    from vidseek.export.clip import export_clip_bundle

    try:
        click.echo(f"exporting {source} -> {out} (zero-shot bundle, ONNX opset {opset})")
        meta = export_clip_bundle(source, out, opset, on_graph=_status, check=check)
        bundle = load_bundle(out)
    except (*USER_ERRORS, ValueError) as exc:  # ValueError: a run or option export cannot use
        raise click.ClickException(str(exc)) from exc
    click.echo(f"  tokenizer.json, bundle.json (fingerprint {bundle.fingerprint})")
    if meta["parity"]:
        click.echo("parity vs PyTorch (max |diff|): " + "  ".join(f"{k} {v:.1e}" for k, v in meta["parity"].items()))
    click.echo(f"index videos with it: vidseek index VIDEO_DIR --model {out}")
