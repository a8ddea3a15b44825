"""Chat messages for a question, and where the answer's tokens sit.

The model's own chat template renders the prompt: user turn = images + question,
assistant turn = the option. "<img>" placeholders put each image where it
stands in the text, in order; without placeholders all images go first.
A raw prompt (no chat template) is the text as sent, with each image written
as the text the template itself writes for an image, and the option appended.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from serving.errors import InvalidRequest
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


log = logging.getLogger(__name__)
PROBE = "seedbench image marker probe"


def image_marker(apply_template) -> str:
    """The text the chat template writes for one image (LLaVA: "<image>\\n"), found as the
    difference between a one-image user turn and the same turn without the image; ""
    when the template writes none."""
    try:
        with_image = apply_template(messages(PROBE, 1), add_generation_prompt=True)
        without = apply_template(messages(PROBE, 0), add_generation_prompt=True)
    except Exception as exc:  # noqa: BLE001 - a template that cannot say it: raw prompts take no images
        log.warning("the chat template cannot render a one-image probe (%r); raw prompts with "
                    "images will be refused", exc)
        return ""
    head = common_prefix_len(with_image, without)
    tail = common_prefix_len(with_image[head:][::-1], without[head:][::-1])
    return with_image[head:len(with_image) - tail]


def raw_text(text: str, n_images: int, marker: str) -> str:
    """The prompt without a chat template: images at their placeholders, else all first."""
    if PLACEHOLDER in text:
        return text.replace(PLACEHOLDER, marker)
    return marker * n_images + text


def render_raw(text: str, n_images: int, option: str, marker: str, eos: str) -> Rendered:
    """Rendered texts without a chat template: the option follows the prompt directly, and
    the "end of turn" is the tokenizer's end-of-sequence token."""
    prompt = raw_text(text, n_images, marker)
    return Rendered(prompt, prompt + option, prompt + option + eos)


def raw_renders(task, marker: str, eos: str | None) -> list:
    """The options' texts for a raw prompt, refusing what this model cannot take."""
    if task.images and not marker:
        raise InvalidRequest("raw_prompt", "this model's chat template writes no image marker, "
                             "so images cannot be placed in a raw prompt")
    if task.include_end_of_turn and not eos:
        raise InvalidRequest("include_end_of_turn", "the tokenizer has no end-of-sequence token "
                             "to score after the option of a raw prompt")
    return [render_raw(task.text, len(task.images), opt, marker, eos or "") for opt in task.options]


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
    include_end_of_turn the one token after the answer (e.g. </s>) counts too, and a
    template that writes nothing after the answer is refused rather than scored
    without it (the result would claim an end token it did not score).
    """
    if include_end_of_turn:
        seq = list(full_ids)
        end = common_prefix_len(answer_end_ids, full_ids) + 1
        if end > len(seq):
            raise InvalidRequest("include_end_of_turn", "the chat template writes no "
                                 "end-of-turn token after the answer, so there is none to "
                                 "score; use a preset without the end token")
    else:
        seq = list(answer_end_ids)
        end = len(seq)
    begin = common_prefix_len(prompt_ids, seq)
    begin = max(1, min(begin, end - 1))
    return seq[:end], begin, end
