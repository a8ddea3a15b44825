"""Generation that ends at the client's deadline: nobody waits for the answer after it.

Text stops at the next token and the generation is then refused with
DeadlinePassed (a reply cut short is no answer, and a client whose own deadline
fires a moment later must not take it for one); an image of a fixed number of
tokens is aborted with DeadlinePassed at once. The clock is read once before
generating and once per generated token (per step of a batch: decode_loop,
janus_images), and only through this module, so tests can step it. TextDeadline
does the same for transformers' `generate` (hf architectures not batched).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
import transformers

from serving.errors import DeadlinePassed


def now() -> float:
    """The clock deadlines are measured on (time.monotonic)."""
    return time.monotonic()


def passed(deadlines: Sequence[float | None]) -> list[bool]:
    """Whether each deadline (None: none) has passed, from one look at the clock for all
    (no look when none is set)."""
    if all(d is None for d in deadlines):
        return [False] * len(deadlines)
    t = now()
    return [d is not None and t >= d for d in deadlines]


def not_begun() -> DeadlinePassed:
    return DeadlinePassed("the client's deadline passed before generation began")


def image_aborted() -> DeadlinePassed:
    """The refusal of an image whose generation reached the deadline (half an image is no
    answer; its tokens are a fixed number, so there is no early end to wait for)."""
    return DeadlinePassed("the client's deadline passed while the image was generated; stopped")


def stopped_after(tokens: int) -> DeadlinePassed:
    """The refusal of a text cut at its deadline after `tokens` tokens."""
    return DeadlinePassed(f"the client's deadline passed during generation; stopped after "
                          f"{tokens} tokens")


def check_not_passed(deadline: float | None) -> None:
    """DeadlinePassed before any work when the deadline has already gone by."""
    if deadline is not None and now() >= deadline:
        raise not_begun()


class StopAtDeadline(transformers.StoppingCriteria):
    """Stop text generation once time.monotonic() reaches the deadline; `fired` says it did."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.fired = False
        self.tokens = 0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kw) -> torch.Tensor:
        self.tokens += 1
        done = now() >= self.deadline
        self.fired = self.fired or done
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class TextDeadline:
    """Text generation that stops at `deadline` (None: no deadline):
    `generate(**kw, **d.kwargs())`, then `d.check()` refuses a generation cut there."""

    def __init__(self, deadline: float | None):
        self.stop = StopAtDeadline(deadline) if deadline is not None else None

    def kwargs(self) -> dict:
        if self.stop is None:
            return {}
        return {"stopping_criteria": transformers.StoppingCriteriaList([self.stop])}

    def check(self) -> None:
        if self.stop is not None and self.stop.fired:
            raise stopped_after(self.stop.tokens)
