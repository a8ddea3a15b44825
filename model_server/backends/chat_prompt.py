"""Chat messages for a question, and where the answer's tokens sit.

The model's own chat template renders the prompt: user turn = images + question,
assistant turn = the option. "<img>" placeholders put each image where it
stands in the text, in order; without placeholders all images go first.
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.images import PLACEHOLDER


def user_content(text: str, n_images: int) -> list[dict]:
    if PLACEHOLDER not in text:
        return [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": text}]
    content: list[dict] = []
    pieces = text.split(PLACEHOLDER)
    for i, piece in enumerate(pieces):
        if piece:
            content.append({"type": "text", "text": piece})
        if i < len(pieces) - 1:
            content.append({"type": "image"})
    return content


def messages(text: str, n_images: int, answer: str | None = None) -> list[dict]:
    msgs = [{"role": "user", "content": user_content(text, n_images)}]
    if answer is not None:
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return msgs


@dataclass(frozen=True)
class Rendered:
    """Rendered texts for one (question, option) pair."""

    prompt: str       # user turn + generation prompt
    answer_end: str   # ... + the option, cut right after it
    full: str         # ... + the option + the template's end-of-turn


def render(apply_template, text: str, n_images: int, option: str) -> Rendered:
    prompt = apply_template(messages(text, n_images), add_generation_prompt=True)
    answer_end = apply_template(messages(text, n_images, option), continue_final_message=True)
    full = apply_template(messages(text, n_images, option))
    return Rendered(prompt, answer_end, full)


def common_prefix_len(a, b) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def answer_span(prompt_ids, answer_end_ids, full_ids, include_end_of_turn: bool):
    """Return (sequence, begin, end): score sequence[begin:end].

    begin is where the sequence first departs from the prompt's tokens (real
    tokenizers may merge across the question/answer boundary); with
    include_end_of_turn the one token after the answer (e.g. </s>) counts too.
    """
    if include_end_of_turn:
        seq = list(full_ids)
        end = common_prefix_len(answer_end_ids, full_ids) + 1
        end = min(end, len(seq))
    else:
        seq = list(answer_end_ids)
        end = len(seq)
    begin = common_prefix_len(prompt_ids, seq)
    begin = max(1, min(begin, end - 1))
    return seq[:end], begin, end
