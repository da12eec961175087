"""After `make demo`, the command the demo prints at its end works as printed, in a shell where the
virtual environment is not activated (`vidseek` alone would be "command not found")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_the_demo_closing_hint_runs_as_printed(tmp_path):
    script = Path(sys.executable).with_name("vidseek")
    if not script.is_file():
        pytest.skip(f"no vidseek console script beside {sys.executable} (not installed with pip)")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and Path(p).resolve() != script.parent.resolve())
    r = subprocess.run([os.path.relpath(script, tmp_path), "demo", "--dir", "demo", "--videos", "2", "--top-k", "1",
                        "--workers", "1"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [line.strip() for line in r.stdout.strip().splitlines()]
    hint, phrases, serve = lines[-4], lines[-3], lines[-1]
    assert hint.endswith('search "QUERY" --index demo/index') and not hint.startswith("vidseek "), hint
    command = hint.replace('"QUERY"', '"person opens door"')
    r = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "rank" in r.stdout, r.stdout + r.stderr
    assert phrases.endswith('search "QUERY" --phrases --index demo/index-plpnet'), phrases  # PLPNet's, as printed
    command = phrases.replace('"QUERY"', '"a person opens the door" --min-score 0')
    r = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.count(" phrase '") >= 3, r.stdout + r.stderr
    # the last line opens the page: run as printed (on a free port), it serves the demo library
    assert serve.endswith("serve --index demo/index --open") and serve.split()[0] == hint.split()[0], serve
    pytest.importorskip("fastapi", reason="vidseek serve needs the serve extra")
    import httpx

    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    server = subprocess.Popen("exec " + serve + " --port 0", shell=True, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        first = server.stdout.readline()
        assert first.startswith("vidseek serve: http://127.0.0.1:"), first + (server.stderr.read() if server.poll() else "")
        url = first.split()[-1]
        assert httpx.get(url + "api/info", timeout=30).json()["counts"]["ok"] == 2
    finally:
        server.terminate()
        server.wait(timeout=30)
