"""The hub download path of ``load_clip`` (``encoders.download``) against a fake Hugging Face hub
served on 127.0.0.1, so nothing here needs the internet.

``FakeHub`` answers the few endpoints huggingface_hub uses for ``list_repo_files`` and
``snapshot_download``: the repo tree, the repo info at a revision and ``resolve`` (HEAD and GET),
and logs every request. Each load runs in a child process, so the hub client reads its settings
(HF_ENDPOINT, HF_HOME, HF_HUB_OFFLINE, progress bars) from a fresh environment at import.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROUTE = re.compile(r"/api/models/(?P<api>[^/]+/[^/]+)/(?P<kind>tree|revision)/[^/]+/?"
                   r"|/(?P<repo>[^/]+/[^/]+)/resolve/[^/]+/(?P<file>.+)")


class FakeHub:
    """A Hugging Face hub serving ``repos`` (hub id -> local folder, one commit each) on a free port."""

    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos, self.requests = repos, []  # requests: (method, path), in order
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                hub.answer(self, body=False)

            def do_GET(self) -> None:
                hub.answer(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def sha(repo: str) -> str:
        return hashlib.sha1(repo.encode()).hexdigest()  # the repo's only commit

    def fetched(self, repo: str) -> set[str]:
        """The files of ``repo`` GET-requested so far."""
        prefix = f"/{repo}/resolve/"
        return {p.split("/", 5)[-1] for m, p in self.requests if m == "GET" and p.startswith(prefix)}

    def answer(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlparse(h.path).path)
        self.requests.append((h.command, path))
        m = ROUTE.fullmatch(path)
        folder = self.repos.get(m and (m["api"] or m["repo"]))
        status, headers, data = 404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, b"{}"
        if folder is not None:
            repo = m["api"] or m["repo"]
            files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
            status, headers = 200, {"X-Repo-Commit": self.sha(repo)}
            if m["kind"] == "tree":  # recursive listing, one page (no Link header)
                data = json.dumps([{"type": "file", "path": f, "size": p.stat().st_size,
                                    "oid": hashlib.sha1(p.read_bytes()).hexdigest()} for f, p in files.items()])
            elif m["kind"] == "revision":
                data = json.dumps({"id": repo, "sha": self.sha(repo), "siblings": [{"rfilename": f} for f in files]})
            elif m["file"] in files:
                data = files[m["file"]].read_bytes()
                headers["ETag"] = f'"{hashlib.sha1(data).hexdigest()}"'
            else:
                status, headers["X-Error-Code"] = 404, "EntryNotFound"
        data = data.encode() if isinstance(data, str) else data
        h.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(data))}.items():
            h.send_header(key, value)
        h.end_headers()
        if body:
            h.wfile.write(data)


CHILD = """
import sys
from vidseek.trainer.encoders import load_clip
try:
    parts = load_clip(sys.argv[1])
except OSError as e:  # as the command line shows a user error
    sys.exit(f"Error: {e}")
print("LOADED", parts.kind, parts.image.dim, parts.source)
"""


def load_in_child(name: str, endpoint: str, home: Path, offline: bool = False) -> subprocess.CompletedProcess:
    """``load_clip(name)`` in a fresh interpreter whose hub client uses ``endpoint`` and the cache in ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TQDM_"))}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run([sys.executable, "-c", CHILD, name], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A fake hub with acme/tiny-siglip (safetensors, plus a decoy .bin and Flax weights) and
    acme/tiny-clip (pytorch_model.bin weights only); without sentencepiece, no SigLIP."""
    import torch
    from safetensors.torch import load_file
    from tiny_clip import tiny_clip, tiny_siglip

    root, repos = tmp_path_factory.mktemp("hub"), {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        clip = repos["acme/tiny-clip"] = tiny_clip(root / "clip")
        if importlib.util.find_spec("sentencepiece"):
            siglip = repos["acme/tiny-siglip"] = tiny_siglip(root / "siglip")
            (siglip / "pytorch_model.bin").write_bytes(b"not a checkpoint: must never be fetched")
            (siglip / "flax_model.msgpack").write_bytes(bytes(1 << 20))
    torch.save(load_file(clip / "model.safetensors"), clip / "pytorch_model.bin")
    (clip / "model.safetensors").unlink()
    return FakeHub(repos)


def test_download_fetches_safetensors_only_then_loads_from_cache(hub, tmp_path):
    pytest.importorskip("sentencepiece")
    r = load_in_child("acme/tiny-siglip", hub.url, tmp_path)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^LOADED siglip 32 ", r.stdout, re.M), r.stdout
    assert "fetching acme/tiny-siglip from the Hugging Face hub" in r.stderr
    assert re.search(r"\d+%\||\d[\d.]*\s*[kMG]?(B|it)/s", r.stderr), r.stderr  # a tqdm bar
    fetched = hub.fetched("acme/tiny-siglip")
    assert {"model.safetensors", "config.json", "spiece.model", "tokenizer_config.json"} <= fetched, fetched
    assert not fetched & {"pytorch_model.bin", "flax_model.msgpack"}, fetched

    before = len(hub.requests)  # again, offline: from the cache, without a request
    r = load_in_child("acme/tiny-siglip", hub.url, tmp_path, offline=True)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^LOADED siglip 32 ", r.stdout, re.M), r.stdout
    assert "fetching" not in r.stderr
    assert hub.requests[before:] == []


def test_download_takes_pytorch_bin_when_no_safetensors(hub, tmp_path):
    r = load_in_child("acme/tiny-clip", hub.url, tmp_path)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^LOADED clip 16 ", r.stdout, re.M), r.stdout
    assert "fetching acme/tiny-clip" in r.stderr
    assert {"pytorch_model.bin", "config.json", "tokenizer.json"} <= hub.fetched("acme/tiny-clip")


def test_unknown_repo_fails_fast_with_its_name(hub, tmp_path):
    start = time.monotonic()
    r = load_in_child("acme/no-such-model", hub.url, tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert re.match(r"Error: cannot load CLIP 'acme/no-such-model'.* has no model repository", r.stderr), r.stderr
    assert time.monotonic() - start < 15  # no retries (the hub client's take ~25 s)
    assert not any("/resolve/" in p for _, p in hub.requests if "no-such-model" in p)
