"""Small helpers shared by the CLI commands."""

from __future__ import annotations

import click


def need_torch(what: str) -> None:
    """A clear error, not a traceback, when a torch-only command runs on the core (runtime) install."""
    from vidseek.engine.models import missing_packages

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
