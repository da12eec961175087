"""`vidseek info`: what an index holds (``vidseek.Index.info``). Torch-free."""

from __future__ import annotations

from pathlib import Path

import click

from vidseek.cli.common import echo_json, index_option, json_option, shown, user_errors


@click.command("info")
@index_option
@json_option
def info_cmd(index_dir: Path | None, as_json: bool) -> None:
    """What an index holds: library, bundle, settings, videos by status, files that failed, integrity."""
    from vidseek.library.api import Index

    with user_errors():
        info = Index(index_dir).info()
    if as_json:
        echo_json(info.to_dict())
        return
    model = f", --model {info.model}" if info.model else ""
    click.echo(f"index    {info.index_dir}\nlibrary  {info.library}\nbundle   {info.bundle} "
               f"(fingerprint {info.fingerprint}{model})\nclips    {info.window_s} s windows every "
               f"{info.stride_s} s, {info.rate} steps/s, {info.dim}-d embeddings")
    click.echo("videos   " + ", ".join(f"{n} {status}" for status, n in sorted(info.counts.items())))
    click.echo(f"duration {info.duration:.0f} s indexed")
    for path, error in info.failed:
        click.echo(f"  error  {shown(path)}: {shown(error)}")
    click.echo("integrity ok" if not info.problems else "integrity problems:\n  " + "\n  ".join(map(shown, info.problems)))
