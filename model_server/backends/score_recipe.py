"""A Score request's recipe (window, image text, tokenisation, affixes, preprocessing) and
what a backend honours, as plain values: torch-free, so the servicer checks every request
against the backend's features before anything is queued.

The evaluator owns the reference interfaces and sends their recipes as typed
ScoreRequest fields; a backend either does exactly that or the request is
refused here with INVALID_ARGUMENT naming the field. Enum values are the
protocol's own (protos.seedbench_pb2), so there is one list of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protos import seedbench_pb2 as pb
from serving.errors import InvalidRequest
from serving.images import PLACEHOLDER

OPTION_TOKENS = pb.SCORING_WINDOW_OPTION_TOKENS
LAST_OPTION_LENGTH = pb.SCORING_WINDOW_LAST_OPTION_LENGTH
LENGTH_DIFFERENCE = pb.SCORING_WINDOW_LENGTH_DIFFERENCE
TEMPLATE_MARKER = pb.IMAGE_TEXT_TEMPLATE_MARKER
MODEL_TOKEN = pb.IMAGE_TEXT_MODEL_TOKEN
WHOLE = pb.PROMPT_TOKENIZATION_WHOLE
SPLIT_AT_IMAGES = pb.PROMPT_TOKENIZATION_SPLIT_AT_IMAGES
MODEL_PROCESSOR = pb.ImagePreprocessing.MODE_MODEL_PROCESSOR
SQUASH = pb.ImagePreprocessing.MODE_SQUASH
BICUBIC = pb.ImagePreprocessing.INTERPOLATION_BICUBIC
MAX_SQUASH_SIDE = 4096


def enum_name(enum, value: int) -> str:
    """The protocol's name of an enum value (for messages and logs)."""
    return enum.Name(value)


@dataclass(frozen=True)
class ImagePrep:
    """How images become pixels: the model's processor, or a squash resize + normalisation."""

    mode: int = MODEL_PROCESSOR
    size: int = 0  # squash side; 0: the vision tower's input size
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def describe(self) -> str:
        if self.mode == MODEL_PROCESSOR:
            return "the model's image processor"
        side = f"{self.size}x{self.size}" if self.size else "the vision tower's input size"
        return f"squash to {side}, BICUBIC, mean {list(self.mean)}, std {list(self.std)}"


@dataclass(frozen=True)
class Recipe:
    """How a raw prompt and its options become scored tokens (a reference interface's rules)."""

    window: int = OPTION_TOKENS
    image_text: int = TEMPLATE_MARKER
    tokenization: int = WHOLE
    option_prefix: str = ""
    option_suffix: str = ""

    def sequence(self, text: str, option: str) -> str:
        """The text whose tokens are scored for one option (placeholders still in)."""
        return text + self.option_prefix + option + self.option_suffix


@dataclass(frozen=True)
class ScoreFeatures:
    """What a backend's Score honours (Info.capabilities.score_features).

    The defaults are what every server offered before these fields existed.
    """

    option_texts: bool = True
    raw_prompt: bool = True
    end_of_turn: bool = True
    windows: frozenset[int] = frozenset({OPTION_TOKENS})
    preprocessing: frozenset[int] = frozenset({MODEL_PROCESSOR})
    image_texts: frozenset[int] = frozenset({TEMPLATE_MARKER})
    tokenizations: frozenset[int] = frozenset({WHOLE})
    option_affixes: bool = False
    unsupported: dict[str, str] = field(default_factory=dict)  # field -> why, for messages

    @classmethod
    def everything(cls) -> ScoreFeatures:
        """Every feature (test doubles and no-model backends, which compute nothing from them)."""
        return cls(windows=frozenset(pb.ScoringWindow.values()),
                   preprocessing=frozenset(pb.ImagePreprocessing.Mode.values()),
                   image_texts=frozenset(pb.ImageText.values()),
                   tokenizations=frozenset(pb.PromptTokenization.values()), option_affixes=True)

    def message(self) -> pb.ScoreFeatures:
        return pb.ScoreFeatures(
            option_texts=self.option_texts, raw_prompt=self.raw_prompt,
            end_of_turn=self.end_of_turn, scoring_windows=sorted(self.windows),
            image_preprocessing=sorted(self.preprocessing), image_texts=sorted(self.image_texts),
            tokenizations=sorted(self.tokenizations), option_affixes=self.option_affixes,
            unsupported=[pb.Unsupported(feature=k, reason=v)
                         for k, v in sorted(self.unsupported.items())])


def image_prep(msg: pb.ImagePreprocessing) -> ImagePrep:
    """The request's preprocessing, checked field by field."""
    mean, std = tuple(msg.mean), tuple(msg.std)
    if msg.mode == MODEL_PROCESSOR:
        if msg.size or mean or std:
            raise InvalidRequest("image_preprocessing", "size, mean and std apply to MODE_SQUASH "
                                 "only; MODE_MODEL_PROCESSOR uses the model's own settings")
        return ImagePrep()
    if msg.mode != SQUASH:
        raise InvalidRequest("image_preprocessing.mode", f"unknown value {msg.mode}")
    if msg.interpolation != BICUBIC:
        raise InvalidRequest("image_preprocessing.interpolation", "only BICUBIC is defined")
    if not 0 <= msg.size <= MAX_SQUASH_SIDE:
        raise InvalidRequest("image_preprocessing.size",
                             f"is {msg.size}; send 1 to {MAX_SQUASH_SIDE}, or 0 for the vision "
                             "tower's input size")
    if len(mean) != 3 or len(std) != 3:
        raise InvalidRequest("image_preprocessing.mean", "MODE_SQUASH needs 3 mean and 3 std "
                             f"values (RGB); got {len(mean)} and {len(std)}")
    if any(not s > 0 for s in std):
        raise InvalidRequest("image_preprocessing.std", "every value must be positive")
    return ImagePrep(SQUASH, msg.size, mean, std)


def _known(enum, value: int, name: str) -> None:
    if value not in enum.values():
        raise InvalidRequest(name, f"unknown value {value}")


def recipe_of(req: pb.ScoreRequest) -> tuple[Recipe | None, ImagePrep]:
    """The request's recipe (None: a request using none of the recipe fields) and its
    image preprocessing; the fields' combinations checked."""
    _known(pb.ScoringWindow, req.scoring_window, "scoring_window")
    _known(pb.ImageText, req.image_text, "image_text")
    _known(pb.PromptTokenization, req.tokenization, "tokenization")
    prep = image_prep(req.image_preprocessing)
    recipe = Recipe(req.scoring_window, req.image_text, req.tokenization, req.option_prefix,
                    req.option_suffix)
    if recipe == Recipe():
        return None, prep
    if not req.raw_prompt:
        changed = next(name for name, value, default in (
            ("scoring_window", recipe.window, OPTION_TOKENS),
            ("image_text", recipe.image_text, TEMPLATE_MARKER),
            ("tokenization", recipe.tokenization, WHOLE),
            ("option_prefix", recipe.option_prefix, ""),
            ("option_suffix", recipe.option_suffix, "")) if value != default)
        raise InvalidRequest(changed, "applies to raw prompts only (set raw_prompt): with the "
                             "chat template the template decides these")
    if req.include_end_of_turn and (recipe.window != OPTION_TOKENS or recipe.option_suffix):
        raise InvalidRequest("include_end_of_turn", "cannot be combined with option_suffix or a "
                             "scoring_window other than OPTION_TOKENS: those say which tokens "
                             "follow the option and which count")
    for name, text in (("option_prefix", recipe.option_prefix),
                       ("option_suffix", recipe.option_suffix),
                       *((f"options[{i}]", o) for i, o in enumerate(req.options))):
        if PLACEHOLDER in text:
            raise InvalidRequest(name, f"holds {PLACEHOLDER}; only prompt.text places images")
    return recipe, prep


def check_supported(req: pb.ScoreRequest, recipe: Recipe | None, prep: ImagePrep,
                    features: ScoreFeatures) -> None:
    """Refuse what this backend does not honour, naming the field and, where the backend
    said, why."""
    def refuse(name: str, what: str) -> None:
        why = features.unsupported.get(name, "")
        raise InvalidRequest(name, f"{what} is not offered by this model server"
                             + (f": {why}" if why else ""))

    if req.raw_prompt and not features.raw_prompt:
        refuse("raw_prompt", "a raw prompt")
    if req.include_end_of_turn and not features.end_of_turn:
        refuse("include_end_of_turn", "scoring the end-of-turn token")
    if prep.mode not in features.preprocessing:
        refuse("image_preprocessing", enum_name(pb.ImagePreprocessing.Mode, prep.mode))
    if recipe is None:
        return
    if recipe.window not in features.windows:
        refuse("scoring_window", enum_name(pb.ScoringWindow, recipe.window))
    if recipe.image_text not in features.image_texts:
        refuse("image_text", enum_name(pb.ImageText, recipe.image_text))
    if recipe.tokenization not in features.tokenizations:
        refuse("tokenization", enum_name(pb.PromptTokenization, recipe.tokenization))
    if (recipe.option_prefix or recipe.option_suffix) and not features.option_affixes:
        refuse("option_prefix" if recipe.option_prefix else "option_suffix", "an option affix")
