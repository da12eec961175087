"""Package boundaries: the core install stays torch-free, the CLI starts, and shared code runs without torch."""

from __future__ import annotations

import tomllib

from blocking import run_blocked
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "onnx", "sentence-transformers", "sentence_transformers", "tensorrt")


def test_core_dependencies_do_not_pull_torch():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = [d.split(">")[0].split("=")[0].split(";")[0].strip().lower() for d in meta["dependencies"]]
    assert not set(core) & set(HEAVY), core
    assert "torch" in " ".join(meta["optional-dependencies"]["train"])
    assert meta["scripts"]["vidseek"] == "vidseek.cli.main:cli"


def run_without_torch(code: str):
    return run_blocked(code)


def test_shared_core_runtime_and_cli_help_run_without_torch_or_the_trainer():
    r = run_without_torch(
        "import vidseek.spans, vidseek.engine.decode, vidseek.evaluation, vidseek.synth\n"
        "import vidseek.engine.bundle, vidseek.engine.grounder, vidseek.engine.video, vidseek.export.tensorrt\n"
        "from vidseek.cli.main import cli\n"
        "cli.main(['--help'], standalone_mode=False)\n"
    )
    assert r.returncode == 0, r.stderr
    for command in ("train", "predict", "eval", "synth", "export", "features"):
        assert command in r.stdout


def test_training_without_torch_says_how_to_install(tmp_path):
    ann = tmp_path / "a.jsonl"
    ann.write_text("")
    r = run_without_torch(
        "from vidseek.cli.main import cli\n"
        f"cli.main(['train', '--model', 'plpnet', '--dataset', 'jsonl', '--annotations', {str(ann)!r}, "
        f"'--features', {str(tmp_path)!r}, '--out', {str(tmp_path / 'run')!r}])\n"
    )
    assert r.returncode == 1, r.stderr
    assert "training needs PyTorch" in r.stderr and "Traceback" not in r.stderr
    r = run_without_torch(f"from vidseek.cli.main import cli\ncli.main(['features', {str(tmp_path)!r}, '--out', {str(tmp_path / 'f')!r}])\n")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
