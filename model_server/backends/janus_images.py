"""Janus image generation for a batch of prompts, each image as if generated alone.

Classifier-free guidance runs every prompt as two rows: conditional (the prompt,
its input images as the vision encoder's features in the image placeholders) and
unconditional (every token but begin-of-sequence and begin-of-image masked to
padding). Each step mixes a request's two rows' logits, uncond + w * (cond -
uncond), and picks its next image token: argmax at temperature 0, else a sample
from a random generator of its own, seeded from the request (the same stream
`torch.manual_seed(seed)` gives on the CPU). Prompts of different lengths are
left-padded, with positions counted over each row's real tokens. A request past
its deadline is aborted (its two rows leave the batch and its cache) while the
others go on, and every image is decoded by the VQ decoder on its own, so its
bytes never depend on its batch-mates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from model_server.backends import deadline_stop
from model_server.backends.decode_loop import Sampling
from model_server.backends.left_padding import left_padded


@dataclass(frozen=True)
class ImageRow:
    """One image request: its image-mode processor tensors (batch 1) on the device."""

    inputs: dict[str, torch.Tensor]
    seed: int = 0
    deadline: float | None = None


@dataclass(frozen=True)
class ImageSampler:
    """How image tokens are chosen: guidance weight, temperature (0: greedy), sampling."""

    cfg_weight: float
    temperature: float
    sampling: Sampling


@torch.inference_mode()
def image_tokens(model, rows: Sequence[ImageRow], sampler: ImageSampler,
                 ids: tuple[int, int, int]) -> list[torch.Tensor | Exception]:
    """Each request's image tokens (num_image_tokens,), or DeadlinePassed. `ids`: the
    padding, begin-of-sequence and begin-of-image tokens."""
    pad_id, bos_id, boi_id = ids
    n = len(rows)
    dev = rows[0].inputs["input_ids"].device
    results: list[torch.Tensor | Exception | None] = [None] * n
    for i, gone in enumerate(deadline_stop.passed([r.deadline for r in rows])):  # before any work
        if gone:
            results[i] = deadline_stop.not_begun()
    live = [i for i in range(n) if results[i] is None]
    if not live:
        return results
    inputs, mask = left_padded([rows[i].inputs for i in live], pad_id, str(dev))
    cond = inputs["input_ids"]
    uncond = cond.masked_fill((cond != bos_id) & (cond != boi_id), pad_id)
    embeds = _prompt_embeddings(model, torch.cat([cond, uncond]), inputs.get("pixel_values"))
    mask = torch.cat([mask, mask])
    lm = model.model.language_model
    out = lm(inputs_embeds=embeds, attention_mask=mask,
             position_ids=(mask.cumsum(-1) - 1).clamp(min=0), use_cache=True)
    next_pos = mask.sum(-1)
    gens = {i: torch.Generator(device=dev).manual_seed(rows[i].seed) for i in live}
    count = model.model.vision_model.config.num_image_tokens
    chosen_all = torch.zeros((len(live), count), dtype=torch.long, device=dev)
    active = list(range(len(live)))  # positions in `live` still generating
    for step in range(count):
        scores = model.model.generation_head(out.last_hidden_state[:, -1])
        c, u = scores.split(len(active))
        guided = u + (c - u) * sampler.cfg_weight
        keep = [k for k, gone in enumerate(deadline_stop.passed(
            [rows[live[a]].deadline for a in active])) if not gone]
        chosen = _choose(guided, [gens[live[a]] for a in active], sampler)
        chosen_all[active, step] = chosen
        for k, a in enumerate(active):
            if k not in keep:
                results[live[a]] = deadline_stop.image_aborted()
        if not keep:
            return results
        if len(keep) < len(active):
            idx = torch.tensor(keep, device=dev)
            both = torch.cat([idx, idx + len(active)])
            out.cache.batch_select_indices(both)
            mask, next_pos, chosen = mask[both], next_pos[both], chosen[idx]
            active = [active[k] for k in keep]
        if step + 1 == count:
            break
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        embeds = model.prepare_embeddings_for_image_generation(torch.cat([chosen, chosen])[:, None])
        out = lm(inputs_embeds=embeds, attention_mask=mask, position_ids=(next_pos + step)[:, None],
                 cache=out.cache, use_cache=True)
    for a in active:
        results[live[a]] = chosen_all[a]
    return results


def _prompt_embeddings(model, tokens: torch.Tensor, pixel_values: torch.Tensor | None
                       ) -> torch.Tensor:
    """Token embeddings, the image placeholders (conditional rows only: the unconditional
    ones are padding there) filled with the input images' vision features in order."""
    embeds = model.get_input_embeddings()(tokens)
    if pixel_values is None:
        return embeds
    feats = model.model.get_image_features(pixel_values).pooler_output
    feats = feats.reshape(-1, feats.shape[-1]).to(embeds.dtype)
    placeholders = tokens == model.config.image_token_id
    if int(placeholders.sum()) != feats.shape[0]:
        return embeds
    return embeds.masked_scatter(placeholders.unsqueeze(-1), feats)


def _choose(guided: torch.Tensor, gens: list[torch.Generator], sampler: ImageSampler
            ) -> torch.Tensor:
    if sampler.temperature <= 0:
        return guided.argmax(-1)
    return torch.stack([sampler.sampling.draw(g, sampler.temperature, gen)
                        for g, gen in zip(guided, gens, strict=True)])
