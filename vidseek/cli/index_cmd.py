"""`vidseek index`: bring an index up to date with a folder of videos (``vidseek.Index.add``). Torch-free."""

from __future__ import annotations

from pathlib import Path

import click

from vidseek.cli.common import backend_option, echo_json, index_option, json_option, shown, user_errors, warnings_shown


@click.command("index")
@click.argument("video_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@index_option
@click.option("--model", "model", default="builtin", show_default=True,
              metavar="builtin|builtin-plpnet|BUNDLE_DIR|clip:ID_OR_PATH",
              help="builtin: the ExCL bundle shipped with vidseek; builtin-plpnet: the PLPNet bundle shipped with it "
                   "(each phrase's span too: search --phrases); BUNDLE_DIR: a bundle from `vidseek export`; "
                   "clip:ID_OR_PATH: a CLIP model (hub id or folder) used zero-shot, exported once into the cache "
                   "(needs PyTorch that once).")
@click.option("--window", "window_s", type=click.FloatRange(min=0.5), default=4.0, show_default=True, help="Clip window, seconds.")
@click.option("--stride", "stride_s", type=click.FloatRange(min=0.25), default=2.0, show_default=True, help="Clip stride, seconds.")
@click.option("--rebuild", is_flag=True,
              help="Discard the index's catalog, cached features and clip index, and index VIDEO_DIR from scratch: "
                   "to change --model, --window or --stride, to index another library into the same folder, or to "
                   "repair a damaged index. Until it ends, new searches find the videos encoded so far.")
@click.option("--states", type=click.Choice(["float16", "int8", "int4"]), default=None,
              help="How the cached video states are stored: int4 (the default for a new index; int8 for a "
                   "zero-shot CLIP model) takes a quarter of float16's bytes, int8 half, at no measured accuracy "
                   "cost with the built-in bundle (docs/benchmarks.md). Fixed when the index is created; --rebuild "
                   "changes it.")
@click.option("--retry-errors", is_flag=True,
              help="Try again the files that failed before (they are otherwise skipped until they change): after "
                   "installing a codec, or once the library is mounted on every Ray worker.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Decode and encode on Ray (pip install 'vidseek[ray]'): --ray alone starts a local Ray for the run; "
                   "--ray ADDRESS joins a cluster (HOST:6379 or ray://HOST:10001). Workers need the videos and the "
                   "bundle at the same paths (docs/deploy.md); this process writes the index.")
@backend_option
@click.option("--progress/--no-progress", default=True, show_default=True)
@json_option
def index_cmd(video_dir: Path, index_dir: Path | None, model: str, window_s: float, stride_s: float, rebuild: bool,
              states: str | None, retry_errors: bool, ray_address: str | None, backend: str, progress: bool,
              as_json: bool) -> None:
    """Index VIDEO_DIR (recursively): new and changed videos are encoded once, deleted ones dropped."""
    from vidseek.engine.video import VideoDecodeWarning
    from vidseek.library.api import Index
    from vidseek.library.models import domain_note

    def exporting(source: str, folder: Path) -> None:
        click.echo(f"exporting CLIP {source} as a zero-shot bundle into {folder} (once)", err=True)

    index = Index(index_dir, backend=backend)
    with user_errors(), warnings_shown(VideoDecodeWarning):
        report = index.add(video_dir, model=model, window_s=window_s, stride_s=stride_s, progress=progress,
                           on_export=exporting, rebuild=rebuild, ray=ray_address,
                           retry_errors=retry_errors, states=states)
    if as_json:
        echo_json({"index": str(index.path), **report.to_dict()})
        return
    note = domain_note(report.domain)
    if note:
        click.echo(note, err=True)
    for path, error in report.errors:
        click.echo(f"  skipped {shown(path)}: {shown(error)}", err=True)
    click.echo(f"{index.path}: {report.summary()}")
