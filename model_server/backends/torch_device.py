"""Device and dtype choice for the torch backends, made once here."""

from __future__ import annotations

import torch


def pick_device(device: str) -> str:
    """The device setting, or cuda when one is visible, else cpu ("auto" is kept for sharding)."""
    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(dtype: str, device: str) -> torch.dtype:
    """The dtype setting (already validated by settings.parse_dtype), or bfloat16 on a GPU
    and float32 elsewhere."""
    if dtype:
        return getattr(torch, dtype)
    on_gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    return torch.bfloat16 if on_gpu else torch.float32
