"""`vidseek --help` and `--version` start without the heavy libraries: every command module imports
numpy, onnxruntime, faiss and torch inside the functions that need them."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("numpy", "onnxruntime", "faiss", "torch", "fastapi", "ray", "av", "tokenizers")
PROBE = """
import sys
from vidseek.cli.main import cli
try:
    cli.main([sys.argv[1]], prog_name="vidseek")
except SystemExit:
    pass
print("imported:" + ",".join(m for m in sys.argv[2].split(",") if m in sys.modules), file=sys.stderr)
"""


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_import_nothing_heavy(flag):
    r = subprocess.run([sys.executable, "-c", PROBE, flag, ",".join(HEAVY)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "vidseek" in r.stdout
    imported = r.stderr.strip().splitlines()[-1]
    assert imported == "imported:", f"vidseek {flag} {imported}"
