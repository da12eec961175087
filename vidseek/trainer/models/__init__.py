"""The model registry: one table of names drives the CLI, training and export."""

from __future__ import annotations

from dataclasses import asdict, fields

EXCL_NAMES = [f"excl-{o}-{v}{p}" for o in ("clf", "reg") for v in "12" for p in "abc"]
MODEL_NAMES = EXCL_NAMES + ["plpnet"]


def config_for(name: str, **overrides):
    """The config dataclass of model `name` with paper defaults, updated by the given fields.

    Unknown field names raise a ValueError listing the valid ones.
    """
    from vidseek.trainer.models.excl import ExCLConfig
    from vidseek.trainer.models.plpnet import PLPNetConfig

    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
    cls = PLPNetConfig if name == "plpnet" else ExCLConfig
    valid = {f.name for f in fields(cls)}
    bad = sorted(set(overrides) - valid)
    if bad:
        raise ValueError(f"{name} has no setting {', '.join(bad)}; valid settings: {', '.join(sorted(valid))}")
    if name == "plpnet":
        return PLPNetConfig(**overrides)
    base = asdict(ExCLConfig.from_name(name))
    base.update(overrides)
    return ExCLConfig(**base)


def build_model(name: str, **overrides):
    """Build model `name` (see MODEL_NAMES) from its config."""
    from vidseek.trainer.models.excl import ExCL
    from vidseek.trainer.models.plpnet import PLPNet

    cfg = config_for(name, **overrides)
    return PLPNet(cfg) if name == "plpnet" else ExCL(cfg)
