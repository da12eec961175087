"""The `vidseek` command line. Each command lives in its own module and imports heavy
libraries (torch, onnx) inside its function, so `vidseek --help` and the search path stay light."""

from __future__ import annotations

import click

from vidseek import __version__
from vidseek.cli.bench_cmd import bench_cmd
from vidseek.cli.clip_cmd import clip_cmd
from vidseek.cli.demo_cmd import demo_cmd
from vidseek.cli.doctor_cmd import doctor_cmd
from vidseek.cli.eval_cmd import eval_cmd
from vidseek.cli.export_cmd import export_cmd
from vidseek.cli.features_cmd import features_cmd
from vidseek.cli.index_cmd import index_cmd
from vidseek.cli.info_cmd import info_cmd
from vidseek.cli.search_cmd import search_cmd
from vidseek.cli.serve_cmd import serve_cmd
from vidseek.cli.synth_cmd import synth_cmd
from vidseek.cli.train_cmd import predict_cmd, train_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vidseek")
def cli() -> None:
    """Find moments in video by natural language."""


cli.add_command(demo_cmd)
cli.add_command(train_cmd)
cli.add_command(predict_cmd)
cli.add_command(eval_cmd)
cli.add_command(synth_cmd)
cli.add_command(export_cmd)
cli.add_command(features_cmd)
cli.add_command(index_cmd)
cli.add_command(search_cmd)
cli.add_command(info_cmd)
cli.add_command(serve_cmd)
cli.add_command(clip_cmd)
cli.add_command(bench_cmd)
cli.add_command(doctor_cmd)
