"""The real-model route fails well: a `clip:` model that is neither a folder nor in the local cache
fails at once when offline, with a hint that names options that exist."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("offline", [True, False], ids=["HF_HUB_OFFLINE", "no-network"])
def test_an_unreachable_clip_model_fails_at_once_with_a_working_hint(tmp_path, offline, write_video):
    write_video(tmp_path / "lib" / "v.mp4", seconds=3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env |= {"VIDSEEK_CACHE": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "hf")}
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    else:  # a hub endpoint that does not answer: the machine's network is not needed to test it
        env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    r = subprocess.run([sys.executable, "-c", "from vidseek.cli.main import cli; cli()", "index", str(tmp_path / "lib"),
                        "--index", str(tmp_path / "idx"), "--model", "clip:some-org/some-clip", "--no-progress"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert ("HF_HUB_OFFLINE is set" if offline else "does not answer") in r.stderr, r.stderr
    assert "--model clip:models/clip" in r.stderr and "vidseek export --clip some-org/some-clip" in r.stderr
    assert "--encoder clip:models/clip`" not in r.stderr.split("(or")[0]  # the option index has comes first
