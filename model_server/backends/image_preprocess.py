"""Image preprocessing a reference interface did itself, instead of the model's processor.

The SEED-Bench reference interfaces squash-resize every image to a fixed square
(no aspect-preserving resize, no centre crop) with BICUBIC interpolation, turn
it into a [0, 1] tensor and normalise it per channel; Hugging Face processors
usually resize the shortest side and centre-crop instead, which scores
non-square images differently. This module is that squash, in the interface's
own arithmetic order (PIL resize, /255 in float32, subtract mean, divide by std).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

# Model types whose processor output is one [images, 3, side, side] `pixel_values` tensor
# at the vision tower's fixed input size, so a squashed tensor can stand in for it.
SQUASHABLE = {"llava"}


def tower_size(config) -> int:
    """The vision tower's input side in pixels (0 when the model has no fixed one)."""
    vision = getattr(config, "vision_config", None)
    size = getattr(vision, "image_size", 0) if vision is not None else 0
    return int(size) if isinstance(size, int) else 0


def squash(images: Sequence[Image.Image], size: int, mean: Sequence[float],
           std: Sequence[float]) -> torch.Tensor:
    """[n, 3, size, size] float32: RGB, BICUBIC resize to size x size, /255, (x - mean) / std."""
    arrays = [np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC), dtype=np.uint8)
              for im in images]
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous().float().div(255)
    m = torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


def squashed_images(images: Sequence[Image.Image], size: int) -> list[Image.Image]:
    """The images resized as `squash` resizes them (for the processor to count image tokens)."""
    return [im.convert("RGB").resize((size, size), Image.BICUBIC) for im in images]
