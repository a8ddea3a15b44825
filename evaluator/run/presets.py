"""Reference-interface presets: how a question becomes a Score request, and how scores pick.

The published SEED-Bench numbers come from different model interfaces that
disagree on the prompt (the model's chat template, or a raw
`Question: {question}\\nAnswer:` with no template), the reduction of the option's
token log-probabilities (mean or sum), whether the end-of-sequence /
end-of-turn token after the option counts, and which images a question without
`<img>` gets. There is no single "official" variant, so every run names the
preset it used: it is recorded in summary.json, run.json and every table, and
it is part of the results key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from evaluator.data import references

CHAT = "chat template"
REDUCTIONS = ("mean", "sum")
IMAGE_PLACEMENTS = ("all", "first")
PLACEHOLDER = "<img>"


@dataclass(frozen=True)
class Preset:
    name: str
    interface: str  # the reference interface it follows
    prompt: str  # CHAT, or a raw template holding "{question}" sent without any chat template
    reduction: str  # "mean" or "sum" of the option's token log-probabilities
    end_token: bool  # the EOS / end-of-turn token after the option is scored too
    images: str  # without <img> in the question: "all" images first, or only the "first"
    option_prefix: str = ""  # raw prompts: what goes between the prompt and each option
    letter_suffix: str = ""  # scored after each letter of the listed options ("A." for ".")
    methods: tuple[str, ...] = ()  # the answer methods its interface used; empty: any
    note: str = ""

    def __post_init__(self):
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"preset {self.name}: reduction must be one of {REDUCTIONS}")
        if self.images not in IMAGE_PLACEMENTS:
            raise ValueError(f"preset {self.name}: images must be one of {IMAGE_PLACEMENTS}")
        if self.prompt != CHAT and "{question}" not in self.prompt:
            raise ValueError(f"preset {self.name}: a raw prompt template needs {{question}}")

    @property
    def raw(self) -> bool:
        """True: the prompt is sent without the model's chat template (Score.raw_prompt)."""
        return self.prompt != CHAT

    def text(self, body: str) -> str:
        """The request text for a question body (the question, or the question + listed options)."""
        return self.prompt.replace("{question}", body) if self.raw else body

    def options(self, options: Sequence[str]) -> list[str]:
        """The continuations as sent: a raw prompt is followed by the option directly."""
        return [self.option_prefix + o for o in options] if self.raw else list(options)

    def letters(self, letters: Sequence[str]) -> list[str]:
        """The listed options' letters as scored (`letter` method): "A", or "A." and the like."""
        return [letter + self.letter_suffix for letter in letters]

    def reduce(self, logprob_sum: float, num_tokens: int) -> float:
        return logprob_sum if self.reduction == "sum" else logprob_sum / max(1, num_tokens)

    def pick(self, scores: Sequence[tuple[float, int]]) -> int:
        """Index of the best option; ties go to the earliest, deterministically."""
        values = [self.reduce(s, n) for s, n in scores]
        return max(range(len(values)), key=lambda i: (values[i], -i))

    def select_images(self, question_text: str, images: list) -> list:
        """The images sent: every one, except "first" placement for a question without <img>
        (the LLaVA-1.5 interface wrote one image token and used only the first image/frame)."""
        if self.images == "first" and PLACEHOLDER not in question_text:
            return images[:1]
        return images

    @property
    def reproduces(self) -> list[str]:
        """The published rows it is meant to reproduce: those of references.json naming it."""
        return references.for_preset(self.name)

    def record(self) -> dict:
        """What summary.json and run.json say about the preset."""
        return {**asdict(self), "methods": list(self.methods), "reproduces": self.reproduces}


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(
        name="chat-mean", interface="this project's default (no published interface)",
        prompt=CHAT, reduction="mean", end_token=False, images="all",
        note="the model's own chat template, option tokens only, mean; comparable between "
             "models run here, not to a published row"),
    Preset(
        name="seed1-instructblip",
        interface="SEED-Bench-1 default interface (InstructBLIP via LAVIS, Flan-T5)",
        prompt="Question: {question}\nAnswer:", option_prefix=" ", reduction="sum",
        end_token=True, images="all",
        note="SEED-Bench-1 questions carry one image or the 8 video frames; all are sent"),
    Preset(
        name="seed1-instructblip-hf",
        interface="SEED-Bench-1 HF InstructBLIP interface (transformers)",
        prompt="Question: {question}\nAnswer:", option_prefix=" ", reduction="mean",
        end_token=True, images="all",
        note="the default interface's prompt with a mean; no published row names it"),
    Preset(
        name="llava-1.5", interface="SEED-Bench-2 LLaVA-1.5 interface (llava_v1 conversation)",
        prompt=CHAT, reduction="mean", end_token=True, images="first",
        note="one image before the question (the first image or frame) unless <img> places them"),
    Preset(
        name="internlm-xcomposer", interface="SEED-Bench-2 InternLM-XComposer interface",
        prompt=CHAT, reduction="mean", end_token=False, images="all", letter_suffix=".",
        methods=("letter",),
        note="the options listed in the prompt and each letter scored with its full stop "
             "(\"A.\"); --method letter only; the spec lists no published row for it"),
    Preset(
        name="qwen-vl-chat", interface="SEED-Bench-2 Qwen-VL-Chat interface",
        prompt="{question}", option_prefix="", reduction="mean", end_token=False, images="all",
        note="no chat template: images first, then the question with the option concatenated; "
             "the spec lists no published row for it"),
)}
DEFAULT = "chat-mean"


def unmatched_rows() -> list[str]:
    """Published rows no preset reproduces, listed so `seedbench presets` is complete."""
    return references.for_preset(None)


def get(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None
