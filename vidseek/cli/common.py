"""Small helpers shared by the CLI commands."""

from __future__ import annotations

import click


def need_torch(what: str) -> None:
    """A clear error, not a traceback, when a torch-only command runs on the core (runtime) install."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise click.ClickException(f"{what} needs PyTorch: pip install 'vidseek[train]' (install torch first)") from None
