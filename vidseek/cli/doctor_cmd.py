"""`vidseek doctor`: check the installation and an index; exit status 1 when something is wrong. Torch-free."""

from __future__ import annotations

from pathlib import Path

import click

from vidseek.cli.common import default_index, echo_json, json_option, shown


@click.command("doctor")
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Index folder to check (default: $VIDSEEK_INDEX, else ./.vidseek, when it exists).")
@json_option
def doctor_cmd(index_dir: Path | None, as_json: bool) -> None:
    """Check this installation (versions, GPU, built-in bundle) and an index (integrity, bundle, cache),
    print what is wrong and how to fix it; exit status 1 when something is."""
    from vidseek.index.catalog import CATALOG_FILE
    from vidseek.library.doctor import failed, run

    if index_dir is None:
        default = default_index()
        index_dir = default if (default / CATALOG_FILE).is_file() else None
    findings = run(index_dir)
    problems = sum(f.level == "fail" for f in findings)
    warnings = sum(f.level == "warn" for f in findings)
    if as_json:
        echo_json({"index": None if index_dir is None else str(index_dir), "problems": problems,
                   "warnings": warnings, "findings": [f.to_dict() for f in findings]})
    else:
        for finding in findings:
            click.echo(shown(finding.line(), lines=True))
        if index_dir is None:
            click.echo(f"INFO  index: none checked (no index at {default_index()}; pass --index DIR)")
        click.echo(f"{problems} problems, {warnings} warnings")
    if failed(findings):
        raise SystemExit(1)
