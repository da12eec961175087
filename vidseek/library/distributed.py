"""Indexing on Ray: the decoding and encoding of videos spread over a Ray cluster's workers.

``vidseek index DIR --ray [ADDRESS]`` (``Index.add(..., ray=...)``). The driver (the process that
runs the command) lists and fingerprints the files against the catalog as without Ray, so only new
and changed files are encoded; it sends each file's **path** to a pool of encoder actors
(``ray.util.ActorPool``: one actor per worker CPU, or per GPU when the cluster has GPUs), each of
which loads the bundle once and returns the video's states and clip embeddings
(``vidseek.library.indexer.encode_file``). Results stream back as they finish, at most one in
flight per actor (the pool's backpressure), and the driver alone writes them under the index's
crash-safe protocol: a killed driver leaves a sound index that the next run completes.

Faults: an actor whose process dies (a killed worker, a lost node) is restarted by Ray and its
file sent again (``max_restarts`` and ``max_task_retries`` unlimited); a file a worker cannot read
(a path not mounted there, a corrupt video) comes back as an error and is recorded for that file,
as without Ray. Workers need vidseek installed and the files and the bundle folder at the same
paths as the driver (a shared filesystem); the built-in bundle is found in each worker's own
installation. ``docs/deploy.md`` shows a cluster set-up.

Ray is the ``ray`` extra (``pip install 'vidseek[ray]'``) and is imported only here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from vidseek.errors import VidseekError

LOCAL = "local"  # --ray with no address: a Ray started for this run


class RayUnavailable(VidseekError):
    """Ray is not installed, or the cluster named cannot be reached."""


class _Encoder:
    """A Ray actor: the bundle's graphs loaded once, then one video file per call."""

    def __init__(self, bundle_dir: str, builtin: bool, backend: str, settings, threads: int):
        from vidseek.engine.bundle import load_bundle
        from vidseek.engine.grounder import Grounder

        if builtin:  # each worker's own installation holds the built-in bundle
            from vidseek.builtin import builtin_bundle

            bundle_dir = builtin_bundle()
        self.grounder = Grounder(load_bundle(bundle_dir), backend, threads=threads)
        self.settings = settings

    def encode(self, path: str):
        from vidseek.library.indexer import encode_file

        return path, encode_file(self.grounder, Path(path), self.settings)


def _unreachable(address: str, timeout: float = 3.0) -> str | None:
    """Why nothing answers at a cluster ``address`` (HOST:PORT or ray://HOST:PORT), or None (it
    answers, or the address is LOCAL or "auto", which Ray resolves itself)."""
    import socket

    if address in (LOCAL, "auto"):
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return "it is not HOST:PORT or ray://HOST:PORT"
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        return f"nothing answers there ({exc.strerror or exc})"
    return None


class Cluster:
    """A Ray cluster this process joined for one indexing run (``join``)."""

    def __init__(self, address: str):
        self.started = _start(address)  # whether this run started Ray (and so shuts it down)

    def encoded(self, todo: list, root: Path, bundle_dir: str | Path, backend: str, settings) -> Iterator[tuple[object, object]]:
        """``(file, Encoded)`` for every file of ``todo`` (catalog ``FileState``s under ``root``), as the
        actors finish them (any order)."""
        import ray
        from ray.util import ActorPool

        from vidseek.builtin import BUNDLE_DIR

        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
        actors = gpus or min(cpus, len(todo))
        options = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": 1}
        encoder = ray.remote(max_restarts=-1, max_task_retries=-1)(_Encoder)
        builtin = Path(bundle_dir).resolve() == Path(BUNDLE_DIR).resolve()
        pool = ActorPool([encoder.options(**options).remote(str(bundle_dir), builtin, backend, settings, 1)
                          for _ in range(actors)])
        by_path = {str(root / f.path): f for f in todo}
        for path, encoded in pool.map_unordered(lambda actor, path: actor.encode.remote(path), list(by_path)):
            yield by_path[path], encoded

    def close(self) -> None:
        if self.started:
            import ray

            ray.shutdown()
            self.started = False


def join(address: str = LOCAL) -> Cluster:
    """Join the Ray cluster at ``address`` (``LOCAL``: start one here) for an indexing run, or raise
    ``RayUnavailable`` (Ray not installed, nothing answers at the address) before anything is written."""
    return Cluster(address)


def _start(address: str) -> bool:
    """Join the cluster at ``address`` (``LOCAL``: start one on this machine), unless this process
    already joined one. Returns whether this call started it (and so must shut it down)."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable("--ray needs Ray, which is not installed here: pip install 'vidseek[ray]'") from None
    if ray.is_initialized():
        return False
    why = _unreachable(address)
    if why:  # found in seconds, where Ray's own client retries for minutes
        raise RayUnavailable(f"cannot join the Ray cluster at {address!r}: {why}; start one with `ray start --head` "
                             "or give its address (HOST:6379 or ray://HOST:10001), or --ray alone for a local one")
    try:
        ray.init(address=None if address == LOCAL else address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, runtime_env={"env_vars": {"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "")}})
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise RayUnavailable(f"cannot join the Ray cluster at {address!r}: {exc}; start one with `ray start --head` "
                             "or give its address (ray://HOST:10001 or HOST:6379), or --ray alone for a local one") from exc
    return True


