"""The torch device a command asked for, checked before any work."""

from __future__ import annotations

import torch


def check_device(device: str) -> torch.device:
    """`device` as a torch.device; a ValueError saying what to use instead when it is not usable here."""
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"{device!r} is not a torch device ({exc}); use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{device!r} requested but PyTorch sees no CUDA GPU; use --device cpu")
    return dev
