"""Read and verify a bundle folder (written by ``vidseek export``). Torch-free."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from vidseek.engine.registry import KNOWN_MODELS
from vidseek.errors import VidseekError

BUNDLE_FORMAT_VERSION = 1


class BundleError(VidseekError):
    """A bundle that cannot be used as it is; the message says what and how to fix it."""


def sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _inside(root: Path, name: str) -> Path:
    """`root/name`, refusing names that leave the bundle folder (absolute paths, `..`)."""
    path = (root / name).resolve()
    if root.resolve() not in path.parents:
        raise BundleError(f"bundle.json in {root} names the file {name!r} outside the bundle folder; the bundle is corrupt or unsafe")
    return path


@dataclass
class Bundle:
    """A bundle folder and its bundle.json (``meta``)."""

    path: Path
    meta: dict

    @property
    def model_name(self) -> str:
        return self.meta["model"]["name"]

    @property
    def zero_shot(self) -> bool:
        """True for a zero-shot CLIP bundle (``vidseek export --clip``): frame and text encoders, no head."""
        return bool(self.meta.get("zero_shot", False))

    @property
    def graphs(self) -> dict:
        return self.meta["graphs"]

    @property
    def length(self) -> int:
        """The feature length L the model was trained at (features are resampled to it for grounding)."""
        length = self.meta["features"].get("length")
        if length is None:
            raise BundleError(f"bundle {self.path} ({self.model_name}) has no fixed feature length: it reads the "
                              "frames at their own rate")
        return int(length)

    @property
    def feature_dim(self) -> int:
        return int(self.meta["features"]["dim"])

    def graph_path(self, name: str) -> Path:
        if name not in self.graphs:
            raise BundleError(f"bundle {self.path} has no {name} graph (it has: {', '.join(self.graphs)})")
        return _inside(self.path, self.graphs[name]["file"])

    @property
    def fingerprint(self) -> str:
        """A short id of the bundle's content: sha256 over its files' hashes."""
        joined = "".join(f"{k}:{v};" for k, v in sorted(self.meta["files"].items()))
        return hashlib.sha256(joined.encode()).hexdigest()[:16]

    def tokenizer(self):
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(_inside(self.path, self.meta["words"]["tokenizer"])))


def _check_layout(meta, meta_path: Path) -> None:
    """Refuse a bundle.json that does not have the structure `vidseek export` writes (an edited or
    damaged file), before anything reads it; every graph and the tokenizer must be hashed in 'files'."""
    if not isinstance(meta, dict):
        raise BundleError(f"{meta_path} does not hold a JSON object; re-export the bundle with `vidseek export`")
    problems = []
    files, graphs = meta.get("files"), meta.get("graphs")
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        problems.append("'files' must map file names to sha256 digests")
        files = {}
    if not isinstance(graphs, dict) or not all(isinstance(g, dict) and isinstance(g.get("file"), str)
                                               for g in graphs.values()):
        problems.append("'graphs' must map graph names to {\"file\": name}")
        graphs = {}
    if not isinstance(meta.get("model"), dict) or not isinstance(meta["model"].get("name"), str):
        problems.append("'model' must give the model's name")
    elif meta["model"]["name"] not in KNOWN_MODELS:
        problems.append(f"'model' names {meta['model']['name']!r}, which is none of {', '.join(KNOWN_MODELS)}")
    if not isinstance(meta.get("features"), dict):
        problems.append("'features' must describe the features")
    words = meta.get("words")
    if not isinstance(words, dict) or not isinstance(words.get("tokenizer"), str):
        problems.append("'words' must name the tokenizer file")
        words = {}
    named = {g["file"] for g in graphs.values()} | ({words["tokenizer"]} if words else set())
    unhashed = sorted(named - set(files))
    if unhashed:
        problems.append(f"{', '.join(unhashed)} not listed in 'files' (so not verified)")
    if problems:
        raise BundleError(f"{meta_path} is not a valid bundle description: {'; '.join(problems)}. The file was edited "
                          "or damaged: re-export the bundle with `vidseek export`")


def load_bundle(path: str | Path, verify: bool = True) -> Bundle:
    """Open a bundle folder; with ``verify`` check the format version and every file's sha256."""
    root = Path(path)
    meta_path = root / "bundle.json"
    if not meta_path.is_file():
        raise BundleError(f"{root} is not a vidseek bundle (no bundle.json); create one with `vidseek export RUN_DIR --out {root}`")
    try:
        meta = json.loads(meta_path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{meta_path} is not valid JSON ({exc}); re-export the bundle") from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if not isinstance(version, int) or version > BUNDLE_FORMAT_VERSION:
        raise BundleError(
            f"{meta_path} has format version {version!r}; this vidseek reads bundle versions up to "
            f"{BUNDLE_FORMAT_VERSION}: upgrade vidseek, or export the bundle with this version"
        )
    _check_layout(meta, meta_path)
    if verify:
        for name, digest in meta["files"].items():
            file = _inside(root, name)
            if not file.is_file():
                raise BundleError(f"bundle {root} is missing {name}; re-export it with `vidseek export`")
            actual = sha256(file)
            if actual != digest:
                raise BundleError(
                    f"{file} does not match bundle.json (sha256 {actual[:12]}… != {digest[:12]}…): the file was "
                    "modified or damaged; re-export the bundle with `vidseek export`"
                )
    return Bundle(root, meta)
