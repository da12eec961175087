"""`vidseek info`: what an index holds (``vidseek.Index.info``). Torch-free."""

from __future__ import annotations

from pathlib import Path

import click

from vidseek.cli.common import echo_json, index_option, json_option, shown, user_errors


TRAINED_ON = {"synthetic": "trained on synthetic video only", "real": "trained on real video",
              "unknown": "its training footage is not stated"}


@click.command("info")
@index_option
@click.option("--videos", "list_videos", is_flag=True, help="Also list every video: status, duration, path.")
@json_option
def info_cmd(index_dir: Path | None, list_videos: bool, as_json: bool) -> None:
    """What an index holds: library, bundle, settings, videos by status, files that failed, integrity."""
    from vidseek.library.api import Index

    with user_errors():
        index = Index(index_dir)
        info = index.info()
        videos = index.videos() if list_videos else []
    if as_json:
        rows = [{"id": v.id, "path": v.path, "status": v.status, "duration": v.duration, "steps": v.steps,
                 "error": v.error} for v in videos]
        echo_json({**info.to_dict(), **({"videos": rows} if list_videos else {})})
        return
    model = f", --model {info.model}" if info.model else ""
    click.echo(f"index    {info.index_dir}\nlibrary  {info.library}\nbundle   {info.bundle} "
               f"(fingerprint {info.fingerprint}{model}; {TRAINED_ON[info.domain]})\nclips    {info.window_s} s windows every "
               f"{info.stride_s} s, {info.rate} steps/s, {info.dim}-d embeddings; states {info.states}")
    click.echo("videos   " + ", ".join(f"{n} {status}" for status, n in sorted(info.counts.items())))
    click.echo(f"duration {info.duration:.0f} s indexed")
    for path, error in info.failed:
        click.echo(f"  error  {shown(path)}: {shown(error)}")
    click.echo("integrity ok" if not info.problems else "integrity problems:\n  " + "\n  ".join(map(shown, info.problems)))
    if videos:
        click.echo(f"\n{'status':7}  {'seconds':>8}  path")
        for v in videos:
            seconds = f"{v.duration:8.1f}" if v.duration is not None else f"{'-':>8}"
            click.echo(f"{v.status:7}  {seconds}  {shown(v.path)}")
