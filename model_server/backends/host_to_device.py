"""Moving a question's inputs onto the model's device without stalling the host thread.

On CUDA a CPU tensor is first placed in pinned (page-locked) host memory and then
copied with `non_blocking=True`: the copy runs by DMA while the calling thread goes
on, queued on the device's stream ahead of the forward that reads it (stream order
makes that safe, and torch's pinned-memory allocator keeps the host buffer until
the copy has run). Images travel as uint8 pixels, a quarter of float32's bytes,
and are resized and normalised on the device by the processor (the torchvision
image processors take a `device`). On a CPU device every function here returns
its input unchanged: no copy, no pinning.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image


def pins_memory(device: str) -> bool:
    """Copies to `device` go through pinned host memory (CUDA only: pinning needs its driver)."""
    return torch.device(device).type == "cuda"


def to_device(tensor: torch.Tensor, device: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`tensor` on `device` (floating tensors cast to `dtype` there, after the copy).

    A CPU tensor bound for CUDA is pinned and copied without blocking the caller.
    """
    if tensor.device != torch.device(device):
        if pins_memory(device) and tensor.device.type == "cpu":
            tensor = tensor.pin_memory().to(device, non_blocking=True)
        else:
            tensor = tensor.to(device)
    if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
        tensor = tensor.to(dtype)
    return tensor


def image_tensors(images: Sequence[Image.Image], device: str) -> list[torch.Tensor]:
    """RGB images as uint8 (3, H, W) tensors on `device`, the form the torchvision image
    processors convert a PIL image to themselves, so their output is the same."""
    out = []
    for image in images:
        hwc = np.asarray(image.convert("RGB"), dtype=np.uint8)
        chw = np.ascontiguousarray(hwc.transpose(2, 0, 1))  # one copy, writable
        out.append(to_device(torch.from_numpy(chw), device))
    return out


def processor_takes_device(processor) -> bool:
    """Whether the processor's image processor resizes and normalises tensors on a given
    device (transformers' torchvision backend); the PIL/numpy ones work on the CPU only."""
    image_processor = getattr(processor, "image_processor", None)
    try:
        from transformers.image_processing_backends import TorchvisionBackend
    except ImportError:  # an older transformers: no device-capable image processors
        return False
    return isinstance(image_processor, TorchvisionBackend)
