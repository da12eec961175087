"""Indexing on Ray (`vidseek index --ray`): the same index as without it, a worker killed mid-run
changes nothing, a file that cannot be read is an error for that file, and no Ray says how to get it.

A local Ray with num_cpus=2 (the machine's cores); each start costs a few seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from blocking import run_blocked
from helpers import check_index

ray = pytest.importorskip("ray", reason="indexing on Ray needs the ray extra: pip install 'vidseek[ray]'")
from vidseek.library import distributed  # noqa: E402
pytestmark = pytest.mark.slow


def contents(index: Path) -> dict[str, tuple]:
    """Catalog path -> (states, clip embeddings, duration, steps) of every ok video."""
    from vidseek.index.cache import FeatureCache
    from vidseek.index.catalog import Catalog
    from vidseek.index.clips import ClipIndex

    with Catalog(index, readonly=True) as catalog:
        videos, settings = catalog.videos("ok"), catalog.settings()
    clips = ClipIndex(index, settings.dim)
    clips.load()
    states = FeatureCache(index, "states")
    return {v.path: (np.asarray(states.get(v.id)), np.asarray(clips.embeddings.get(v.id)), v.duration, v.steps)
            for v in videos}


def assert_same_index(a: Path, b: Path) -> None:
    x, y = contents(a), contents(b)
    assert x.keys() == y.keys() and x
    for path in x:
        np.testing.assert_array_equal(x[path][0], y[path][0])  # the same float16 states, bit for bit
        np.testing.assert_allclose(x[path][1], y[path][1], atol=1e-6)
        assert x[path][2:] == y[path][2:]


@pytest.fixture(scope="module")
def library(tmp_path_factory, invoke):
    """Six synthetic videos and a corrupt file, indexed once without Ray (the reference)."""
    root = tmp_path_factory.mktemp("ray")
    r = invoke("synth", root / "syn", "--videos", 6, "--min-duration", 8, "--max-duration", 12, "--no-progress")
    assert r.exit_code == 0, r.output
    (root / "syn" / "videos" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    r = invoke("index", root / "syn" / "videos", "--index", root / "plain", "--no-progress")
    assert r.exit_code == 0 and "errors 1" in r.output, r.output
    return root


def test_index_with_ray_builds_the_same_index(library, invoke):
    r = invoke("index", library / "syn" / "videos", "--index", library / "on-ray", "--ray", "--no-progress")
    assert r.exit_code == 0, r.output
    assert "indexed 6" in r.output and "errors 1" in r.output and "skipped broken.mp4" in r.output
    assert_same_index(library / "plain", library / "on-ray")
    check_index(library / "on-ray")
    r = invoke("index", library / "syn" / "videos", "--index", library / "on-ray", "--ray", "--no-progress")
    assert r.exit_code == 0 and "indexed 0" in r.output, r.output  # nothing new: nothing sent to Ray


def _encoder_pids() -> list[int]:
    """Processes of vidseek's Ray encoder actors (Ray titles them ray::_Encoder...)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"ray::_Encoder" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the Ray worker to kill through /proc (Linux)")
def test_a_worker_killed_mid_run_changes_nothing(library):
    from vidseek.library.api import Index

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        killed, report = [], {}

        def run() -> None:
            with Index(library / "killed") as index:
                report["r"] = index.add(library / "syn" / "videos", ray="local")

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 60
        while not killed and worker.is_alive() and time.monotonic() < deadline:
            pids = _encoder_pids()
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.05)
        worker.join(timeout=300)
    finally:
        ray.shutdown()
    assert killed, "no encoder actor was seen to kill"
    assert len(report["r"].indexed) == 6 and [p for p, _ in report["r"].errors] == ["broken.mp4"]
    assert_same_index(library / "plain", library / "killed")
    check_index(library / "killed")


NO_RAY = """
import sys
from vidseek.cli.main import cli
cli.main(["index", sys.argv[1], "--index", sys.argv[2], "--ray", "--no-progress"])
"""


def test_without_ray_installed_the_command_says_how_to_get_it(library, tmp_path):
    shutil.copytree(library / "syn" / "videos", tmp_path / "videos", ignore=shutil.ignore_patterns("broken.mp4"))
    r = run_blocked(NO_RAY, str(tmp_path / "videos"), str(tmp_path / "idx"), extra_prefixes=("ray",))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "pip install 'vidseek[ray]'" in r.stderr


KILLED_DRIVER = """
import sys
from vidseek.cli.main import cli
cli.main(["index", sys.argv[1], "--index", sys.argv[2], "--ray", "--no-progress"])
"""


def test_a_driver_killed_mid_run_leaves_a_sound_index_that_the_next_run_completes(library, tmp_path, invoke):
    import subprocess
    import sys

    from vidseek.index.catalog import Catalog

    index = tmp_path / "idx"
    child = subprocess.Popen([sys.executable, "-c", KILLED_DRIVER, str(library / "syn" / "videos"), str(index)],
                             start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:  # kill it once some videos are written
            try:
                with Catalog(index, readonly=True) as catalog:
                    if len(catalog.videos("ok")) >= 2:
                        break
            except Exception:  # not created yet
                pass
            time.sleep(0.05)
    finally:
        running = child.poll() is None
        os.killpg(child.pid, signal.SIGKILL)  # the driver and the Ray it started
        child.wait()
    assert running, "the driver finished before it could be killed mid-run"
    with Catalog(index, readonly=True) as catalog:
        assert len(catalog.videos("ok")) < 6  # killed with work left
    check_index(index)  # sound as it was left
    r = invoke("index", library / "syn" / "videos", "--index", index, "--ray", "--no-progress")
    assert r.exit_code == 0, r.output
    assert_same_index(library / "plain", index)
    check_index(index)


def test_an_unreachable_cluster_fails_at_once_and_writes_nothing(library, tmp_path, invoke):
    t0 = time.monotonic()
    r = invoke("index", library / "syn" / "videos", "--index", tmp_path / "idx", "--ray", "127.0.0.1:1", "--no-progress")
    assert r.exit_code == 1 and "cannot join the Ray cluster at '127.0.0.1:1'" in r.output and "ray start --head" in r.output
    assert time.monotonic() - t0 < 30 and not (tmp_path / "idx").exists()


# ---- faults: a file that kills its worker, workers that cannot start, paths a worker cannot see ----

class _Poisoned(distributed._Encoder):
    """An encoder whose process dies on any file named poison*: a file that crashes its decoder."""

    def encode(self, path, settings):
        if Path(path).name.startswith("poison"):
            os._exit(1)
        return super().encode(path, settings)


class _NoBundle(distributed._Encoder):
    """An encoder whose worker cannot load the bundle (a folder missing there)."""

    def __init__(self, bundle_dir, builtin, backend, threads):
        super().__init__("/nonexistent/bundle", False, backend, threads)


class _NotMounted(distributed._Encoder):
    """An encoder on a worker where the library is not mounted."""

    def encode(self, path, settings):
        return super().encode("/not-mounted" + path, settings)


@pytest.fixture
def encoder_class(monkeypatch):
    """Replace the Ray encoder actor with one of the classes above (sent to the workers by value)."""
    import sys

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

    def use(cls) -> None:
        monkeypatch.setattr(distributed, "_Encoder", cls)

    yield use
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _videos(library: Path, to: Path) -> Path:
    shutil.copytree(library / "syn" / "videos", to, ignore=shutil.ignore_patterns("broken.mp4"))
    return to


def test_a_file_that_kills_its_worker_is_recorded_and_the_run_goes_on(library, tmp_path, invoke, encoder_class):
    videos = _videos(library, tmp_path / "videos")
    shutil.copy(next(videos.glob("*.mp4")), videos / "poison.mp4")
    encoder_class(_Poisoned)
    r = invoke("index", videos, "--index", tmp_path / "idx", "--ray", "--no-progress")
    assert r.exit_code == 0, r.output
    assert "indexed 6" in r.output and "errors 1" in r.output, r.output
    assert f"skipped poison.mp4: WorkerDied: the Ray worker encoding it died {distributed.MAX_ATTEMPTS} times" in r.output
    check_index(tmp_path / "idx")


def test_workers_that_cannot_load_the_bundle_stop_the_run_and_record_nothing(library, tmp_path, invoke, encoder_class):
    from vidseek.index.catalog import Catalog

    videos = _videos(library, tmp_path / "videos")
    encoder_class(_NoBundle)
    r = invoke("index", videos, "--index", tmp_path / "idx", "--ray", "--no-progress")
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert "on a Ray worker:" in r.output and "/nonexistent/bundle" in r.output, r.output
    with Catalog(tmp_path / "idx", readonly=True) as catalog:
        assert catalog.videos() == []  # no file is blamed: a plain run indexes them all


def test_a_gpu_backend_asks_for_gpus_and_a_cpu_backend_never_does():
    assert distributed.placement("onnxruntime", {"CPU": 8.0, "GPU": 2.0}, 100) == ({"num_cpus": 1}, 8)
    assert distributed.placement("onnxruntime", {"CPU": 8.0}, 3) == ({"num_cpus": 1}, 3)
    assert distributed.placement("onnxruntime-cuda", {"CPU": 8.0, "GPU": 2.0}, 100) == ({"num_gpus": 1, "num_cpus": 1}, 2)
    with pytest.raises(distributed.RayUnavailable, match="runs on NVIDIA GPUs and the Ray cluster has none"):
        distributed.placement("tensorrt", {"CPU": 8.0}, 10)


def test_a_path_a_worker_cannot_see_is_an_error_that_retry_errors_clears(library, tmp_path, invoke, encoder_class, monkeypatch):
    videos = _videos(library, tmp_path / "videos")
    encoder_class(_NotMounted)
    r = invoke("index", videos, "--index", tmp_path / "idx", "--ray", "--no-progress")
    assert r.exit_code == 0 and "indexed 0" in r.output and "errors 6" in r.output, r.output
    assert "is not there on the Ray worker" in r.output and "--retry-errors" in r.output
    monkeypatch.undo()  # the library is now mounted on the workers
    r = invoke("index", videos, "--index", tmp_path / "idx", "--ray", "--no-progress")
    assert "indexed 0" in r.output and "6 files that failed before and did not change skipped" in r.output, r.output
    r = invoke("index", videos, "--index", tmp_path / "idx", "--ray", "--retry-errors", "--no-progress")
    assert r.exit_code == 0 and "indexed 6" in r.output and "errors 0" in r.output, r.output
    assert_same_index(library / "plain", tmp_path / "idx")
