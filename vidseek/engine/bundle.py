"""Read and verify a bundle folder (written by ``vidseek export``). Torch-free."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from vidseek.engine.calibration import problems as calibration_problems
from vidseek.engine.registry import KNOWN_MODELS
from vidseek.errors import VidseekError

BUNDLE_FORMAT_VERSION = 1
DESCRIPTIVE_KEYS = ("trained", "vidseek_version", "domain")  # bundle.json fields that change no output
DOMAINS = ("synthetic", "real", "unknown")  # what footage a bundle was trained on (bundle.json "domain")
DERIVED_FOLDERS = ("tensorrt", "trt_cache")  # engines built from the bundle's graphs on a GPU
MAX_FRAME_SIDE = 4096  # a frame encoder's input, pixels per side


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
    def domain(self) -> str:
        """What footage the model was trained on: "synthetic" (vidseek's synthetic world only, as the
        built-in bundle), "real", or "unknown" (bundles exported before bundles said so)."""
        return self.meta.get("domain", {}).get("kind", "unknown")

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
        """A short id of everything that shapes the bundle's outputs: sha256 over bundle.json (every
        setting, and the sha256 of every file, which ``load_bundle`` verifies) less the fields that
        describe how it was made (``DESCRIPTIVE_KEYS``)."""
        shaping = {k: v for k, v in self.meta.items() if k not in DESCRIPTIVE_KEYS}
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]

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
    vocab = words.get("vocabulary")
    if vocab is not None and not (isinstance(vocab, list) and all(isinstance(w, str) for w in vocab)):
        problems.append("'words.vocabulary' must be a list of the training sentences' words")
    problems += _setting_problems(meta) + calibration_problems(meta.get("calibration"))
    domain = meta.get("domain", {"kind": "unknown"})
    if not (isinstance(domain, dict) and domain.get("kind") in DOMAINS):
        problems.append(f"'domain' must be {{\"kind\": one of {', '.join(DOMAINS)}}}, got {domain!r}")
    named = {g["file"] for g in graphs.values()} | ({words["tokenizer"]} if words else set())
    unhashed = sorted(named - set(files))
    if unhashed:
        problems.append(f"{', '.join(unhashed)} not listed in 'files' (so not verified)")
    if problems:
        raise BundleError(f"{meta_path} is not a valid bundle description: {'; '.join(problems)}. The file was edited "
                          "or damaged: re-export the bundle with `vidseek export`")


def _positive(value, integer: bool = False, most: float = math.inf) -> bool:
    kinds = (int,) if integer else (int, float)
    return (isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
            and 0 < value <= most)


def _setting_problems(meta: dict) -> list[str]:
    """The settings of bundle.json that no model can run with, each named (an edited or damaged file)."""
    problems = []
    features = meta.get("features") if isinstance(meta.get("features"), dict) else {}
    checks = [("features.dim", features.get("dim"), True, math.inf)]
    if "length" in features and features["length"] is not None:
        checks.append(("features.length", features["length"], True, math.inf))
    if features.get("rate") is not None:  # None: features precomputed at a rate the bundle does not know
        checks.append(("features.rate", features["rate"], False, 1000.0))
    if meta.get("retrieval_dim"):  # 0 or absent: no retrieval embedding (such a bundle cannot index a library)
        checks.append(("retrieval_dim", meta["retrieval_dim"], True, math.inf))
    encoder = features.get("frame_encoder")
    if encoder is not None:
        spec = encoder.get("spec") if isinstance(encoder, dict) else None
        spec = spec if isinstance(spec, dict) else {}
        checks += [("features.frame_encoder.rate", encoder.get("rate") if isinstance(encoder, dict) else None,
                    False, 1000.0),
                   ("features.frame_encoder.spec.width", spec.get("width"), True, MAX_FRAME_SIDE),
                   ("features.frame_encoder.spec.height", spec.get("height"), True, MAX_FRAME_SIDE)]
        for key in ("mean", "std"):
            values = spec.get(key)
            if not (isinstance(values, list) and len(values) == 3
                    and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
                    and (key == "mean" or all(v > 0 for v in values))):
                problems.append(f"features.frame_encoder.spec.{key} must be 3 finite numbers"
                                + (" > 0" if key == "std" else "") + f", got {values!r}")
    for name, value, integer, most in checks:
        if not _positive(value, integer, most):
            kind = "a whole number" if integer else "a number"
            bound = "" if most == math.inf else f" and at most {most:g}"
            problems.append(f"{name} must be {kind} > 0{bound}, got {value!r}")
    return problems


def _unlisted(root: Path, files: dict) -> list[str]:
    """Files in the bundle folder that bundle.json does not list (so would not be verified): an
    ONNX graph's external data, say. Hidden files and the engines built from the graphs are not counted."""
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if (path.is_file() and rel.as_posix() not in files and rel.as_posix() != "bundle.json"
                and not any(p.startswith(".") for p in rel.parts) and rel.parts[0] not in DERIVED_FOLDERS):
            found.append(rel.as_posix())
    return found


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
        unlisted = _unlisted(root, meta["files"])
        if unlisted:
            raise BundleError(f"bundle {root} holds {', '.join(unlisted[:5])}, which bundle.json does not list, so it "
                              "cannot be verified (an ONNX graph's external data must be listed too); remove it, or "
                              "re-export the bundle with `vidseek export`")
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
