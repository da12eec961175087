"""The model registry: one table of names drives the CLI, training and export."""

from __future__ import annotations

from dataclasses import asdict, fields

from vidseek.engine.registry import EXCL_NAMES, MODEL_NAMES, family  # the names live in the torch-free registry

__all__ = ["EXCL_NAMES", "MODEL_NAMES", "build_model", "config_for"]


def config_for(name: str, **overrides):
    """The config dataclass of model `name` with paper defaults, updated by the given fields.

    Unknown field names raise a ValueError listing the valid ones.
    """
    from vidseek.trainer.models.excl import ExCLConfig
    from vidseek.trainer.models.plpnet import PLPNetConfig

    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
    cls = {"excl": ExCLConfig, "plpnet": PLPNetConfig}[family(name).name]
    valid = {f.name for f in fields(cls)}
    bad = sorted(set(overrides) - valid)
    if bad:
        raise ValueError(f"{name} has no setting {', '.join(bad)}; valid settings: {', '.join(sorted(valid))}")
    base = asdict(ExCLConfig.from_name(name) if cls is ExCLConfig else cls())
    for key, value in overrides.items():
        if key in VARIANT_FIELDS and value != base[key]:
            raise ValueError(f"{key}={value!r} would change the variant of {name}; choose the variant by its name")
        base[key] = _typed(key, value, base[key])
    return cls(**base)


VARIANT_FIELDS = ("objective", "video_lstm", "predictor")  # fixed by an ExCL model's name


def _typed(key: str, value, default):
    """`value` as the type of the field's default (int, float, bool, str), or a ValueError naming the field."""
    kind = type(default)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"setting {key} must be a {kind.__name__} (like {default!r}), got {value!r}")


def build_model(name: str, **overrides):
    """Build model `name` (see MODEL_NAMES) from its config."""
    from vidseek.trainer.models.excl import ExCL
    from vidseek.trainer.models.plpnet import PLPNet

    cfg = config_for(name, **overrides)
    return {"excl": ExCL, "plpnet": PLPNet}[family(name).name](cfg)
