"""What a ``--model`` choice means: one function, used by ``vidseek index`` and ``vidseek.Index``.

    builtin            the ExCL bundle shipped inside the package (``vidseek.builtin``)
    builtin-plpnet     the PLPNet bundle shipped inside the package: phrase spans (``search --phrases``)
    BUNDLE_DIR         a bundle folder written by ``vidseek export``
    clip:ID_OR_PATH    a CLIP model (hub id or local folder) used zero-shot, without a trained head

A ``clip:`` choice resolves to a zero-shot bundle in the cache folder (``$VIDSEEK_CACHE``, else
``$XDG_CACHE_HOME/vidseek``, else ``~/.cache/vidseek``), under ``bundles/clip-<key>``, where the
key is a hash of the hub id, or of a local folder's path and its files' sizes and modification
times. The bundle is exported there once (this needs PyTorch, the ``train`` extra) and used
torch-free from then on. Torch-free: the exporter is imported only when a bundle must be made.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from vidseek.errors import VidseekError

BUILTIN = "builtin"
BUILTIN_PLPNET = "builtin-plpnet"
BUILTINS = (BUILTIN, BUILTIN_PLPNET)  # the bundles shipped in the package (``vidseek.builtin.BUNDLES``)
CLIP_PREFIX = "clip:"
CHOICES_HELP = ("builtin, builtin-plpnet, a bundle folder from `vidseek export`, or clip:ID_OR_PATH (a CLIP model "
                "used zero-shot)")


SYNTHETIC_NOTE = ("note: this model has only seen vidseek's synthetic world (rendered people opening doors, switching "
                  "lights, sitting down); on real footage its moments mean little. For real videos index with a CLIP "
                  "model: --model clip:ID_OR_PATH (docs/encoders.md)")


def domain_note(domain: str | None) -> str | None:
    """What to tell, once, a user whose index was built with a bundle of this domain (None: nothing)."""
    return SYNTHETIC_NOTE if domain == "synthetic" else None


class ModelChoiceError(VidseekError, ValueError):
    """A ``--model`` choice that does not name a usable bundle; the message says what to pass instead."""


def cache_root() -> Path:
    """vidseek's cache folder: $VIDSEEK_CACHE, else $XDG_CACHE_HOME/vidseek, else ~/.cache/vidseek."""
    if os.environ.get("VIDSEEK_CACHE"):
        return Path(os.environ["VIDSEEK_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "vidseek"


def zero_shot_key(source: str) -> str:
    """A short hash naming the zero-shot bundle of a CLIP hub id or local folder.

    A folder is keyed by its resolved path and the name, size and modification time of each file
    in it, so replacing the weights gives a new bundle; a hub id by the id itself.
    """
    h = hashlib.sha256()
    local = Path(source).expanduser()
    if local.is_dir():
        h.update(b"folder\0" + str(local.resolve()).encode())
        for f in sorted(p for p in local.iterdir() if p.is_file()):
            st = f.stat()
            h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    else:
        h.update(b"hub\0" + source.encode())
    return h.hexdigest()[:16]


def zero_shot_dir(source: str) -> Path:
    """The cache folder of the zero-shot bundle of ``source`` (it may not exist yet)."""
    return cache_root() / "bundles" / f"clip-{zero_shot_key(source)}"


EXPORT_PACKAGES = ("torch", "transformers", "onnx")  # what a zero-shot export needs


def missing_packages(names: tuple[str, ...] = EXPORT_PACKAGES) -> list[str]:
    """Which of the packages ``names`` are not installed here (default: those a zero-shot export needs)."""
    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken or blocked installation
            found = False
        if not found:
            missing.append(name)
    return missing


def zero_shot_bundle(source: str, on_export: Callable[[str, Path], None] | None = None) -> Path:
    """The zero-shot bundle folder of a CLIP hub id or local folder, exported into the cache on first use.

    ``on_export(source, folder)`` is called before an export starts (it takes a while for a large
    CLIP). The export is written to a temporary folder and renamed into place, so an interrupted
    export leaves nothing behind and two processes exporting at once both end with one bundle.
    """
    folder = zero_shot_dir(source)
    if (folder / "bundle.json").is_file():
        return folder
    if folder.exists():
        raise ModelChoiceError(f"the cache folder {folder} of clip:{source} exists but holds no bundle.json; "
                               "remove it and run again")
    missing = missing_packages()
    if missing:
        raise ModelChoiceError(
            f"clip:{source} is exported once into a zero-shot bundle, which needs PyTorch ({', '.join(missing)} "
            "not installed here): pip install 'vidseek[train]', or export the bundle on another machine with "
            f"`vidseek export --clip {source} BUNDLE_DIR` and pass --model BUNDLE_DIR")
    from vidseek.export.clip import export_clip_bundle

    if on_export is not None:
        on_export(source, folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        export_clip_bundle(source, tmp, check=True, progress=True)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "bundle.json").is_file():  # not another process's finished bundle: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _not_a_bundle(path: Path, choice: str) -> ModelChoiceError:
    """The error for a folder without bundle.json, with a hint when it is a CLIP model or a training run."""
    hint = ""
    config = path / "config.json"
    if config.is_file():
        try:
            data = json.loads(config.read_text())
        except (OSError, ValueError):
            data = {}
        if isinstance(data, dict) and str(data.get("model_type", "")).startswith("clip"):
            hint = f"; it looks like a CLIP model: pass --model clip:{choice} to use it zero-shot"
        elif isinstance(data, dict) and "model" in data:
            hint = f"; it looks like a training run: export it first with `vidseek export {choice} --out BUNDLE_DIR`"
    return ModelChoiceError(f"--model {choice}: {path} is not a vidseek bundle (no bundle.json){hint}. "
                            f"Expected {CHOICES_HELP}")


def resolve_model(choice: str | os.PathLike = BUILTIN, on_export: Callable[[str, Path], None] | None = None) -> Path:
    """The bundle folder a ``--model`` choice names: ``builtin``, a bundle folder, or ``clip:ID_OR_PATH``.

    ``clip:`` choices are exported into the cache on first use (see ``zero_shot_bundle``, whose
    ``on_export`` this passes on). Raises ModelChoiceError with what to pass instead.
    """
    if isinstance(choice, os.PathLike):
        text = os.fspath(choice)
    else:
        text = str(choice).strip()
        if text in BUILTINS:
            from vidseek.builtin import builtin_bundle

            try:
                return builtin_bundle(text)
            except FileNotFoundError as exc:
                raise ModelChoiceError(str(exc)) from None
        if text == "clip" or text == CLIP_PREFIX:
            raise ModelChoiceError("--model clip needs the CLIP model after the colon: clip:ID_OR_PATH, e.g. "
                                   "clip:openai/clip-vit-base-patch32 or clip:models/clip-vit-b32")
        if text.startswith(CLIP_PREFIX):
            return zero_shot_bundle(text[len(CLIP_PREFIX):], on_export)
    if not text:
        raise ModelChoiceError(f"--model is empty; expected {CHOICES_HELP}")
    path = Path(text).expanduser()
    if not path.exists():
        raise ModelChoiceError(f"--model {text}: no such folder; expected {CHOICES_HELP}")
    if not (path / "bundle.json").is_file():
        raise _not_a_bundle(path, text)
    return path


def recreatable(choice: str | os.PathLike) -> str | None:
    """The choice when resolving it again re-creates its bundle (``builtin``, ``builtin-plpnet``,
    ``clip:...``), else None.

    An index stores it, so that search can say how to get back a bundle whose folder is gone.

    >>> recreatable("clip:ViT-B/32"), recreatable("builtin"), recreatable("bundles/mine")
    ('clip:ViT-B/32', 'builtin', None)
    """
    if isinstance(choice, os.PathLike):
        return None
    text = str(choice).strip()
    return text if text in BUILTINS or text.startswith(CLIP_PREFIX) else None
