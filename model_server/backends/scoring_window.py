"""Which tokens of a sequence are scored for an option (the "window"), in token ids with one
image token per image (before the processor expands images).

Three rules, named by the protocol's ScoringWindow:
- OPTION_TOKENS: from where prompt + option departs from the prompt's tokens to the
  option's end (+ the end-of-turn token when asked): chat_prompt.answer_span.
- LAST_OPTION_LENGTH: the last len(tokenizer(option).input_ids) tokens of the whole
  sequence, special tokens counted (the LLaVA-1.5 interface's labels mask).
- LENGTH_DIFFERENCE: the last len(tokens(prompt + option)) - len(tokens(prompt)) tokens
  (the Qwen-VL-Chat interface's count).
A window must leave the first token unscored (nothing predicts it) and must not reach
back into an image's tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

from serving.errors import InvalidRequest


def last_tokens(seq: Sequence[int], n: int, why: str) -> tuple[list[int], int, int]:
    """(sequence, begin, end) scoring the last n tokens of seq."""
    if n < 1:
        raise InvalidRequest("scoring_window", f"{why} is {n} tokens: nothing would be scored")
    if n >= len(seq):
        raise InvalidRequest("scoring_window", f"{why} is {n} tokens, but the sequence has "
                             f"{len(seq)}: nothing would predict the first scored token")
    return list(seq), len(seq) - n, len(seq)


def check_clear_of_images(seq: Sequence[int], begin: int, image_token_id: int | None) -> None:
    """A window that reaches back into an image's tokens would score image features."""
    if image_token_id is not None and image_token_id in seq[begin:]:
        raise InvalidRequest("scoring_window", "the scored tokens reach back into an image; "
                             "the option is too short for this window, or an image follows it")
