"""`vidseek features`: per-frame features of a folder of videos, in the layout `vidseek train` reads."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vidseek.cli.common import check_device


def _encoder_help() -> str:
    return ("Frame encoder: builtin (the small CNN, seeded untrained weights), builtin:CKPT.safetensors "
            "(trained weights), clip:ID_OR_PATH (a CLIP folder saved with save_pretrained, or a hub id such as "
            "openai/clip-vit-base-patch32 when online; see docs/encoders.md).")


@click.command("features")
@click.argument("video_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--encoder", "choice", default="builtin", show_default=True, help=_encoder_help())
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for <video stem>.npy (T, D) float32 arrays and features.json.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True,
              help="Steps per second; a video of d seconds gets T = max(1, round(d * rate)) steps.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Frames per encoder batch.")
@click.option("--device", default="cpu", show_default=True, help="Torch device for the encoder (cpu, cuda, cuda:1).")
@click.option("--decoder", type=click.Choice(["auto", "decord", "pyav"]), default="auto", show_default=True,
              help="Video decoder.")
@click.option("--overwrite", is_flag=True,
              help="Recompute videos already done, and replace features made with other settings.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def features_cmd(video_dir: Path, choice: str, out_dir: Path, rate: float, batch_size: int, device: str,
                 decoder: str, overwrite: bool, progress: bool) -> None:
    """Decode each video of VIDEO_DIR at RATE steps/s, encode its frames, and write FEATURE_DIR (--out).

    Videos already in --out are kept (unless --overwrite); a video that fails to decode is reported
    and skipped. Exits non-zero only when every video fails.
    """
    check_device(device, "feature extraction")
    from tqdm.auto import tqdm

    from vidseek.trainer.encoders import build_frame_encoder
    from vidseek.trainer.extract import MANIFEST, extract_features, list_videos

    videos = list_videos(video_dir)
    if not videos:
        raise click.ClickException(f"no video files in {video_dir} (looked for .mp4, .mkv, .webm, .avi, .mov ...)")
    try:
        encoder = build_frame_encoder(choice)
    except (ValueError, OSError) as e:
        raise click.BadParameter(str(e), param_hint="--encoder") from None
    encoder.to(device)
    if choice == "builtin":
        click.echo("note: --encoder builtin without a checkpoint uses the CNN's seeded untrained weights; "
                   "pass builtin:CKPT.safetensors for trained ones")

    def report(result) -> None:
        if not result.error:
            return
        what = "failed" if result.status == "failed" else "warning"  # warning: a truncated file, bad packets
        text = result.error if str(result.path) in result.error else f"{result.path.name}: {result.error}"
        with tqdm.external_write_mode(file=sys.stderr):  # print above the progress bar, not through it
            click.echo(f"{what}: {text}", err=True)

    try:
        summary = extract_features(video_dir, encoder, out_dir, rate=rate, batch_size=batch_size,
                                   overwrite=overwrite, decoder=decoder, progress=progress, on_result=report)
    except FileExistsError as e:
        raise click.ClickException(str(e)) from None
    done, kept, failed = summary.having("done"), summary.having("kept"), summary.having("failed")
    steps = sum(r.steps for r in done)
    click.echo(f"{encoder.choice} ({encoder.dim} dims, {rate:g} steps/s): wrote {len(done)} video(s) ({steps} steps), "
               f"kept {len(kept)} already done, {len(failed)} failed; in {out_dir} ({MANIFEST})")
    if summary.removed:
        click.echo(f"removed {summary.removed} feature files made with the previous settings")
    if failed:
        click.echo("failed: " + ", ".join(r.path.name for r in failed), err=True)
        if not done and not kept:
            raise click.ClickException(f"all {len(failed)} videos failed to decode; see the messages above")
