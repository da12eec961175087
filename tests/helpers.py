"""Helpers shared by the test modules (plain functions; conftest.py exposes some as fixtures).

``invoke`` runs the command line; ``make_tiny_world`` trains and exports the tiny bundle most index
tests use; ``write_video`` writes short seeded videos; ``run_index`` and ``IndexChild`` run `vidseek
index` in a child process; ``check_index`` checks an index; ``index_library`` runs the index write
protocol with fake encoders; ``make_run`` saves an untrained run.
"""

from __future__ import annotations

import contextlib
import fractions
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from vidseek.cli.main import cli
from vidseek.index.cache import FeatureCache, remove_temporaries
from vidseek.index.catalog import Catalog
from vidseek.index.clips import ClipIndex, read_ids
from vidseek.index.integrity import check as check_integrity
from vidseek.index.lock import WriterLock
from vidseek.index.settings import windows

ROOT = Path(__file__).resolve().parents[1]
QUERY = "person walks in"  # a query in the tiny world's vocabulary


def invoke(*args):
    """Run the `vidseek` command line in this process."""
    return CliRunner().invoke(cli, [str(a) for a in args])


# ---- the tiny world ------------------------------------------------------------------------------
@dataclass(frozen=True)
class World:
    """A bundle that can index video files (frame encoder at 1 step/s, 8-d clip embeddings)."""

    bundle: Path
    vocab: tuple[str, ...]  # the words the bundle's tokenizer knows
    folder: Path  # where the bundle was made


def make_tiny_world(base: Path) -> World:
    """Train a tiny ExCL model for one step on three synthetic videos and export it into ``base``.

    1 step per second keeps a long video cheap to encode; the untrained weights are enough to check
    the machinery.
    """
    syn = base / "syn"
    r = invoke("synth", syn, "--videos", 3, "--min-duration", 8, "--max-duration", 8, "--size", "64x48",
               "--fps", 5, "--split", "0.67,0.33,0.0", "--no-progress")
    assert r.exit_code == 0, r.output
    small = [x for k in ("video_hidden", "query_hidden", "span_hidden", "mlp_hidden") for x in ("--set", f"{k}=8")]
    r = invoke("train", "--model", "excl-clf-2b", "--dataset", "jsonl", "--annotations", syn / "train.jsonl",
               "--val-annotations", syn / "val.jsonl", "--videos", syn / "videos", "--rate", 1, "--words",
               "learned", "--out", base / "run", "--epochs", 1, "--max-steps", 1, "--max-len", 8,
               "--batch-size", 8, *small, "--set", "retrieval_dim=8")
    assert r.exit_code == 0, r.output
    r = invoke("export", base / "run", "--out", base / "bundle", "--no-check")
    assert r.exit_code == 0, r.output
    vocab = json.loads((base / "bundle" / "tokenizer.json").read_text())["model"]["vocab"]
    return World(base / "bundle", tuple(w for w in vocab if w.isalpha()), base)


def write_video(path: Path, seconds: float, fps: float = 5.0, size: tuple[int, int] = (64, 48), seed: int = 0,
                pts_ms: np.ndarray | None = None) -> Path:
    """An H.264 MP4 of ``seconds`` at ``fps`` whose pictures depend on ``seed`` (a coloured square
    moving over a coloured background). ``pts_ms`` gives explicit frame times (variable frame rate)."""
    import av

    rng = np.random.default_rng(seed)
    background, square = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    times = np.arange(max(1, round(seconds * fps))) * (1000.0 / fps) if pts_ms is None else np.asarray(pts_ms)
    w, h = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=max(1, round(fps)))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.time_base = s.codec_context.time_base = fractions.Fraction(1, 1000)
        s.options = {"preset": "ultrafast", "crf": "30", "g": "10"}
        for i, t in enumerate(times):
            img = np.empty((h, w, 3), np.uint8)
            img[:] = background
            x = int((i * 3 + seed * 7) % max(1, w - w // 4))
            img[h // 4: h // 2, x: x + max(1, w // 4)] = square
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = int(t), fractions.Fraction(1, 1000)
            c.mux(s.encode(frame))
        c.mux(s.encode())
    return path


# ---- `vidseek index` in a child process ----------------------------------------------------------
INDEX_CHILD = """
import sys, time
import av, faiss, numpy, onnxruntime, tokenizers  # imported before 'ready': kills land in the work
import vidseek.library.indexer, vidseek.engine.preprocess
from vidseek.cli.main import cli
slow = float(sys.argv[1])
if slow:  # each video takes at least `slow` seconds more (to overlap with other processes)
    from vidseek.engine.grounder import Grounder
    real = Grounder.video_features
    def video_features(self, *args, **kwargs):
        time.sleep(slow)
        return real(self, *args, **kwargs)
    Grounder.video_features = video_features
print("ready", flush=True)
if sys.stdin.readline().strip() != "go":
    sys.exit(0)  # the test ended without starting this run
t0 = time.perf_counter()
code = 0
try:
    cli.main(sys.argv[2:], prog_name="vidseek", standalone_mode=False)
except Exception as exc:
    print(f"error: {type(exc).__name__}: {exc}", flush=True)
    code = 1
print(f"done {time.perf_counter() - t0:.3f}", flush=True)
sys.exit(code)
"""


class IndexChild:
    """`vidseek index` in a child process that starts its work on ``go()``, to be killed or awaited.

    Every heavy import happens before the child says "ready", so a kill after ``go()`` lands in the
    indexing itself; the child starts loading on construction, so the next one can load while the
    test checks the last. ``preexec`` runs in the child first (resource limits, another user);
    ``extra`` are more arguments of `vidseek index` (``--rebuild``).
    """

    def __init__(self, library: Path, index: Path, bundle: Path, slow: float = 0.0, preexec=None, extra=()):
        args = ["index", str(library), "--index", str(index), "--model", str(bundle), "--no-progress", *map(str, extra)]
        self.proc = subprocess.Popen([sys.executable, "-c", INDEX_CHILD, str(slow), *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                                     preexec_fn=preexec)
        self.started = ""  # what the child printed before "ready"

    def go(self) -> None:
        """Wait until the child has loaded, then let it index."""
        for line in self.proc.stdout:
            if line.strip() == "ready":
                break
            self.started += line
        else:
            raise AssertionError(f"index child did not start: {self.started[-3000:]}")
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def kill(self) -> bool:
        """SIGKILL the child; True when it was still running (a real kill)."""
        running = self.proc.poll() is None
        if running:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.close()
        return running and self.proc.returncode == -signal.SIGKILL

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        """Wait for the run: (exit status, everything it printed)."""
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, self.started + out

    def close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()


def run_index(library: Path, index: Path, bundle: Path, preexec=None, timeout: float = 300) -> tuple[int, str]:
    """A whole `vidseek index` run in a child process: (exit status, output)."""
    child = IndexChild(library, index, bundle, preexec=preexec)
    child.go()
    return child.finish(timeout)


def check_index(index: Path) -> dict[str, int]:
    """Assert that an index is sound and that a search sees exactly its ok videos, once each.

    Returns catalog path -> id of the ok videos.
    """
    from vidseek.library.searcher import Searcher

    with Catalog(index, readonly=True) as cat:
        assert check_integrity(cat) == []
        ok = {v.path: v for v in cat.videos("ok")}
        settings = cat.settings()
    n_windows = {v.id: settings.n_windows(v.steps) for v in ok.values()}
    stored = read_ids(index)
    if stored is not None:  # the saved clip index may lag the catalog, never lead it, never hold a clip twice
        _, ids = stored
        assert len(np.unique(ids)) == len(ids)
    with Searcher(index) as searcher:
        ids = searcher.clips.ids()
        assert searcher.clips.ntotal == sum(n_windows.values()) == len(np.unique(ids))  # no duplicates
        expected = {(vid << 20) + w for vid, n in n_windows.items() for w in range(n)}
        assert set(ids.tolist()) == expected  # every clip of every ok video, nothing else
        moments = searcher.search(QUERY, top_k=5)
        assert all(m.video in ok for m in moments) and (moments or not ok)
    return {path: v.id for path, v in ok.items()}


# ---- the write protocol of `vidseek index` with fake encoders ---------------------------------
FP = "0123456789abcdef"


def index_library(lib: Path, index_dir: Path, say=lambda path: None) -> list[str]:
    """The write protocol of ``vidseek/index/__init__.py`` with fake encoders; returns the paths encoded."""
    with WriterLock(index_dir):
        remove_temporaries(index_dir)
        cat = Catalog(index_dir)
        cat.check_fingerprint(FP)
        cat.update_settings(root=str(lib.resolve()), fingerprint=FP, rate=5.0, window_s=4.0, stride_s=2.0,
                            dim=16, state_dim=8)
        states, clips = FeatureCache(index_dir), ClipIndex(index_dir, 16, gpu=False)
        clips.load()
        clips.reconcile([v.id for v in cat.videos("ok")])
        plan = cat.scan(lib)
        cat.update_stat(plan.touched)
        clips.remove_videos([v.id for v in plan.deleted] + [f.video_id for f in plan.changed])
        clips.save()
        cat.remove([v.path for v in plan.deleted])
        known = {v.id for v in cat.videos()}
        for vid in (set(states.video_ids()) | set(clips.embeddings.video_ids())) - known:
            states.remove(vid)
            clips.forget(vid)
        encoded = []
        for f in plan.new + plan.changed:
            vid = cat.record_pending(f)
            steps = 10 + f.size % 30
            rng = np.random.default_rng(f.size)
            states.put(vid, rng.standard_normal((steps, 8)))
            clips.add(vid, rng.standard_normal((len(windows(steps, 5.0, 4.0, 2.0)), 16)))
            cat.record_ok(f, duration=steps / 5.0, fps=25.0, steps=steps)
            encoded.append(f.path)
            say(f.path)
            if len(encoded) % 3 == 0:
                clips.save()
        clips.save()
        cat.close()
        return encoded


# ---- an untrained run ----------------------------------------------------------------------------
SENTENCES = ["person opens the door", "someone picks up the red box", "the person waves"]


def make_run(tmp_path: Path, name: str, words: str = "learned") -> Path:
    """An untrained run of model ``name`` over 10-d features, with ``words`` word features
    (learned on SENTENCES, static vectors, or the offline MiniLM), saved in ``tmp_path``."""
    import torch

    from vidseek.trainer.checkpoint import save_run
    from vidseek.trainer.models import build_model
    from vidseek.trainer.words import LearnedWords, StaticWords, TransformerWords, save_featurizer, simple_tokenize

    torch.manual_seed(0)
    if words == "learned":
        feat = LearnedWords.build(SENTENCES, dim=12)
    elif words == "static":
        vec = tmp_path / "glove.txt"
        rng = np.random.default_rng(0)
        vec.write_text("".join(f"{w} {' '.join(map(str, rng.normal(size=6).round(3)))}\n" for w in
                               {t for s in SENTENCES for t in simple_tokenize(s)}))
        feat = StaticWords(vec)
    else:
        feat = TransformerWords()
    dims = {"video_dim": 10, "word_dim": feat.dim}
    if words == "learned":
        dims["vocab_size"] = len(feat.vocab)
    small = {"dim": 32, "max_len": 40} if name == "plpnet" else {"video_hidden": 8, "query_hidden": 8, "span_hidden": 8, "mlp_hidden": 8}
    run_dir = tmp_path / f"{name}-{words}"
    run_dir.mkdir()
    save_run(run_dir, build_model(name, **dims, **small), name, save_featurizer(feat, run_dir),
             {"length": 40, "feature_dim": 10}, {}, {})
    return run_dir
