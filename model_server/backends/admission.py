"""Admission checks a backend's `admit` builds from: one wording for every limit.

Each raises TooLarge (RESOURCE_EXHAUSTED) naming the request field and the
limit, before the request queues (docs/reliability.md, "Limits"). Torch-free:
the remote backends use them too.
"""

from __future__ import annotations

from collections.abc import Sequence

from serving.errors import TooLarge


def check_text_size(text: str, max_token_chars: int, context_tokens: int,
                    field: str = "prompt.text") -> None:
    """Refuse a text that cannot fit before tokenising it: no token covers more than
    `max_token_chars` characters, so it is at least len(text) // max_token_chars tokens."""
    least = len(text) // max(1, max_token_chars)
    if context_tokens and least > context_tokens:
        raise TooLarge(f"{field}: {len(text)} characters is at least {least} tokens, "
                       f"over the context length of {context_tokens} tokens")


def check_option_budget(option_tokens: Sequence[int], budget: int) -> int:
    """Options x the longest option's tokens (+1 for the end of turn) against a per-request
    budget; returns that longest answer's tokens."""
    longest = max(option_tokens) + 1
    cost = len(option_tokens) * longest
    if budget and cost > budget:
        raise TooLarge(f"options: {len(option_tokens)} options x {longest} tokens = {cost} "
                       f"tokens, over this model's budget of {budget} (max_option_tokens)")
    return longest


def check_context(prompt_tokens: int, answer_tokens: int, what: str, context_tokens: int) -> None:
    """Prompt (images expanded) + what the model must add, against the context length.
    An answer that alone fills the context names its own field, else the prompt is named."""
    if not context_tokens or prompt_tokens + answer_tokens <= context_tokens:
        return
    if what == "max_new_tokens" and answer_tokens >= context_tokens:
        raise TooLarge(f"max_new_tokens: {answer_tokens} is not below the context length of "
                       f"{context_tokens} tokens (the prompt needs {prompt_tokens} of them)")
    raise TooLarge(f"prompt.text: {prompt_tokens} prompt tokens (images expanded) + "
                   f"{answer_tokens} for {what} = {prompt_tokens + answer_tokens}, over the "
                   f"context length of {context_tokens} tokens")
