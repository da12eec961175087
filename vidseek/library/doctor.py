"""`vidseek doctor`: check an installation and an index, and say what is wrong and how to fix it.

Torch-free: PyTorch is only looked up in the installed packages, never imported. Each check gives a
``Finding``: ``ok`` (fine), ``info`` (worth knowing), ``warn`` (works, but something is off) or
``fail`` (something that stops indexing or searching), with the fix for warn and fail. ``run``
returns all findings; a ``fail`` among them makes `vidseek doctor` exit with status 1.

>>> Finding("fail", "index", "catalog is damaged", "re-index").line()
'FAIL  index: catalog is damaged\\n      fix: re-index'
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

LEVELS = ("ok", "info", "warn", "fail")
LOW_SPACE = 500 * 1024 * 1024  # free bytes under which the index folder's disk counts as nearly full

# (module imported to check it works, distributions that provide it, what it is for, required)
PACKAGES = (
    ("numpy", ("numpy",), "arrays", True),
    ("onnxruntime", ("onnxruntime", "onnxruntime-gpu"), "runs the model graphs", True),
    ("faiss", ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cu11"), "clip search", True),
    ("av", ("av",), "video decoding (PyAV)", True),
    ("decord", ("decord",), "fast video decoding on x86-64 (PyAV is used without it)", False),
    ("tokenizers", ("tokenizers",), "query tokenizer", True),
)


@dataclass(frozen=True)
class Finding:
    """One result of a check."""

    level: str  # ok | info | warn | fail
    topic: str  # what was checked
    detail: str  # what was found
    fix: str | None = None  # what to do (warn and fail)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level {self.level!r}: expected one of {', '.join(LEVELS)}")

    def to_dict(self) -> dict:
        """JSON-ready fields (``vidseek doctor --json``)."""
        return asdict(self)

    def line(self) -> str:
        """The finding as `vidseek doctor` prints it."""
        text = f"{self.level.upper():5} {self.topic}: {self.detail}"
        return text + (f"\n      fix: {self.fix}" if self.fix else "")


def _version(distributions: tuple[str, ...]) -> str | None:
    for name in distributions:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return f"{importlib.metadata.version(name)} ({name})"
    return None


# ---- the installation ------------------------------------------------------------------------------
def installation() -> list[Finding]:
    """Versions of vidseek, Python and the packages search and indexing need, whether each imports,
    onnxruntime's providers, GPU visibility, and the built-in bundle."""
    from vidseek import __version__

    found = [Finding("ok", "vidseek", f"{__version__} at {Path(__file__).parent}"),
             Finding("ok", "python", f"{platform.python_version()} ({sys.executable})")]
    modules = {}
    for module, distributions, purpose, required in PACKAGES:
        version = _version(distributions)
        try:
            modules[module] = importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 (any import failure is what is being reported)
            level = "fail" if required else "info"
            what = f"{version} is installed but does not import ({type(exc).__name__}: {exc})" if version \
                else "not installed"
            fix = f"pip install --force-reinstall {distributions[0]}" if version else f"pip install {distributions[0]}"
            found.append(Finding(level, module, f"{what}; needed for {purpose}", fix if required else None))
            continue
        found.append(Finding("ok", module, version or getattr(modules[module], "__version__", "installed")))
    torch = _version(("torch",))
    found.append(Finding("info", "torch", f"{torch}: training and export available" if torch
                         else "not installed: search and indexing do not need it (training and export do: "
                              "pip install 'vidseek[train]')"))
    found += _gpu(modules.get("onnxruntime"), modules.get("faiss"))
    found.append(_builtin())
    return found


def _gpu(ort, faiss) -> list[Finding]:
    """onnxruntime's providers, the GPUs nvidia-smi sees, and whether both agree."""
    found = []
    providers = list(ort.get_available_providers()) if ort is not None else []
    if ort is not None:
        found.append(Finding("ok", "onnxruntime providers", ", ".join(providers) or "none"))
    gpus = []
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            r = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=20, check=False)
            gpus = [line.strip() for line in r.stdout.splitlines() if line.strip()] if r.returncode == 0 else []
            if r.returncode != 0:
                found.append(Finding("warn", "GPU", f"nvidia-smi failed: {(r.stderr or r.stdout).strip()[:300]}",
                                     "check the NVIDIA driver (run nvidia-smi yourself)"))
        except (OSError, subprocess.TimeoutExpired) as exc:
            found.append(Finding("warn", "GPU", f"nvidia-smi did not answer ({exc})",
                                 "check the NVIDIA driver (run nvidia-smi yourself)"))
    found.append(Finding("ok" if gpus else "info", "GPU", "; ".join(gpus) if gpus
                         else "no NVIDIA GPU visible (nvidia-smi " + ("sees none)" if smi else "not found)")
                         + ": everything runs on the CPU"))
    cuda = "CUDAExecutionProvider" in providers
    if gpus and not cuda and ort is not None:
        found.append(Finding("warn", "GPU", "a GPU is visible but onnxruntime has no CUDA provider, so models run on "
                             "the CPU", "pip install 'vidseek[gpu]' (onnxruntime-gpu) to use the GPU"))
    elif cuda and not gpus:
        found.append(Finding("warn", "GPU", "onnxruntime has the CUDA provider but no GPU is visible",
                             "use --backend onnxruntime (CPU), or check the NVIDIA driver"))
    if faiss is not None and gpus:
        n = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        found.append(Finding("ok" if n else "info", "faiss GPU", f"{n} GPU(s)" if n
                             else "this faiss build has no GPU support: clip search runs on the CPU"))
    return found


def _builtin() -> Finding:
    """Is the built-in bundle (`--model builtin`, the default) present and intact?"""
    from vidseek.builtin import builtin_bundle
    from vidseek.engine.bundle import BundleError, load_bundle

    try:
        bundle = load_bundle(builtin_bundle())
    except FileNotFoundError:
        from vidseek.builtin import BUNDLE_DIR

        return Finding("warn", "built-in bundle", f"missing from this installation ({BUNDLE_DIR}), so `vidseek index` "
                       "needs --model BUNDLE_DIR", "reinstall vidseek, or index with --model BUNDLE_DIR")
    except BundleError as exc:
        return Finding("fail", "built-in bundle", str(exc), "reinstall vidseek (pip install --force-reinstall vidseek)")
    return Finding("ok", "built-in bundle", f"{bundle.model_name}, fingerprint {bundle.fingerprint} ({bundle.path})")


# ---- an index ------------------------------------------------------------------------------------
def index(index_dir: str | Path) -> list[Finding]:
    """The state of an index folder: catalog, integrity, writer, bundle, library root, cache files
    and free disk space. Reads only; safe while `vidseek index` runs (it says when one does)."""
    from vidseek.index import IndexStorageError, integrity
    from vidseek.index.catalog import CATALOG_FILE, Catalog

    index_dir = Path(index_dir)
    topic = f"index {index_dir}"
    if not (index_dir / CATALOG_FILE).is_file():
        return [Finding("fail", topic, f"no index here (no {CATALOG_FILE})",
                        f"build one with `vidseek index VIDEO_DIR --index {index_dir}`")]
    found = []
    writer = _writer(index_dir)
    if writer:
        found.append(Finding("info", topic, f"`vidseek index` is writing to it now ({writer}): what it has not "
                             "finished yet may show below"))
    try:
        with Catalog(index_dir, readonly=True) as cat:
            settings, counts = cat.settings(), cat.counts()
            problems = integrity.check(cat)
            listed = {v.id for v in cat.videos()}
            retired = cat.retired()
            ok_ids = {v.id for v in cat.videos("ok")}
    except IndexStorageError as exc:
        return found + [Finding("fail", topic, str(exc), "if the catalog is damaged or of a newer vidseek, index "
                                f"the library again from scratch: `vidseek index VIDEO_DIR --index {index_dir} --rebuild`")]
    found.append(Finding("ok", topic, ", ".join(f"{n} {status}" for status, n in counts.items()) + " videos"))
    if counts["error"]:
        found.append(Finding("info", topic, f"{counts['error']} files could not be indexed; `vidseek info --index "
                             f"{index_dir}` lists them with the reason"))
    root = settings.root or "VIDEO_DIR"
    if counts["pending"] and not writer:
        found.append(Finding("warn", topic, f"{counts['pending']} videos were being encoded when a run stopped",
                             f"run `vidseek index {root} --index {index_dir}` again: it finishes them"))
    for problem in problems:
        found.append(Finding("fail", "integrity", problem,
                             f"run `vidseek index {root} --index {index_dir}`: it "
                             "re-encodes videos whose cached features are missing or damaged and rebuilds the clip "
                             "index; if that does not help, add --rebuild to index the library again from scratch"))
    if not problems:
        found.append(Finding("ok", "integrity", "catalog, cache files and clip index agree"))
    found += _bundle(index_dir, settings)
    found += _library(settings)
    found += _cache(index_dir, listed, retired, ok_ids)
    found.append(_space(index_dir))
    return found


def _writer(index_dir: Path) -> str | None:
    """Who is writing to the index now (pid and start), or None when no indexing run is going on."""
    from vidseek.index.lock import current_writer

    holder = current_writer(index_dir)
    if holder is None:
        return None
    return f"pid {holder.get('pid', '?')}" + (f", since {holder['since']}" if holder.get("since") else "")


def _bundle(index_dir: Path, settings) -> list[Finding]:
    """Is the bundle the index was built with still there, intact, and the same one?"""
    from vidseek.engine.bundle import BundleError, load_bundle

    path, fingerprint, root = settings.bundle, settings.fingerprint, settings.root or "VIDEO_DIR"
    if path is None:
        return [Finding("info", "bundle", "the index names no bundle yet (nothing indexed)")]
    recreate = (f"`vidseek index {root} --index {index_dir} --model "
                f"{settings.model or 'BUNDLE_DIR'}` (videos already indexed are not encoded again)")
    try:
        bundle = load_bundle(path)
    except (BundleError, OSError) as exc:  # damaged, or a folder or file that cannot be read
        return [Finding("fail", "bundle", str(exc), f"restore the bundle folder {path}, or re-create it with {recreate}")]
    if fingerprint is not None and bundle.fingerprint != fingerprint:
        return [Finding("fail", "bundle", f"{path} has fingerprint {bundle.fingerprint}, but the index was built with "
                        f"{fingerprint}: its features do not match this model",
                        f"put back the bundle of fingerprint {fingerprint}, or re-index the library with this "
                        f"bundle: `vidseek index {root} --index {index_dir} --model "
                        f"{path} --rebuild`")]
    return [Finding("ok", "bundle", f"{bundle.model_name}, fingerprint {bundle.fingerprint}, files verified ({path})")]


def _library(settings) -> list[Finding]:
    root = settings.root
    if root is None:
        return []
    if not Path(root).is_dir():
        return [Finding("warn", "library", f"the library folder {root} is missing (moved, renamed or not mounted); "
                        "search still works from the cached features",
                        "mount or restore it; to index it where it is now, run `vidseek index NEW_PLACE --index ... "
                        "--rebuild` (or use a new --index folder)")]
    return [Finding("ok", "library", str(root))]


def _cache(index_dir: Path, listed: set[int], retired: dict[int, float], ok_ids: set[int]) -> list[Finding]:
    """Cache files the catalog does not list (``integrity.unused_ids``), and a clip index that lags
    behind the catalog."""
    from vidseek.index import integrity
    from vidseek.index.clips import ClipIndexError

    found = []
    files = integrity.cached_ids(index_dir)
    orphans = sorted(integrity.unused_ids(files, listed, retired))
    if orphans:
        found.append(Finding("warn", "cache", f"cache files of {len(orphans)} videos the catalog no longer lists "
                             f"(ids {', '.join(map(str, orphans[:5]))}{', ...' if len(orphans) > 5 else ''}): wasted "
                             "space, left by an interrupted run", "run `vidseek index` on the library: it deletes them"))
    else:
        found.append(Finding("ok", "cache", f"{len(files & listed)} videos' features cached, none left over"))
    try:
        present = integrity.clip_index_videos(index_dir) or set()
    except ClipIndexError:
        return found  # integrity.check reported it
    lagging = ok_ids - present
    if lagging:
        found.append(Finding("info", "clip index", f"clips.faiss lacks {len(lagging)} ok videos (a run was interrupted "
                             "or is going on): searches add them from the cache; the next `vidseek index` saves them"))
    return found


def _space(index_dir: Path) -> Finding:
    free = shutil.disk_usage(index_dir).free
    text = f"{free / 2**30:.1f} GiB free on the index's disk"
    if free < LOW_SPACE:
        return Finding("warn", "disk", text + ": indexing stops when the disk is full (the index stays sound)",
                       "free some space, or move the index folder to a larger disk")
    return Finding("ok", "disk", text)


def run(index_dir: str | Path | None = None) -> list[Finding]:
    """Every installation check, and the index checks when ``index_dir`` is given."""
    return installation() + ([] if index_dir is None else index(index_dir))


def failed(findings: list[Finding]) -> bool:
    """True when something is wrong (a ``fail``), which makes `vidseek doctor` exit with status 1."""
    return any(f.level == "fail" for f in findings)
