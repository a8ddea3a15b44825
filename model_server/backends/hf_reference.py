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
    """One full forward pass per option."""
    rendered, _, spans = b.inputs.spans(task)
    out = []
    for r, (_seq, begin, end) in zip(rendered, spans, strict=True):
        text = r.full if task.include_end_of_turn else r.answer_end
        enc = b.inputs.encode(text, task.images)
        ids = enc["input_ids"][0]
        full_len = len(b.inputs.tokens(text))
        shift = len(ids) - full_len  # image tokens expand inside the user turn, before begin
        with stage(b.stage_times, "forward (reference: whole prompt per option)"):
            logits = b.model(**enc).logits[0]
        with stage(b.stage_times, "output head, log-softmax, gather"):
            total = sum_logprobs(logits, ids, begin + shift, end + shift)
        out.append(OptionScore(total, end - begin))
    return out
