"""Generation that ends at the client's deadline: nobody waits for the answer after it.

For transformers' `generate`: text stops at the next token (the tokens so far are
returned, and the server's answer goes nowhere); an image of a fixed number of
tokens has no stopping criteria and no use half-made, so its generation is
aborted with DeadlinePassed instead. Checked once per generated token.
"""

from __future__ import annotations

import time

import torch
import transformers

from serving.errors import DeadlinePassed


def check_not_passed(deadline: float | None) -> None:
    """DeadlinePassed before any work when the deadline has already gone by."""
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlinePassed("the client's deadline passed before generation began")


class StopAtDeadline(transformers.StoppingCriteria):
    """Stop text generation once time.monotonic() reaches the deadline."""

    def __init__(self, deadline: float):
        self.deadline = deadline

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kw) -> torch.Tensor:
        done = time.monotonic() >= self.deadline
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class AbortAtDeadline(transformers.LogitsProcessor):
    """Abort a generation that cannot stop early (image tokens) once the deadline passes."""

    def __init__(self, deadline: float):
        self.deadline = deadline

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if time.monotonic() >= self.deadline:
            raise DeadlinePassed("the client's deadline passed while the image was generated; "
                                 "stopped")
        return scores


def text_stop(deadline: float | None) -> dict:
    """`generate` keyword arguments that stop text generation at `deadline` (none: {})."""
    if deadline is None:
        return {}
    return {"stopping_criteria": transformers.StoppingCriteriaList([StopAtDeadline(deadline)])}


def image_abort(deadline: float | None) -> dict:
    """`generate` keyword arguments that abort image generation at `deadline` (none: {})."""
    if deadline is None:
        return {}
    return {"logits_processor": transformers.LogitsProcessorList([AbortAtDeadline(deadline)])}
