"""Frame features for a folder of videos (``vidseek features``).

Each video is decoded by the engine's sampler at ``rate`` steps per second (step i is the frame nearest
(i + 0.5) / rate, T = max(1, round(duration * rate))), preprocessed per the encoder's FrameSpec and
encoded in batches. The output is the precomputed-feature layout the trainer reads
(``vidseek.trainer.data.features``):

  FEATURE_DIR/<video stem>.npy   (T, D) float32
  FEATURE_DIR/features.json      what made them: encoder, weights hash, rate, dim, spec; per video T, duration

Writes are atomic, and features.json is rewritten after every video, so an interrupted run resumes
where it stopped. A folder made with other settings (encoder weights, rate, dim or spec) is refused
unless ``overwrite``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidseek.atomic import atomic_save_npy, atomic_write_text
from vidseek.engine.video import VideoDecodeError, VideoDecodeWarning, iter_sampled_chunks
from vidseek.trainer.encoders import FrameEncoder

MANIFEST = "features.json"
FORMAT_VERSION = 1  # of features.json
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".3gp")
CHUNK = 256  # frames decoded at a time, so long videos never sit in memory whole


@dataclass
class VideoResult:
    path: Path
    vid: str  # the video id: the file's stem, and the name of its .npy
    status: str  # "done" (encoded now), "kept" (already in FEATURE_DIR) or "failed"
    steps: int = 0  # T
    duration: float = 0.0  # seconds
    error: str = ""  # why it failed


@dataclass
class ExtractReport:
    out_dir: Path
    dim: int
    results: list[VideoResult] = field(default_factory=list)
    removed: int = 0  # stale feature files of another setting removed by overwrite

    def having(self, status: str) -> list[VideoResult]:
        return [r for r in self.results if r.status == status]


def list_videos(video_dir: str | Path) -> list[Path]:
    """Video files directly inside ``video_dir`` (by suffix, case-insensitive), sorted by name."""
    video_dir = Path(video_dir)
    return sorted(p for p in video_dir.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def _write_manifest(path: Path, manifest: dict) -> None:
    atomic_write_text(path, json.dumps(manifest, indent=2))


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise FileExistsError(f"{path} cannot be read ({e}); remove it or choose another --out folder") from None
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise FileExistsError(f"{path} has format version {version!r}; this vidseek writes version {FORMAT_VERSION}: "
                              "upgrade vidseek or choose another --out folder")
    return manifest


def _settings(encoder: FrameEncoder, rate: float) -> dict:
    return {"encoder": encoder.describe(), "rate": float(rate), "dim": encoder.dim, "spec": encoder.spec.to_dict()}


def _differences(old: dict, new: dict) -> list[str]:
    """The settings that differ between an existing features.json and this run, as 'name: old vs new'."""
    pairs = [("encoder weights", old.get("encoder", {}).get("weights_sha256"), new["encoder"]["weights_sha256"]),
             ("rate", old.get("rate"), new["rate"]), ("dim", old.get("dim"), new["dim"]),
             ("spec", old.get("spec"), json.loads(json.dumps(new["spec"])))]
    out = []
    for name, a, b in pairs:
        if a != b:
            if name == "encoder weights":
                a = f"{old.get('encoder', {}).get('encoder')} ({str(a)[:12]})"
                b = f"{new['encoder']['encoder']} ({str(b)[:12]})"
            out.append(f"{name}: {a} vs {b}")
    return out


def encode_video(path: str | Path, encoder: FrameEncoder, rate: float = 5.0, batch_size: int = 64,
                 decoder: str = "auto", progress: bool = False) -> tuple[np.ndarray, float, list[str]]:
    """Features (T, D) float32 of one video, its duration in seconds and the decoder's warnings.

    Decoding errors propagate as ``vidseek.engine.video.VideoDecodeError``.
    """
    from tqdm.auto import tqdm

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", VideoDecodeWarning)
        chunks = iter_sampled_chunks(path, rate, encoder.spec.decode_size, max(CHUNK, batch_size), decoder)
        out = np.empty((chunks.n_steps, encoder.dim), np.float32)  # (T, D)
        done = 0
        with tqdm(total=chunks.n_steps, desc=Path(path).name[-30:], unit="step", leave=False,
                  disable=not progress) as bar:
            for frames, _ in chunks:  # (C, H, W, 3) uint8 at the spec's decode size
                out[done:done + len(frames)] = encoder.encode(frames, batch_size)
                done += len(frames)
                bar.update(len(frames))
    if done != len(out):
        raise VideoDecodeError(f"{path}: the sampler gave {done} of {len(out)} steps")
    notes = [str(w.message) for w in caught if issubclass(w.category, VideoDecodeWarning)]
    for w in caught:  # pass the others on
        if not issubclass(w.category, VideoDecodeWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return out, float(chunks.info.duration), notes


def extract_features(video_dir: str | Path, encoder: FrameEncoder, out_dir: str | Path, rate: float = 5.0,
                     batch_size: int = 64, overwrite: bool = False, decoder: str = "auto", progress: bool = True,
                     on_result: Callable[[VideoResult], None] | None = None) -> ExtractReport:
    """Encode every video of ``video_dir`` into ``out_dir`` (see the module docstring).

    A video that fails to decode is recorded as "failed" with its error and skipped; ``on_result`` is
    called after each video. Raises FileExistsError when ``out_dir`` holds features made with other
    settings (or .npy files of unknown origin) and ``overwrite`` is False.
    """
    from tqdm.auto import tqdm

    videos = list_videos(video_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST
    settings = _settings(encoder, rate)
    report = ExtractReport(out_dir, encoder.dim)

    old = _read_manifest(manifest_path) if manifest_path.is_file() else None
    known = dict(old.get("videos", {})) if old else {}
    if old is None:
        foreign = sorted(p.name for p in out_dir.glob("*.npy"))
        if foreign and not overwrite:
            raise FileExistsError(
                f"{out_dir} holds {len(foreign)} .npy files ({', '.join(foreign[:3])}...) but no {MANIFEST}, so "
                "their origin is unknown; choose an empty --out folder, or pass --overwrite to replace them")
    elif _differences(old, settings):
        if not overwrite:
            raise FileExistsError(
                f"{out_dir} holds features made with other settings ({'; '.join(_differences(old, settings))}, "
                "existing vs this run); choose another --out folder, or pass --overwrite to recompute them all")
        for vid in known:  # made with the old settings: never leave them next to the new ones
            (out_dir / f"{vid}.npy").unlink(missing_ok=True)
        report.removed, known = len(known), {}

    manifest = {"format_version": FORMAT_VERSION, **settings, "videos": known}
    _write_manifest(manifest_path, manifest)  # before any .npy, so every .npy here is accounted for
    seen: dict[str, Path] = {}
    bar = tqdm(videos, desc="features", unit="video", disable=not progress)
    for path in bar:
        vid = path.stem
        if vid in seen:
            clash = f"same name as {seen[vid].name}: both would write {vid}.npy; rename one of them"
            result = VideoResult(path, vid, "failed", error=clash)
        elif vid in known and not overwrite and (out_dir / f"{vid}.npy").is_file():
            entry = known[vid]
            result = VideoResult(path, vid, "kept", int(entry["T"]), float(entry["duration"]))
        else:
            try:
                features, duration, notes = encode_video(path, encoder, rate, batch_size, decoder, progress)
            except VideoDecodeError as e:
                result = VideoResult(path, vid, "failed", error=str(e))
            else:
                atomic_save_npy(out_dir / f"{vid}.npy", features)
                known[vid] = {"file": path.name, "T": int(len(features)), "duration": round(duration, 6)}
                _write_manifest(manifest_path, manifest)
                result = VideoResult(path, vid, "done", len(features), duration, error="; ".join(notes))
        seen.setdefault(vid, path)
        report.results.append(result)
        if on_result is not None:
            on_result(result)
    bar.close()
    return report
