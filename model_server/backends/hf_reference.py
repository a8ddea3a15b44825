"""The reference answer ranking: one full forward pass per option.

Every faster path (packed, cache copy) is tested against this one: it feeds the
model exactly the text the contract defines (prompt + option, images included)
and sums the option's token log-probabilities, nothing shared between options.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from model_server.backends.base import OptionScore, ScoreTask
from model_server.stage_times import stage

if TYPE_CHECKING:
    from model_server.backends.hf import HFBackend


def sum_logprobs(logits: torch.Tensor, ids: torch.Tensor, begin: int, end: int) -> float:
    """Summed log p(ids[k] | ids[:k]) for k in [begin, end), from a row's logits."""
    logp = torch.log_softmax(logits[begin - 1:end - 1].float(), dim=-1)
    return float(logp.gather(-1, ids[begin:end, None]).sum())


@torch.inference_mode()
def score_per_option(b: HFBackend, task: ScoreTask) -> list[OptionScore]:
    """One full forward pass per option: the prompt built by the model's template, or by
    the request's reference recipe (reference_prompt.RecipeInputs)."""
    source = b.recipes if task.follows_recipe else b.inputs
    out = []
    for enc, begin, end in source.option_inputs(task):
        with stage(b.stage_times, "forward (reference: whole prompt per option)"):
            logits = b.model(**enc).logits[0]
        with stage(b.stage_times, "output head, log-softmax, gather"):
            total = sum_logprobs(logits, enc["input_ids"][0], begin, end)
        out.append(OptionScore(total, end - begin))
    return out
