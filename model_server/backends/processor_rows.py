"""Several prompts through ONE processor call, split back into each prompt's tensors.

A short prompt's preparation is mostly the processor's fixed cost per call
(argument checks, the tokenizer and the image processor entered once each), so a
batch prepared on the device thread makes one call. Each prompt's tensors are then
exactly those a call of its own gives: its tokens without the batch's padding, its
own images' pixel rows. Where the split is not known (a processor output whose
rows cannot be assigned to images) the caller calls once per prompt instead.
"""

from __future__ import annotations

import torch


def split_rows(enc: dict[str, torch.Tensor], image_counts: list[int]
               ) -> list[dict[str, torch.Tensor]] | None:
    """Per prompt (batch 1) tensors from a padded batch output, or None if unknown.

    Per-token tensors lose the padding (the attention mask says where it is); pixel
    tensors go by images: one leading row per image, or, with an image grid
    (Qwen2-VL), t x h x w patch rows per image.
    """
    ids, keep = enc["input_ids"], enc["attention_mask"].bool()
    images = sum(image_counts)
    grid = enc.get("image_grid_thw")
    patches = grid.prod(-1).tolist() if grid is not None else None
    bounds_images = _bounds(image_counts)
    bounds_patches = None
    if patches is not None:
        per_prompt = [sum(patches[a:b]) for a, b in bounds_images]
        bounds_patches = _bounds(per_prompt)
    out: list[dict[str, torch.Tensor]] = [{} for _ in image_counts]
    for k, v in enc.items():
        if v.dim() >= 2 and v.shape[:2] == ids.shape:
            for i, row in enumerate(out):
                row[k] = v[i][keep[i]][None]
        elif v.shape[0] == images:
            for row, (a, b) in zip(out, bounds_images, strict=True):
                if b > a:
                    row[k] = v[a:b]
        elif bounds_patches is not None and v.shape[0] == sum(patches):
            for row, (a, b) in zip(out, bounds_patches, strict=True):
                if b > a:
                    row[k] = v[a:b]
        else:
            return None
    return out


def _bounds(counts: list[int]) -> list[tuple[int, int]]:
    out, start = [], 0
    for c in counts:
        out.append((start, start + c))
        start += c
    return out
