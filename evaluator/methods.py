"""Answer-ranking methods: what text and options go to Score, and how the answer is picked.

`ppl` is the official method (mean log-prob per option token), `ppl-sum` the
summed variant one reference interface used, `letter` the leaderboard's
"PPL for A/B/C/D" (options listed in the prompt, the letters scored). The
server applies the model's own prompt template and places `<img>` images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evaluator.dataset import LETTERS, Question

METHODS = ("ppl", "ppl-sum", "letter")
LETTER_INSTRUCTION = "Answer with the option's letter from the given choices directly."


@dataclass(frozen=True)
class ScorePrompt:
    text: str
    options: tuple[str, ...]


def build(q: Question, method: str) -> ScorePrompt:
    if method in ("ppl", "ppl-sum"):
        return ScorePrompt(text=q.question, options=tuple(q.choices))
    if method == "letter":
        listed = "\n".join(f"{k}. {c}" for k, c in zip(LETTERS, q.choices, strict=True))
        return ScorePrompt(text=f"{q.question}\n{listed}\n{LETTER_INSTRUCTION}", options=LETTERS)
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def reduce(method: str, logprob_sum: float, num_tokens: int) -> float:
    """The option's score: mean over tokens (ppl, letter) or the plain sum (ppl-sum)."""
    if method == "ppl-sum":
        return logprob_sum
    return logprob_sum / max(1, num_tokens)


def pick(method: str, scores: Sequence[tuple[float, int]]) -> str:
    """The letter of the best option; ties go to the earliest letter, deterministically."""
    values = [reduce(method, s, n) for s, n in scores]
    best = max(range(len(values)), key=lambda i: (values[i], -i))
    return LETTERS[best]
