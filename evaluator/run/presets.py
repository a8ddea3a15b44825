"""Presets: how a question becomes a Score request, and how the scores pick an answer.

The published SEED-Bench numbers come from model interfaces that disagree on
the prompt, the scored tokens (the "window"), the reduction, the image
placement and the image preprocessing. There is no single "official" variant,
so every run names its preset: it is recorded in summary.json, run.json and
every table, and it is part of the results key. Three kinds:

- reference: the interface's exact recipe, owned here and not by the served
  model's chat template: the prompt text, where images go, the window, the
  reduction and the preprocessing, sent as typed ScoreRequest fields. A server
  that cannot do all of it is refused before any question runs (plan.py).
- adaptation: follows an interface whose architecture the served model does
  not have (an encoder-decoder interface on a decoder-only model, a model's own
  remote code); as close as the served model allows, never a reproduction.
- default: this project's own choice (the model's chat template).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from evaluator.data import benchmarks as B
from evaluator.data import references

CHAT = "chat template"
REDUCTIONS = ("mean", "sum")
IMAGE_PLACEMENTS = ("all", "first")
KINDS = ("reference", "adaptation", "default")
PLACEHOLDER = "<img>"
# The scored-token rules and the image texts, as the protocol names them (ScoringWindow,
# ImageText, PromptTokenization); the evaluator sends the enum by these names.
WINDOWS = ("option-tokens", "last-option-length", "length-difference")
IMAGE_TEXTS = ("template-marker", "model-token")
TOKENIZATIONS = ("whole", "split-at-images")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
LLAVA_V1_SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. "
                   "The assistant gives helpful, detailed, and polite answers to the human's "
                   "questions.")


@dataclass(frozen=True)
class ImageRecipe:
    """How images become pixels: "model-processor" (the served model's own), or "squash"."""

    mode: str = "model-processor"
    size: int = 0  # squash side; 0: the vision tower's input size
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def describe(self) -> str:
        if self.mode == "model-processor":
            return "the served model's own image processor"
        side = f"{self.size}x{self.size}" if self.size else "the vision tower's input size"
        return (f"squash resize to {side} (aspect ratio not kept, no crop), BICUBIC, /255, "
                f"mean {list(self.mean)}, std {list(self.std)}")


MODEL_PROCESSOR = ImageRecipe()
CLIP_SQUASH = ImageRecipe("squash", 0, CLIP_MEAN, CLIP_STD)


@dataclass(frozen=True)
class Preset:
    name: str
    interface: str  # the reference interface it follows
    prompt: str  # CHAT, or a raw template holding "{question}" sent without any chat template
    reduction: str  # "mean" or "sum" of the option's token log-probabilities
    end_token: bool  # the EOS / end-of-turn token after the option is scored too
    images: str  # without <img> in the question: "all" images, or only the "first"
    option_prefix: str = ""  # raw prompts: what goes between the prompt and each option
    option_suffix: str = ""  # raw prompts: what follows each option in the sequence ("</s>")
    letter_suffix: str = ""  # scored after each letter of the listed options ("A." for ".")
    methods: tuple[str, ...] = ()  # the answer methods its interface used; empty: any
    kind: str = "default"
    # Raw prompts: what each image sent becomes in the text; "{n}" is its 1-based number.
    # image_lead goes before a question without <img>, once per image; image_inline replaces
    # each <img> of a question that has them. Empty lead: the server places the images.
    image_lead: str = ""
    image_inline: str = PLACEHOLDER
    window: str = "option-tokens"
    image_text: str = "template-marker"
    tokenization: str = "whole"
    preprocessing: ImageRecipe = field(default=MODEL_PROCESSOR)
    note: str = ""

    def __post_init__(self):
        for value, allowed, what in ((self.reduction, REDUCTIONS, "reduction"),
                                     (self.images, IMAGE_PLACEMENTS, "images"),
                                     (self.kind, KINDS, "kind"), (self.window, WINDOWS, "window"),
                                     (self.image_text, IMAGE_TEXTS, "image_text"),
                                     (self.tokenization, TOKENIZATIONS, "tokenization")):
            if value not in allowed:
                raise ValueError(f"preset {self.name}: {what} must be one of {allowed}")
        if self.prompt != CHAT and "{question}" not in self.prompt:
            raise ValueError(f"preset {self.name}: a raw prompt template needs {{question}}")
        if self.prompt == CHAT and self.uses_recipe_fields:
            raise ValueError(f"preset {self.name}: window, image text, tokenisation, option "
                             "affixes and image leads apply to raw prompts only")

    @property
    def raw(self) -> bool:
        """True: the prompt is sent without the model's chat template (Score.raw_prompt)."""
        return self.prompt != CHAT

    @property
    def uses_recipe_fields(self) -> bool:
        """True when the preset needs ScoreRequest fields beyond text, options and the flags."""
        return (self.window != "option-tokens" or self.image_text != "template-marker"
                or self.tokenization != "whole" or bool(self.option_suffix)
                or self.image_lead != "" or self.image_inline != PLACEHOLDER)

    @property
    def affix_fields(self) -> bool:
        """True: option_prefix/option_suffix travel as their own fields (the window counts the
        bare option); else the prefix is written into each option, as every server reads it."""
        return self.window == "last-option-length" or bool(self.option_suffix)

    def text(self, body: str, n_images: int = 0) -> str:
        """The request text for a question body (the question, or the question + listed
        options) sent with `n_images` images: images written where the interface wrote them."""
        if not self.raw:
            return body
        if self.image_lead and PLACEHOLDER not in body:
            body = "".join(self.image_lead.replace("{n}", str(k + 1))
                           for k in range(n_images)) + body
        elif self.image_inline != PLACEHOLDER:
            pieces = body.split(PLACEHOLDER)
            body = pieces[0] + "".join(self.image_inline.replace("{n}", str(k + 1)) + piece
                                       for k, piece in enumerate(pieces[1:]))
        return self.prompt.replace("{question}", body)

    def options(self, options: Sequence[str]) -> list[str]:
        """The continuations as sent: a raw prompt is followed by the option directly."""
        if not self.raw or self.affix_fields:
            return list(options)
        return [self.option_prefix + o for o in options]

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
        """The published rows it is meant to reproduce (or, for an adaptation, approximate):
        those of references.json naming it."""
        return references.for_preset(self.name)

    def record(self) -> dict:
        """What summary.json and run.json say about the preset (JSON types: lists, not tuples)."""
        return json.loads(json.dumps({**asdict(self), "reproduces": self.reproduces}))

    @property
    def benchmarks(self) -> list[str]:
        """The benchmarks whose definition lists this preset as one of its interfaces."""
        return [b.name for b in B.BENCHMARKS.values() if self.name in b.presets]

    def describe(self) -> list[str]:
        """The preset as `seedbench presets` lists it: what is sent and what is scored."""
        if self.raw:
            joint = (f"then {self.option_prefix!r} + option + {self.option_suffix!r}"
                     if self.option_prefix or self.option_suffix else "then the option directly")
            prompt = f"raw {self.prompt!r} (no chat template), {joint}"
        else:
            prompt = "the model's chat template (user turn: images + question; assistant: option)"
        window = {"option-tokens": "the option's tokens" + (
                      " + " + ("EOS" if self.raw else "the end-of-turn token")
                      if self.end_token else ""),
                  "last-option-length": "the last len(tokenizer(option).input_ids) tokens of the "
                                        "whole sequence (BOS counted: the option + the token after)",
                  "length-difference": "the last len(tokens(prompt+option)) - len(tokens(prompt)) "
                                       "tokens"}[self.window]
        if self.letter_suffix:
            window += f" (letters scored as 'A{self.letter_suffix}')"
        if self.image_lead:
            placement = f"{self.image_lead!r} per image before the question"
        else:
            placement = "all, before the text (placed by the server)"
        if self.images == "first":
            placement = "the first image only, " + placement.replace(" per image", "")
        inline = ("each <img> becomes " + repr(self.image_inline) if self.raw else
                  "each <img> becomes the template's image")
        image_text = {"template-marker": "the chat template's image marker",
                      "model-token": "the model's bare image token"}[self.image_text]
        kind = {"reference": "reference (the interface's exact recipe; refused where the "
                             "server cannot do all of it)",
                "adaptation": "adaptation (the interface's architecture is not the served "
                              "model's: approximates it, does not reproduce it)",
                "default": "this project's default, no published interface"}[self.kind]
        rows = self.reproduces or ["none"]
        return [s for s in (
            f"{self.name}{' (default)' if self.name == DEFAULT else ''}",
            f"  kind:                 {kind}",
            f"  interface:            {self.interface}",
            f"  prompt:               {prompt}",
            f"  scored tokens:        {window}",
            f"  reduction:            {self.reduction}",
            f"  images without <img>: {placement}",
            f"  images with <img>:    {inline}; written as {image_text}"
            + (", text tokenised piece by piece around images" if self.tokenization != "whole"
               else ""),
            f"  preprocessing:        {self.preprocessing.describe()}",
            f"  methods:              {', '.join(self.methods) if self.methods else 'any'}",
            f"  benchmarks:           {', '.join(self.benchmarks) or 'none'}",
            f"  note:                 {self.note}" if self.note else None,
            ("  meant to reproduce:   " if self.kind == "reference" else "  published rows:     ")
            + ("\n" + " " * 24).join(rows),
        ) if s is not None]


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(
        name="chat-mean", interface="this project's default (no published interface)",
        prompt=CHAT, reduction="mean", end_token=False, images="all",
        note="the model's own chat template, option tokens only, mean; comparable between "
             "models run here, not to a published row"),
    Preset(
        name="seed1-instructblip", kind="adaptation",
        interface="SEED-Bench-1 default interface (InstructBLIP via LAVIS, Flan-T5)",
        prompt="Question: {question}\nAnswer:", option_prefix=" ", reduction="sum",
        end_token=True, images="all",
        note="the interface scored the option as the Flan-T5 decoder's target (+ </s>) given "
             "the prompt in the encoder; a decoder-only model reads the prompt, then the "
             "option and its EOS. All images of a question are sent"),
    Preset(
        name="seed1-instructblip-hf", kind="adaptation",
        interface="SEED-Bench-1 HF InstructBLIP interface (transformers, Flan-T5)",
        prompt="Question: {question}\nAnswer:", option_prefix=" ", reduction="mean",
        end_token=True, images="all",
        note="as seed1-instructblip with a mean; the interface's 224x224 squash resize is not "
             "applied (the served model's processor is); no published row names it"),
    Preset(
        name="llava-1.5", kind="reference", methods=("ppl",),
        interface="SEED-Bench-2 LLaVA-1.5 interface (llava_v1 conversation)",
        prompt=LLAVA_V1_SYSTEM + " USER: {question} ASSISTANT:", option_prefix=" ",
        option_suffix="</s>", reduction="mean", end_token=False, images="first",
        image_lead="<img>\n", image_inline="<img>", window="last-option-length",
        image_text="model-token", tokenization="split-at-images", preprocessing=CLIP_SQUASH,
        note="the interface's own conversation text, never the served model's chat template; "
             "one image before the question (the first image or frame) unless <img> places "
             "them; needs a LLaVA-architecture model (bare image token, squash preprocessing)"),
    Preset(
        name="internlm-xcomposer", kind="adaptation",
        interface="SEED-Bench-2 InternLM-XComposer interface", prompt=CHAT, reduction="mean",
        end_token=False, images="all", letter_suffix=".", methods=("letter",),
        note="the options listed in the prompt and each letter scored with its full stop "
             "(\"A.\"), mean, through the served model's chat template: the interface's own "
             "prompt and image embedding belong to InternLM-XComposer's remote code; --method "
             "letter only; the spec lists no published row for it"),
    Preset(
        name="qwen-vl-chat", kind="adaptation", interface="SEED-Bench-2 Qwen-VL-Chat interface",
        prompt="{question}", option_prefix="", reduction="mean", end_token=False, images="all",
        image_lead="Picture {n}: <img>\n", image_inline="Picture {n}: <img>\n",
        window="length-difference",
        note="no chat template: 'Picture n: ' + image + newline per image, then the question "
             "with the option concatenated; the interface's own image tokens and 448x448 "
             "resize belong to Qwen-VL's remote code (the served model's image marker and "
             "processor stand in); the spec lists no published row for it"),
)}
DEFAULT = "chat-mean"


def unmatched_rows() -> list[str]:
    """Published rows no preset reproduces, listed so `seedbench presets` is complete."""
    return references.for_preset(None)


def listing() -> str:
    """`seedbench presets`: every preset as it is sent and scored, then unmatched rows."""
    lines = ["Presets (--preset NAME). Results under different presets are not comparable.", ""]
    for p in PRESETS.values():
        lines += [*p.describe(), ""]
    lines += [f"Published row without a preset: {row}" for row in unmatched_rows()]
    return "\n".join(lines)


def get(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None
