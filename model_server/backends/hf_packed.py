"""Packed option scoring: all options of a question in ONE forward pass.

Each question becomes one row `prefix + option_1 + ... + option_k`. A 4-D
attention mask lets every option token see the prefix and the earlier tokens of
its own option only, and each option's positions restart right after the prefix,
so every option is scored exactly as if it followed the prefix alone. Unlike the
cache-copy path, the prefix's key/value cache is never copied once per option and
the whole question costs one forward.

Only the positions that predict a scored token go through the output head, so
the (rows x length x vocabulary) logits are never formed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from model_server.backends.base import OptionScore
from model_server.backends.host_to_device import to_device
from model_server.stage_times import stage

if TYPE_CHECKING:
    from model_server.backends.hf import HFBackend
    from model_server.backends.hf_inputs import SharedInputs

# Attention implementations that take an arbitrary additive 4-D mask.
MASKABLE_ATTENTION = {"sdpa", "eager"}
ALIGN = 16  # row length rounded up: aligned masks keep the fused attention kernels usable


@dataclass
class PackedBatch:
    inputs: dict[str, torch.Tensor]  # keyword arguments for the base model's forward
    predictors: torch.Tensor         # (N,) flat (row * length + column) of each scored token's predictor
    targets: torch.Tensor            # (N,) the scored tokens
    counts: list[list[int]]          # per question, per option: how many of the N it owns


def row_length(prefix_len: int, conts: list[list[int]]) -> int:
    """Length of a question's packed row (before alignment)."""
    return prefix_len + sum(len(c) for c in conts)


def pack(batch, pad_id: int, device: str, mask_dtype: torch.dtype,
         prefix_positions: Callable[[int], tuple[torch.Tensor, int]] | None) -> PackedBatch:
    """Lay out `batch` (hf_inputs.SharedInputs items) as packed rows with their mask and positions.

    `prefix_positions(i)` gives question i's multi-axis prefix positions (axes, P) and the
    first position after the prefix; None for models with 1-D positions.
    """
    lengths = [p.prefix["input_ids"].shape[1] for p in batch]
    width = max(row_length(n, p.conts) for n, p in zip(lengths, batch, strict=True))
    width = -(-width // ALIGN) * ALIGN
    rows = len(batch)
    ids = torch.full((rows, width), pad_id, dtype=torch.long)
    seg = torch.full((rows, width), -1, dtype=torch.long)   # 0 prefix, j+1 option j, -1 padding
    pos = torch.zeros((rows, width), dtype=torch.long)      # text positions (all axes for options)
    predictors, targets, counts = [], [], []
    for i, (p, n) in enumerate(zip(batch, lengths, strict=True)):
        seg[i, :n] = 0
        pos[i, :n] = torch.arange(n)
        start, per_option = n, []
        for j, (toks, (b, e)) in enumerate(zip(p.conts, p.spans, strict=True)):
            m = len(toks)
            ids[i, start:start + m] = torch.tensor(toks, dtype=torch.long)
            seg[i, start:start + m] = j + 1
            pos[i, start:start + m] = torch.arange(m)  # offset by the prefix's next position below
            for c in range(b, e):
                col = n - 1 if c == 0 else start + c - 1
                predictors.append(i * width + col)
                targets.append(toks[c])
            per_option.append(e - b)
            start += m
        counts.append(per_option)

    seg = to_device(seg, device)
    inputs: dict[str, torch.Tensor] = {}
    # Per-token tensors of the prefix (ids, token types), right-padded into their rows;
    # pixel tensors concatenated in row order, as their image tokens are. Keys come from
    # every question: one without images has no pixel tensors.
    keys = list(dict.fromkeys(k for p in batch for k in p.prefix if k != "attention_mask"))
    for k in keys:
        held = [(p.prefix[k], n) for p, n in zip(batch, lengths, strict=True) if k in p.prefix]
        v, n0 = held[0]
        if v.dim() >= 2 and v.shape[1] == n0 and v.dtype in (torch.long, torch.int):
            full = to_device(ids, device) if k == "input_ids" else torch.zeros(
                (rows, width), dtype=v.dtype, device=device)
            for i, (p, n) in enumerate(zip(batch, lengths, strict=True)):
                if k in p.prefix:
                    full[i, :n] = p.prefix[k][0]
            inputs[k] = full
        else:
            inputs[k] = torch.cat([t for t, _ in held]) if len(held) > 1 else v

    pos = to_device(pos, device)
    option_cols = seg > 0
    if prefix_positions is None:
        nxt = torch.tensor(lengths, device=device)
        inputs["position_ids"] = torch.where(option_cols, pos + nxt[:, None], pos)
    else:
        axes = torch.zeros((3, rows, width), dtype=torch.long, device=device)
        for i, n in enumerate(lengths):
            prefix_pos, nxt = prefix_positions(i)
            axes[:, i, :n] = prefix_pos.to(device)
            axes[:, i] = torch.where(option_cols[i], pos[i] + nxt, axes[:, i])
        inputs["position_ids"] = axes

    col = torch.arange(width, device=device)
    causal = col[None, :] <= col[:, None]
    visible = (seg[:, :, None] == seg[:, None, :]) | (seg[:, None, :] == 0)
    allowed = causal[None] & visible
    mask = torch.zeros((rows, 1, width, width), dtype=mask_dtype, device=device)
    mask.masked_fill_(~allowed[:, None], torch.finfo(mask_dtype).min)
    inputs["attention_mask"] = mask
    return PackedBatch(inputs, to_device(torch.tensor(predictors), device),
                       to_device(torch.tensor(targets), device), counts)


def option_logprobs(hidden: torch.Tensor, head: torch.nn.Module, packed: PackedBatch) -> list[list[float]]:
    """Summed log-probabilities per question and option from the base model's hidden states."""
    flat = hidden.reshape(-1, hidden.shape[-1])[packed.predictors]
    logp = torch.log_softmax(head(flat).float(), dim=-1)
    per_token = logp.gather(-1, packed.targets[:, None])[:, 0].tolist()
    out, k = [], 0
    for per_option in packed.counts:
        sums = []
        for c in per_option:
            sums.append(float(sum(per_token[k:k + c])))
            k += c
        out.append(sums)
    return out


@torch.inference_mode()
def score_packed(b: HFBackend, batch: list[SharedInputs], mrope: bool) -> list[list[OptionScore]]:
    """One forward over packed rows `prefix + option_1 + ... + option_k`; `mrope`: the model
    has multi-axis (M-RoPE) positions."""
    with stage(b.stage_times, "pack rows, mask, positions"):
        packed = pack(batch, b.inputs.pad_id, b.device, b.dtype,
                      (lambda i: _mrope_prefix(b, batch[i])) if mrope else None)
    with stage(b.stage_times, "forward (packed: prefix + options)"):
        hidden = b.model.model(**packed.inputs, use_cache=False).last_hidden_state
    with stage(b.stage_times, "output head, log-softmax, gather"):
        sums = option_logprobs(hidden, b.model.get_output_embeddings(), packed)
    return [[OptionScore(total, e - s) for total, (s, e) in zip(q, p.spans, strict=True)]
            for q, p in zip(sums, batch, strict=True)]


def _mrope_prefix(b: HFBackend, p: SharedInputs) -> tuple[torch.Tensor, int]:
    """A prefix's multi-axis positions (3, P) and the text position that follows it."""
    n = p.prefix["input_ids"].shape[1]
    grids = {k: p.prefix[k] for k in ("image_grid_thw", "video_grid_thw") if k in p.prefix}
    if not grids:
        return torch.arange(n, device=b.device).expand(3, n), n
    pos, delta = b.model.model.get_rope_index(
        p.prefix["input_ids"], mm_token_type_ids=p.prefix["mm_token_type_ids"], **grids)
    return pos[:, 0], n + int(delta.view(-1)[0])
