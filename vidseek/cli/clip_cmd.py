"""`vidseek clip`: cut a moment of an indexed video into an MP4 of its own (``vidseek.Index.clip``). Torch-free."""

from __future__ import annotations

from pathlib import Path

import click

from vidseek.cli.common import index_option, shown, user_errors


@click.command("clip")
@click.argument("video")
@click.option("--start", type=click.FloatRange(min=0), required=True, help="Seconds into the file.")
@click.option("--end", type=click.FloatRange(min=0), required=True, help="Seconds into the file (after --start).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The MP4 to write (default: NAME-START-END.mp4 here).")
@index_option
def clip_cmd(video: str, start: float, end: float, out_path: Path | None, index_dir: Path | None) -> None:
    """Cut seconds --start to --end of the indexed VIDEO (its path as `vidseek info --videos` lists it, or its
    path on disk) into an MP4: pictures re-encoded with H.264 from the exact start, sound with AAC.
    The times of a moment from `vidseek search` cut it out as it was found."""
    from vidseek.library.api import Index

    if end <= start:
        raise click.BadParameter(f"--end {end:g} must come after --start {start:g}", param_hint="--end")
    out = out_path or Path(f"{Path(video).stem}-{start:g}-{end:g}.mp4")
    with user_errors(), Index(index_dir) as index:
        index.clip(video, start, end, out)
    click.echo(f"{shown(out)}: {shown(video)} {start:g}-{end:g} s ({out.stat().st_size / 1e6:.2f} MB)")
