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
from protos import seedbench_pb2 as pb

METHODS = ("ppl", "letter", "generate")
INSTRUCTION = "Answer with the option's letter from the given choices directly."
# Generate settings: greedy and seeded, so a rerun reads the same text; short, because
# the answer is a letter (room is left for "The answer is B." and the like).
GENERATE_MAX_NEW_TOKENS = 32
GENERATE_SEED = 0


@dataclass(frozen=True)
class ScorePrompt:
    """A ranking method's Score request under a preset, before the images are attached."""

    text: str
    options: tuple[str, ...]
    raw_prompt: bool
    include_end_of_turn: bool
    preset: Preset | None = None  # the recipe fields' source (None: the original fields only)

    def request(self, request_id: str, images: Sequence[pb.Image]) -> pb.ScoreRequest:
        """The ScoreRequest: text, options, flags and the preset's recipe as typed fields."""
        req = pb.ScoreRequest(request_id=request_id, prompt=pb.Prompt(text=self.text, images=images),
                              options=list(self.options), raw_prompt=self.raw_prompt,
                              include_end_of_turn=self.include_end_of_turn)
        p = self.preset
        if p is None:
            return req
        req.scoring_window = WINDOW[p.window]
        req.image_text = IMAGE_TEXT[p.image_text]
        req.tokenization = TOKENIZATION[p.tokenization]
        if p.affix_fields:
            req.option_prefix, req.option_suffix = p.option_prefix, p.option_suffix
        if p.preprocessing.mode == "squash":
            req.image_preprocessing.CopyFrom(pb.ImagePreprocessing(
                mode=pb.ImagePreprocessing.MODE_SQUASH, size=p.preprocessing.size,
                interpolation=pb.ImagePreprocessing.INTERPOLATION_BICUBIC,
                mean=p.preprocessing.mean, std=p.preprocessing.std))
        return req


# The protocol's enums by the preset's names for them.
WINDOW = {"option-tokens": pb.SCORING_WINDOW_OPTION_TOKENS,
          "last-option-length": pb.SCORING_WINDOW_LAST_OPTION_LENGTH,
          "length-difference": pb.SCORING_WINDOW_LENGTH_DIFFERENCE}
IMAGE_TEXT = {"template-marker": pb.IMAGE_TEXT_TEMPLATE_MARKER,
              "model-token": pb.IMAGE_TEXT_MODEL_TOKEN}
TOKENIZATION = {"whole": pb.PROMPT_TOKENIZATION_WHOLE,
                "split-at-images": pb.PROMPT_TOKENIZATION_SPLIT_AT_IMAGES}
PREPROCESSING = {"model-processor": pb.ImagePreprocessing.MODE_MODEL_PROCESSOR,
                 "squash": pb.ImagePreprocessing.MODE_SQUASH}


def listed_prompt(q: Question) -> str:
    """The question, its options as "A. text" lines, and the instruction (letter and generate)."""
    listed = "\n".join(f"{k}. {c}" for k, c in zip(LETTERS, q.choices, strict=True))
    return f"{q.question}\n{listed}\n{INSTRUCTION}"


def score_prompt(q: Question, method: str, preset: Preset, n_images: int = 0) -> ScorePrompt:
    """The Score request's text and options for a ranking method under a preset, for a
    question sent with `n_images` images (after the preset's image selection)."""
    if method == "ppl":
        body, options = q.question, q.choices
    elif method == "letter":
        body, options = listed_prompt(q), preset.letters(LETTERS)
    else:
        raise ValueError(f"method {method!r} does not rank options; choose ppl or letter")
    return ScorePrompt(text=preset.text(body, n_images), options=tuple(preset.options(options)),
                       raw_prompt=preset.raw, include_end_of_turn=preset.end_token,
                       preset=preset if preset.uses_recipe_fields
                       or preset.preprocessing.mode != "model-processor" else None)


def score_request(q: Question, method: str, preset: Preset, images: Sequence) -> pb.ScoreRequest:
    """The ScoreRequest for a question: the preset's image selection, text and recipe."""
    images = preset.select_images(q.question, list(images))
    return score_prompt(q, method, preset, len(images)).request(q.question_id, images)


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
