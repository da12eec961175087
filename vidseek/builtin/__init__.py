"""The built-in demo bundle shipped inside the package (``--model builtin``).

It is trained on the synthetic world (`vidseek synth`) with the built-in CNN frame encoder and
all-MiniLM-L6-v2 word features, and exported to ONNX with an int8 MiniLM text tower; the recipe is
``scripts/train_builtin.py`` and its accuracy is in ``docs/model-card.md``.
"""

from __future__ import annotations

from pathlib import Path

BUNDLE_DIR = Path(__file__).parent / "bundle"


def builtin_bundle() -> Path:
    """The folder of the built-in bundle; a clear error when this installation lacks it."""
    if not (BUNDLE_DIR / "bundle.json").is_file():
        raise FileNotFoundError(f"the built-in bundle is missing from this installation ({BUNDLE_DIR}): reinstall "
                                "vidseek, or pass a bundle folder with --model BUNDLE_DIR")
    return BUNDLE_DIR
