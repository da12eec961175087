"""Run folders: weights in safetensors next to a JSON config that rebuilds the model.

RUN_DIR/
  config.json        format version, model name and config, word features, data and training settings
  model.safetensors  the best weights
  vocab.json | static_words.json + static_vectors.npy   (word features, when not a hub model)
  history.jsonl      one line of losses and validation metrics per epoch
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from vidseek import __version__
from vidseek.atomic import atomic_write, atomic_write_text
from vidseek.trainer.models import build_model
from vidseek.trainer.words import load_featurizer

FORMAT_VERSION = 1


def save_run(run_dir: Path, model: torch.nn.Module, model_name: str, words: dict, data: dict, train: dict, best: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"format_version": str(FORMAT_VERSION), "model": model_name}
    atomic_write(run_dir / "model.safetensors", lambda tmp: save_file(state, str(tmp), metadata=meta))
    config = {
        "format_version": FORMAT_VERSION,
        "vidseek_version": __version__,
        "model": {"name": model_name, "config": asdict(model.cfg)},
        "words": words,
        "data": data,
        "train": train,
        "best": best,
    }
    atomic_write_text(run_dir / "config.json", json.dumps(config, indent=2))


@dataclass
class Run:
    """A trained model rebuilt from its run folder."""

    model: torch.nn.Module
    featurizer: object
    config: dict
    path: Path

    @property
    def name(self) -> str:
        return self.config["model"]["name"]

    @property
    def length(self) -> int:
        return int(self.config["data"]["length"])


def load_run(run_dir: str | Path, device: str = "cpu") -> Run:
    """Rebuild model and word featurizer from RUN_DIR without the original command line."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file() or not (run_dir / "model.safetensors").is_file():
        raise FileNotFoundError(f"{run_dir} is not a vidseek run folder (needs config.json and model.safetensors from `vidseek train`)")
    config = json.loads(cfg_path.read_text())
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{cfg_path} has format version {version!r}; this vidseek ({__version__}) reads versions up to "
            f"{FORMAT_VERSION}: upgrade vidseek"
        )
    model = build_model(config["model"]["name"], **config["model"]["config"])
    joint = config["data"].get("frame_encoder")
    if joint:  # trained jointly from pixels: rebuild the encoder, its weights come from model.safetensors
        from vidseek.trainer.encoders import build_frame_encoder
        from vidseek.trainer.joint import FrameGrounder

        model = FrameGrounder(build_frame_encoder(joint["encoder"]).module, model)
    state = load_file(str(run_dir / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{run_dir}/model.safetensors does not fit its config.json (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.to(device).eval()
    return Run(model, load_featurizer(config["words"], run_dir, device), config, run_dir)
