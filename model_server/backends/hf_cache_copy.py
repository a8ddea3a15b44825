"""Cache-copy option scoring: the prefix encoded once, options from copies of its cache.

Per question the images and question are encoded once (the prefixes of a group
left-padded to the longest, with explicit 1-D positions, or the model's own
M-RoPE positions for Qwen2-VL); then the key/value cache is gathered once per
option row and all options of all questions are scored in one forward over their
right-padded continuations, positions continuing each row's prefix.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch

from model_server.backends.base import OptionScore
from model_server.backends.batch_groups import budget_groups
from model_server.backends.hf_inputs import SharedInputs
from model_server.backends.hf_reference import sum_logprobs
from model_server.backends.host_to_device import to_device
from model_server.backends.left_padding import left_padded
from model_server.stage_times import stage

if TYPE_CHECKING:
    from model_server.backends.hf import HFBackend


@torch.inference_mode()
def score_cache_copy(b: HFBackend, batch: list[SharedInputs], mrope_model: bool
                     ) -> list[list[OptionScore]]:
    """Option scores of a group of questions; `mrope_model`: multi-axis (M-RoPE) positions."""
    dev = b.device
    lengths = [p.prefix["input_ids"].shape[1] for p in batch]
    pmax = max(lengths)
    inputs, mask = left_padded([p.prefix for p in batch], b.inputs.pad_id, dev)
    # Positions: 1-D models get them explicitly (left padding must not shift them);
    # multi-axis (M-RoPE) models derive them from the image grid and report the
    # offset of the next text position as rope_deltas. Without images both are 1-D.
    mrope = mrope_model and "image_grid_thw" in inputs
    inner = getattr(b.model, "model", b.model)
    if mrope:
        inner.rope_deltas = None
    else:
        inputs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    with stage(b.stage_times, "prefix forward"):
        out = b.model(**inputs, use_cache=True, logits_to_keep=1)
    last_logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
    next_pos = torch.tensor(lengths, device=dev)
    if mrope:
        next_pos = next_pos + inner.rope_deltas.view(-1).to(dev)

    rows = [(i, j) for i, p in enumerate(batch) for j in range(len(p.conts))]
    width = max(1, max(len(batch[i].conts[j]) for i, j in rows))
    results: list[list[OptionScore]] = [[] for _ in batch]
    for chunk in budget_groups(rows, lambda _: pmax + width, b.max_batch_tokens):
        _score_rows(b, batch, chunk, out.cache, mask, next_pos, last_logp, width, mrope, results)
    return results


def _score_rows(b, batch, rows, prefix_cache, mask, next_pos, last_logp, width, mrope,
                results) -> None:
    """One forward over the continuations of `rows` (question, option) from their prefixes."""
    dev = b.device
    owner = torch.tensor([i for i, _ in rows], device=dev)
    cache = copy.copy(prefix_cache)  # the selection below rebinds tensors, never edits them
    cache.layers = [copy.copy(layer) for layer in prefix_cache.layers]
    cache.batch_select_indices(owner)
    cont = torch.full((len(rows), width), b.inputs.pad_id, dtype=torch.long)
    cmask = torch.zeros(len(rows), width, dtype=torch.long)
    for r, (i, j) in enumerate(rows):  # built on the host, copied once
        toks = batch[i].conts[j]
        cont[r, :len(toks)] = torch.tensor(toks, dtype=torch.long)
        cmask[r, :len(toks)] = 1
    cont, cmask = to_device(cont, dev), to_device(cmask, dev)
    pos = next_pos[owner, None] + torch.arange(width, device=dev)[None, :]
    if mrope:
        pos = pos[None].expand(3, -1, -1)
    with stage(b.stage_times, "option forward (from cache copies)"):
        logits = b.model(input_ids=cont, attention_mask=torch.cat([mask[owner], cmask], dim=1),
                         position_ids=pos, cache=cache, use_cache=True).logits
    with stage(b.stage_times, "output head, log-softmax, gather"):
        _gather_rows(batch, rows, cont, logits, last_logp, results)


def _gather_rows(batch, rows, cont, logits, last_logp, results) -> None:
    for r, (i, j) in enumerate(rows):
        begin, end = batch[i].spans[j]
        total = 0.0
        if begin == 0:  # the first answer token is predicted by the prefix's last position
            total += float(last_logp[i, cont[r, 0]])
            begin = 1
        if end > begin:
            total += sum_logprobs(logits[r], cont[r], begin, end)
        results[i].append(OptionScore(total, batch[i].spans[j][1] - batch[i].spans[j][0]))
