"""`vidseek doctor`: check the installation and an index; exit status 1 when something is wrong. Torch-free."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("doctor")
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Index folder to check (default: $VIDSEEK_INDEX, else ./.vidseek, when it exists).")
def doctor_cmd(index_dir):
    """Check this installation (versions, GPU, built-in bundle) and an index (integrity, bundle, cache),
    print what is wrong and how to fix it; exit status 1 when something is."""
    from vidseek.cli.index_cmd import default_index
    from vidseek.doctor import failed, run
    from vidseek.index.catalog import CATALOG_FILE, printable

    if index_dir is None:
        default = default_index()
        index_dir = default if (default / CATALOG_FILE).is_file() else None
    findings = run(index_dir)
    for finding in findings:
        click.echo(printable(finding.line()))
    if index_dir is None:
        click.echo(f"INFO  index: none checked (no index at {default_index()}; pass --index DIR)")
    problems = sum(f.level == "fail" for f in findings)
    warnings = sum(f.level == "warn" for f in findings)
    click.echo(f"{problems} problems, {warnings} warnings")
    if failed(findings):
        raise SystemExit(1)
