"""What the CLI commands share: the --index and --backend options, how a user error is shown, how
text from the library (file names, messages) is made safe to print."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from vidseek.engine.registry import BACKENDS
from vidseek.errors import VidseekError

index_option = click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                            help="Index folder (default: $VIDSEEK_INDEX, else ./.vidseek).")
backend_option = click.option("--backend", type=click.Choice(list(BACKENDS)), default="onnxruntime", show_default=True,
                              help="Inference runtime of the bundle's graphs.")
# The annotation formats of vidseek.trainer.data.annotations (train, predict, eval); named here so that
# the command line loads without the trainer (tests/test_cli_json.py keeps the two the same)
DATASETS = ("charades-sta", "activitynet", "tacos", "qvhighlights", "jsonl")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")

# A user error says what was wrong and what to do (VidseekError); an OSError names the file and
# what the system said. Anything else is a bug and keeps its traceback.
USER_ERRORS = (VidseekError, OSError)


def default_index() -> Path:
    """$VIDSEEK_INDEX, else ./.vidseek (as ``vidseek.Index``)."""
    from vidseek.library.api import default_index_dir

    return default_index_dir()


def shown(text, lines: bool = False) -> str:
    """Text safe to print on a terminal: a file name that is not UTF-8 shows its odd bytes as \\xNN,
    and control characters (escape sequences, BEL, newlines that would split a row) their escapes
    (``vidseek.index.catalog.printable``); with ``lines``, a message keeps its newlines."""
    from vidseek.index.catalog import printable

    return printable(str(text), lines=lines)


@contextmanager
def user_errors() -> Iterator[None]:
    """Show a user error (``USER_ERRORS``) as ``Error: message`` with exit status 1, not a traceback."""
    try:
        yield
    except USER_ERRORS as exc:
        raise click.ClickException(shown(exc, lines=True)) from exc


def echo_json(document) -> None:
    """Print one JSON document."""
    click.echo(json.dumps(document, indent=2))


@contextmanager
def warnings_shown(*categories: type[Warning]) -> Iterator[None]:
    """Print each warning of ``categories`` (a video a search skips, a video read only in part) as a
    ``warning:`` line on stderr, when it happens; other warnings are shown as usual."""
    with warnings.catch_warnings():
        show = warnings.showwarning

        def showwarning(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, categories):
                click.echo(f"warning: {shown(message, lines=True)}", err=True)
            else:
                show(message, category, filename, lineno, file, line)

        warnings.showwarning = showwarning
        for category in categories:
            warnings.simplefilter("always", category)
        yield


def need_torch(what: str) -> None:
    """A clear error, not a traceback, when a torch-only command runs on the core (runtime) install."""
    from vidseek.library.models import missing_packages

    if missing_packages(("torch",)):
        raise click.ClickException(f"{what} needs PyTorch: pip install 'vidseek[train]' (install torch first)")


def check_device(device: str, what: str) -> None:
    """--device checked before any work (torch is imported by the trainer, not here)."""
    need_torch(what)
    from vidseek.trainer.device import check_device as check

    try:
        check(device)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None
