"""Run code in a subprocess where torch (and optionally more) cannot be imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "sentence_transformers")


def blocker(extra_prefixes: tuple[str, ...] = ()) -> str:
    """Python source that makes importing torch (and modules starting with `extra_prefixes`) fail."""
    return (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {HEAVY!r} or name.startswith({tuple(extra_prefixes)!r}):\n"
        "            raise ImportError(name + ' is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
    )


def run_blocked(code: str, *args: str, extra_prefixes: tuple[str, ...] = ("vidseek.trainer",)) -> subprocess.CompletedProcess:
    """Run `code` with torch and the trainer blocked; sys.argv[1:] are `args`."""
    return subprocess.run([sys.executable, "-c", blocker(extra_prefixes) + code, *args],
                          capture_output=True, text=True, cwd=ROOT)
