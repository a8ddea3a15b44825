"""Prompts of different lengths as one batch, left-padded so every row ends at the same column.

Decoder-only models read the next token off the last column, so rows are padded on
the left (masked out) rather than on the right; the cache-copy scorer and batched
generation both build their batches this way.
"""

from __future__ import annotations

import torch

from model_server.backends.host_to_device import to_device


def left_padded(encs: list[dict[str, torch.Tensor]], pad_id: int, device: str
                ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One batch from per-row processor tensors (batch 1 each, on the device) and its
    (rows, longest) attention mask.

    Per-token tensors (ids, token types) are left-padded (ids with `pad_id`, the others
    with 0); every other tensor (pixels, image grids) is concatenated in row order, as
    their image tokens are. Keys come from every row: one without images has no pixels.
    """
    lengths = [e["input_ids"].shape[1] for e in encs]
    longest = max(lengths)
    per_token = [k for k, v in encs[0].items()
                 if v.dim() >= 2 and v.shape[1] == lengths[0] and v.dtype in (torch.long, torch.int)]
    inputs: dict[str, torch.Tensor] = {}
    for k in per_token:
        fill = pad_id if k == "input_ids" else 0
        inputs[k] = torch.cat([torch.nn.functional.pad(e[k], (longest - n, 0), value=fill)
                               for e, n in zip(encs, lengths, strict=True)])
    mask = torch.zeros(len(encs), longest, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, longest - n:] = 1
    mask = to_device(mask, device)
    inputs["attention_mask"] = mask
    for k in dict.fromkeys(k for e in encs for k in e):
        if k not in inputs:
            parts = [e[k] for e in encs if k in e]
            inputs[k] = torch.cat(parts) if len(parts) > 1 else parts[0]
    return inputs, mask
