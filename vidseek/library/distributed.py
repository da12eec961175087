"""Indexing on Ray: the decoding and encoding of videos spread over a Ray cluster's workers.

``vidseek index DIR --ray [ADDRESS]`` (``Index.add(..., ray=...)``). The driver (the process that
runs the command) lists and fingerprints the files against the catalog as without Ray, so only new
and changed files are encoded; it sends each file's **path** to a pool of encoder actors (one
actor per worker CPU, or per GPU for a GPU backend), each of which loads the bundle once and
returns the video's states and clip embeddings (``vidseek.library.indexer.encode_file``). Results
stream back as they finish, at most one in flight per actor (``ray.util.ActorPool``'s
backpressure), and the driver alone writes them under the index's crash-safe protocol: a killed
driver leaves a sound index that the next run completes.

Faults:
- an actor whose process dies (a killed worker, a lost node) is restarted by Ray and its file sent
  again; a file whose worker dies ``MAX_ATTEMPTS`` times is recorded as that file's error;
- a file a worker cannot read (a path not mounted there, a corrupt video) comes back as an error
  and is recorded for that file, as without Ray (``vidseek index --retry-errors`` tries it again);
- a bundle or backend the workers cannot load stops the run before any file is written, with the
  worker's own message.

Workers need vidseek installed and the files and the bundle folder at the same paths as the
driver (a shared filesystem); the built-in bundle is found in each worker's own installation.
``docs/deploy.md`` shows a cluster set-up.

Ray is the ``ray`` extra (``pip install 'vidseek[ray]'``) and is imported only here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from vidseek.errors import VidseekError
from vidseek.library.indexer import Encoded

LOCAL = "local"  # --ray with no address: a Ray started for this run
MAX_ATTEMPTS = 3  # a file whose worker dies this many times is recorded as that file's error
START_TIMEOUT_S = 600.0  # the encoder actors must have loaded the bundle by then


class RayUnavailable(VidseekError):
    """Ray is not installed, or the cluster named cannot be reached."""


class _Encoder:
    """A Ray actor: the bundle's video-side graphs loaded once, then one video file per call."""

    def __init__(self, bundle_dir: str, builtin: str | None, backend: str, threads: int):
        from vidseek.engine.bundle import load_bundle
        from vidseek.engine.grounder import VIDEO_SIDE, Grounder

        self.failure = None  # (error type, message) when this worker cannot encode at all
        try:
            if builtin:  # each worker's own installation holds the built-in bundle
                from vidseek.builtin import builtin_bundle

                bundle_dir = builtin_bundle(builtin)
            self.grounder = Grounder(load_bundle(bundle_dir), backend, threads=threads)
            self.grounder.warm(VIDEO_SIDE)
        except VidseekError as exc:  # a bundle or backend this worker cannot load: said by ready()
            self.failure = (type(exc).__name__, str(exc))

    def ready(self) -> tuple[str, str] | None:
        """None, or why this worker cannot encode (the driver stops the run with it)."""
        return self.failure

    def encode(self, path: str, settings):
        from vidseek.library.indexer import Encoded, encode_file

        if not os.path.lexists(path):  # the driver lists the file: this worker does not see it
            import ray

            return Encoded(error=f"FileNotFoundError: {path} is not there on the Ray worker at "
                                 f"{ray.util.get_node_ip_address()}: every worker needs the library at the same path "
                                 "(a shared filesystem, docs/deploy.md); then run `vidseek index --retry-errors`")
        return encode_file(self.grounder, Path(path), settings)


def placement(backend: str, resources: dict, files: int) -> tuple[dict, int]:
    """The Ray resources of one encoder actor and how many actors to start for ``files`` files on a
    cluster with ``resources`` (``ray.cluster_resources()``): one per GPU for a GPU backend, one per
    CPU otherwise (a CPU backend never holds a GPU the cluster may need for something else)."""
    from vidseek.engine.registry import BACKENDS

    gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    if BACKENDS[backend]["gpu"]:
        if not gpus:
            raise RayUnavailable(f"--backend {backend} runs on NVIDIA GPUs and the Ray cluster has none: add GPU "
                                 "workers to it, or index with --backend onnxruntime")
        return {"num_gpus": 1, "num_cpus": 1}, max(1, min(gpus, files))
    return {"num_cpus": 1}, max(1, min(cpus, files))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def _check_started(actors: list) -> None:
    """Wait for the encoder actors to load the bundle; raise what stops them (``BundleError``,
    ``BackendUnavailable``: the first worker's own message) or ``RayUnavailable`` when they cannot
    start at all (vidseek missing on the workers, a worker that dies while loading)."""
    import ray
    from ray.exceptions import GetTimeoutError, RayError

    from vidseek.engine.bundle import BundleError
    from vidseek.engine.session import BackendUnavailable

    try:
        failures = ray.get([actor.ready.remote() for actor in actors], timeout=START_TIMEOUT_S)
    except GetTimeoutError:
        raise RayUnavailable(f"the encoder actors did not start within {START_TIMEOUT_S:.0f} s: the cluster has no free "
                             "CPU or GPU for them, or a worker dies while loading the bundle (see `ray status` and "
                             "the worker logs)") from None
    except RayError as exc:
        raise RayUnavailable(f"vidseek's encoder could not start on the Ray workers ({_first_line(exc)}): install the "
                             "same vidseek on every worker (docs/deploy.md)") from None
    for failure in filter(None, failures):
        kind, message = failure
        raise (BackendUnavailable if kind == "BackendUnavailable" else BundleError)(f"on a Ray worker: {message}")


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
        actors finish them (any order).

        This is ``ray.util.ActorPool``'s loop (one file in flight per actor, the next sent to whichever
        finishes first), written out so that every result keeps its file: a file whose worker died
        ``MAX_ATTEMPTS`` times (Ray restarts the actor and sends it again in between) is recorded as
        that file's error, and the run goes on.
        """
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        from vidseek.builtin import builtin_name

        options, count = placement(backend, ray.cluster_resources(), len(todo))
        bundle = Path(bundle_dir).resolve()  # workers run in other folders
        builtin = builtin_name(bundle)  # found in each worker's own installation
        encoder = ray.remote(max_restarts=-1, max_task_retries=MAX_ATTEMPTS - 1)(_Encoder)
        actors = [encoder.options(**options).remote(str(bundle), builtin, backend, 1) for _ in range(count)]
        try:
            _check_started(actors)
            files = {str(root / f.path): f for f in todo}
            waiting, running, idle = list(reversed(files)), {}, list(actors)
            while waiting or running:
                while idle and waiting:
                    actor, path = idle.pop(), waiting.pop()
                    running[actor.encode.remote(path, settings)] = (actor, path)
                [done], _ = ray.wait(list(running), num_returns=1)
                actor, path = running.pop(done)
                idle.append(actor)
                try:
                    encoded = ray.get(done)
                except RayActorError as exc:  # the worker died on every attempt: this file kills it
                    encoded = Encoded(error=f"WorkerDied: the Ray worker encoding it died {MAX_ATTEMPTS} times "
                                            f"(a crash in the decoder, or out of memory?): {_first_line(exc)}")
                except RayTaskError as exc:  # raised by encode_file: the machine or the bundle, not the file
                    raise exc.cause if isinstance(exc.cause, VidseekError) else exc
                yield files[path], encoded
        finally:
            for actor in actors:
                ray.kill(actor)

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


