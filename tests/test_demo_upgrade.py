"""A demo library indexed by an older built-in bundle (another fingerprint) is indexed again by
`vidseek demo` without asking: the demo owns its library and its index."""

from __future__ import annotations

import json
import shutil


def test_the_demo_rebuilds_its_index_after_the_builtin_bundle_changed(tmp_path, invoke, monkeypatch):
    from vidseek.builtin import builtin_bundle
    from vidseek.library.api import Index

    monkeypatch.chdir(tmp_path)
    args = ("demo", "--dir", "demo", "--videos", 2, "--top-k", 1, "--workers", 1)
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    older = tmp_path / "older-bundle"  # the built-in bundle as an older release shipped it
    shutil.copytree(builtin_bundle(), older)
    meta = json.loads((older / "bundle.json").read_text())
    meta["calibration"]["threshold"] = 0.05
    (older / "bundle.json").write_text(json.dumps(meta))
    with Index(tmp_path / "demo" / "index") as index:
        index.add(tmp_path / "demo" / "videos", model=older, rebuild=True)
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    assert "indexing it again" in r.output and "2 new" in r.output and "Try your own query" in r.output
