"""Answer methods: what goes to the model for a question, and how its reply becomes a letter.

- `ppl`: rank the four choice texts by their likelihood as the answer (Score);
  the preset (evaluator.run.presets) says how: prompt format, reduction, end token,
  image placement.
- `letter`: the leaderboard's "PPL for A/B/C/D": the options listed in the
  prompt, the four letters ranked (Score).
- `generate`: the same listed prompt, the model's greedy answer (Generate), and
  the letter read from it by the one answer parser (serving.answer_parser); an
  answer naming no single option is recorded as unparsed, never guessed.

`letter` and `generate` list the options with one formatter (`listed_prompt`).
The servers place `<img>` images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evaluator.data.dataset import LETTERS, Question
from evaluator.run import presets
from evaluator.run.presets import Preset

METHODS = ("ppl", "letter", "generate")
INSTRUCTION = "Answer with the option's letter from the given choices directly."
# Generate settings: greedy and seeded, so a rerun reads the same text; short, because
# the answer is a letter (room is left for "The answer is B." and the like).
GENERATE_MAX_NEW_TOKENS = 32
GENERATE_SEED = 0


@dataclass(frozen=True)
class ScorePrompt:
    text: str
    options: tuple[str, ...]
    raw_prompt: bool
    include_end_of_turn: bool


def listed_prompt(q: Question) -> str:
    """The question, its options as "A. text" lines, and the instruction (letter and generate)."""
    listed = "\n".join(f"{k}. {c}" for k, c in zip(LETTERS, q.choices, strict=True))
    return f"{q.question}\n{listed}\n{INSTRUCTION}"


def score_prompt(q: Question, method: str, preset: Preset) -> ScorePrompt:
    """The Score request's text and options for a ranking method under a preset."""
    if method == "ppl":
        body, options = q.question, q.choices
    elif method == "letter":
        body, options = listed_prompt(q), preset.letters(LETTERS)
    else:
        raise ValueError(f"method {method!r} does not rank options; choose ppl or letter")
    return ScorePrompt(text=preset.text(body), options=tuple(preset.options(options)),
                       raw_prompt=preset.raw, include_end_of_turn=preset.end_token)


def build(q: Question, method: str) -> ScorePrompt:
    """The Score prompt of a ranking method under the default preset (chat-mean)."""
    return score_prompt(q, method, presets.get(presets.DEFAULT))


def pick(preset: Preset, scores: Sequence[tuple[float, int]]) -> str:
    """The letter of the best option under the preset's reduction (ties: earliest letter)."""
    return LETTERS[preset.pick(scores)]


def refusal(method: str, preset: Preset) -> str | None:
    """Why this method cannot run under this preset, or None."""
    if method not in METHODS:
        return f"unknown method {method!r}; choose from {', '.join(METHODS)}"
    if preset.methods and method not in preset.methods:
        return (f"preset {preset.name} follows an interface that used --method "
                f"{' or '.join(preset.methods)} only ({preset.interface}); use that method or "
                f"another preset")
    if method == "generate" and preset.raw:
        return (f"--method generate sends the model's chat template (Generate has no raw "
                f"prompt); preset {preset.name} uses a raw prompt. Use a chat-template "
                f"preset such as chat-mean or llava-1.5")
    return None
