"""The built-in bundles shipped inside the package (``--model builtin``, ``--model builtin-plpnet``).

Both are trained on the synthetic world (`vidseek synth`) with the same built-in CNN frame encoder
and all-MiniLM-L6-v2 word features, and exported to ONNX with an int8 MiniLM text tower:

    builtin          ExCL (clf, 2b): sentence-level start/end prediction, the default
    builtin-plpnet   PLPNet: the sentence's span and each of its phrases' spans (``search --phrases``)

The recipe is ``scripts/train_builtin.py`` and their accuracy is in ``docs/model-card.md``.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
BUNDLE_DIRS = {"builtin": HERE / "bundle", "builtin-plpnet": HERE / "plpnet"}  # --model choice -> its folder
BUNDLE_DIR = BUNDLE_DIRS["builtin"]  # the default built-in bundle


def builtin_bundle(name: str = "builtin") -> Path:
    """The folder of the built-in bundle ``name`` (a ``BUNDLE_DIRS`` key); a clear error when this
    installation lacks it."""
    folder = BUNDLE_DIRS[name]
    if not (folder / "bundle.json").is_file():
        raise FileNotFoundError(f"the built-in bundle is missing from this installation (--model {name}: {folder}): "
                                "reinstall vidseek, or pass a bundle folder with --model BUNDLE_DIR")
    return folder


def builtin_name(folder: str | Path) -> str | None:
    """Which built-in bundle ``folder`` is (a ``BUNDLE_DIRS`` key), or None for any other folder."""
    folder = Path(folder).resolve()
    return next((name for name, path in BUNDLE_DIRS.items() if folder == path.resolve()), None)
