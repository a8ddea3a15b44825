"""The backend contract and the registry.

A backend turns validated tasks (decoded images, text, options) into numbers,
text or images. The servicer validates every request before a backend sees it
(field checks, `<img>` count, at most `info().max_images` images, at most 64
options), so a backend never re-checks those. Backend methods run on one
device thread, never on the event loop, except `prepare`, which runs in worker
threads, several at once.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from PIL import Image

from model_server.backends.score_recipe import ImagePrep, Recipe, ScoreFeatures
from model_server.backends.settings import parse
from serving.errors import NotSupported


@dataclass(frozen=True)
class ScoreTask:
    request_id: str
    text: str  # may hold "<img>" placeholders, one per image, in order
    images: Sequence[Image.Image]  # decoded; empty for backends with needs_pixels = False
    options: Sequence[str]
    include_end_of_turn: bool = False
    raw_prompt: bool = False  # no chat template: text as sent, each option appended directly
    image_sha256: Sequence[str] = ()  # of the encoded bytes, always set
    # A reference interface's rules (window, image text, tokenisation, affixes); None: the
    # request used none of them. Checked against the backend's score_features.
    recipe: Recipe | None = None
    image_prep: ImagePrep = ImagePrep()  # how images become pixels

    @property
    def follows_recipe(self) -> bool:
        """True when the request asked for anything beyond the original fields."""
        return self.recipe is not None or self.image_prep != ImagePrep()


@dataclass(frozen=True)
class OptionScore:
    logprob_sum: float
    num_tokens: int


@dataclass(frozen=True)
class Unparsed:
    """No option could be ranked for this task (e.g. none of the letters among a remote
    API's top first tokens): recorded as unparsed, never decided by a tie."""

    reason: str


@dataclass
class Usage:
    """What a remote call cost: HTTP requests, retries among them, and the API's token counts."""

    requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, other: Usage) -> None:
        self.requests += other.requests
        self.retries += other.retries
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens


T = TypeVar("T")


@dataclass(frozen=True)
class Metered(Generic[T]):
    """A result with what it cost upstream; backends that call paid APIs return these."""

    value: T
    usage: Usage


def unmeter(result: Any) -> tuple[Any, Usage | None]:
    return (result.value, result.usage) if isinstance(result, Metered) else (result, None)


# What `score` returns for one task: its options' scores (or Unparsed), possibly Metered,
# or the error of that task alone.
ScoreResult = list[OptionScore] | Unparsed | Metered | Exception


@dataclass(frozen=True)
class GenerateTask:
    request_id: str
    text: str
    images: Sequence[Image.Image]
    max_new_tokens: int = 32
    temperature: float = 0.0
    seed: int = 0
    deadline: float | None = None  # time.monotonic() by which the client wants the answer


# What `generate_batch` returns for one task: its text, possibly Metered, or its error.
GenerateResult = str | Metered | Exception


@dataclass(frozen=True)
class GenerateImageTask:
    request_id: str
    text: str
    images: Sequence[Image.Image]
    seed: int = 0
    with_text: bool = False
    max_new_tokens: int = 32
    deadline: float | None = None  # time.monotonic() by which the client wants the answer


@dataclass(frozen=True)
class GeneratedImage:
    png: bytes
    text: str = ""


@dataclass
class BackendInfo:
    name: str
    backend: str
    fingerprint: str
    can_score: bool = True
    can_generate: bool = False
    can_generate_image: bool = False
    max_images: int = 16
    # What Score honours (Info.capabilities.score_features): decisions are made from these.
    score_features: ScoreFeatures = field(default_factory=ScoreFeatures)
    context_tokens: int = 0  # prompt + answer tokens the model takes; 0: not known
    max_option_tokens: int = 0  # options x longest option's tokens per Score; 0: no limit
    details: dict[str, str] = field(default_factory=dict)  # informational only


# The backend's own form of a prepared score task (ScoreTask unless it overrides prepare).
Prepared = TypeVar("Prepared")


class Backend(abc.ABC, Generic[Prepared]):
    """What every backend provides; optional capabilities default to UNIMPLEMENTED.

    A backend is built as `Backend(model, settings)`: `model` is `--model`,
    `settings` an instance of the frozen dataclass its registry entry names
    (declared with `settings.setting(default, help)`, converted by settings.parse).
    """

    # False: `score` never looks at pixels. The server then only checks each image's
    # file signature and hands ScoreTask.images empty (image_sha256 still set).
    needs_pixels: ClassVar[bool] = True

    # False: the backend computes nothing locally (a remote API), so the server runs its
    # generate/generate_image calls concurrently in worker threads instead of queueing
    # them on the one device thread; the backend bounds its own concurrency.
    device_bound: ClassVar[bool] = True

    def check(self) -> None:
        """Called once by the server after loading, before it reports SERVING: verify what
        the backend depends on outside the process. Raise ValueError (one line) to stop
        the start. The default checks nothing."""

    @abc.abstractmethod
    def info(self) -> BackendInfo:
        """Name, fingerprint (results are keyed by it), capabilities and score features,
        limits and informational details; called once after loading, its answer is cached."""

    def admit(self, task: ScoreTask | GenerateTask | GenerateImageTask) -> None:
        """Refuse a validated task that exceeds the model's own limits, before it queues.

        Runs in a worker thread (thread-safe), before `prepare`. Raise TooLarge
        (RESOURCE_EXHAUSTED) naming the limit and the value: e.g. prompt tokens
        after image expansion over the context length, or options x option
        tokens over a per-request budget. Backends without such limits (the
        default) admit everything the servicer's own checks passed.
        """

    def prepare(self, task: ScoreTask) -> Prepared:
        """CPU-side work for one validated score task, ahead of the device.

        Runs in a worker thread (several concurrently, so it must be thread-safe)
        while the device thread works on earlier batches. Returns the object
        `score` will receive for this task; the server never looks inside it.
        The default hands the task through unchanged. Errors raised here fail
        this task alone, with their status code.
        """
        return task

    @abc.abstractmethod
    def score(self, tasks: Sequence[Prepared]) -> list[ScoreResult]:
        """Rank the options of each task; one entry per task, in the order given.

        Each task is `prepare(ScoreTask)`'s result. For each option the entry
        holds an OptionScore, options in request order:

        - logprob_sum: the sum, over the option's tokens, of log p(token | every
          token before it), where the sequence is the prompt as the model reads
          it (for chat models: the chat template's user turn with the images and
          the text, then the assistant turn holding the option) followed by the
          option. The option's tokens start at the first token where the
          tokenisation of prompt + option departs from the tokenisation of the
          prompt alone (a token merged across the boundary counts as the
          option's) and end with the option's last token; with
          include_end_of_turn the one end-of-turn token after it counts too.
        - num_tokens: how many tokens were summed, so a client can normalise.

        With `task.recipe` the sequence, the image text, the tokenisation and the
        window are the recipe's (score_recipe.Recipe; protos/seedbench.proto says
        each field's meaning), and `task.image_prep` says how images become pixels.
        The servicer passes only what `info().score_features` offers, so a
        backend never sees a recipe it did not advertise.

        A backend that scores differently says so in `info().score_features`
        (e.g. a remote API's first-token letter log-probs: option_texts=False,
        num_tokens = 1).

        An entry may instead be `Unparsed(reason)` when no option can be ranked
        (never a guess), `Metered(scores, usage)` when the scores cost upstream
        calls, or an exception (a ServiceError; anything else maps to INTERNAL):
        that task fails alone and the others keep their results.
        Raising from `score` fails every task of the batch; keep it for failures
        that really are the whole batch's (e.g. the device ran out of memory).
        No task is ever re-run by the caller.
        """

    def generate(self, task: GenerateTask) -> str | Metered:
        """Greedy (temperature 0) or seeded sampled text after the prompt, at most
        task.max_new_tokens tokens, special tokens removed (Metered when it cost
        upstream calls). A long generation stops at task.deadline (the client has
        gone by then) where the backend can."""
        raise NotSupported(f"backend {type(self).__name__} cannot generate text")

    def prepare_generate(self, task: GenerateTask) -> Any:
        """CPU-side work for one admitted generation task (task.deadline set), ahead of the
        device: like `prepare`, in worker threads, thread-safe; its result goes to
        `generate_batch` unchanged. The default hands the task through."""
        return task

    def generate_batch(self, tasks: Sequence[Any]) -> list[GenerateResult]:
        """Generate for a batch of `prepare_generate` results on the device thread: one
        entry per task, in order, its text (as `generate` defines it) or its error.

        Each entry must be exactly what `generate` would give that task alone; a task
        cut at its deadline fails alone (DeadlinePassed) while the others finish.
        The default runs `generate` one task after another.
        """
        return each_or_error(tasks, self.generate)

    def generate_image(self, task: GenerateImageTask) -> GeneratedImage | Metered:
        """One PNG for the prompt, byte-identical for the same request and seed where the
        model allows (Metered when it cost upstream calls)."""
        raise NotSupported(f"backend {type(self).__name__} cannot generate images")

    def generate_image_batch(self, tasks: Sequence[GenerateImageTask]) -> list[Any]:
        """`generate_image` for a batch on the device thread: one entry per task, in order,
        its image or its error, each exactly what the task gets alone. The default runs
        `generate_image` one task after another."""
        return each_or_error(tasks, self.generate_image)


def each_or_error(tasks: Sequence[Any], run_one: Callable[[Any], Any]) -> list[Any]:
    """`run_one` over tasks one by one, an exception standing in for the result of a task
    that failed (scores, generations)."""
    out: list[Any] = []
    for t in tasks:
        try:
            out.append(run_one(t))
        except Exception as exc:  # noqa: BLE001 - that task's result, mapped by the servicer
            out.append(exc)
    return out


@dataclass(frozen=True)
class Entry:
    """A registered backend: lazy "module:attr" references, so torch loads only when needed."""

    backend: str
    settings: str  # a torch-free module, so settings are checked before any model code loads
    about: str
    model: str = ""  # what --model names, when the backend needs one


_REGISTRY: dict[str, Entry] = {
    "hf": Entry("model_server.backends.hf:HFBackend",
                "model_server.backends.local_settings:HFSettings",
                "transformers vision-language models", "a model directory"),
    "janus": Entry("model_server.backends.janus:JanusBackend",
                   "model_server.backends.local_settings:JanusSettings",
                   "Janus: scores options, writes text and generates images",
                   "a model directory"),
    "openai": Entry("model_server.backends.remote:OpenAIBackend",
                    "model_server.backends.remote_settings:OpenAISettings",
                    "an OpenAI-compatible HTTP API; a composite model with image_base_url",
                    "the remote model id"),
    "vllm": Entry("model_server.backends.remote:VLLMBackend",
                  "model_server.backends.remote_settings:VLLMSettings",
                  "a vLLM OpenAI-compatible server", "the remote model id"),
    "synthetic": Entry("model_server.backends.synthetic:SyntheticBackend",
                       "model_server.backends.synthetic:SyntheticSettings",
                       "hash-derived scores, no model (any name)"),
    "scripted": Entry("model_server.backends.scripted:ScriptedBackend",
                      "model_server.backends.settings:NoSettings",
                      "a test double driven by a JSON script", "a script file"),
}


def _load(ref: str) -> Any:
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


def available() -> list[str]:
    return sorted(_REGISTRY)


def entry(key: str) -> Entry:
    try:
        return _REGISTRY[key]
    except KeyError:
        raise ValueError(f"unknown backend {key!r}; choose from {', '.join(available())}") from None


def settings_class(key: str) -> type:
    return _load(entry(key).settings)


def parse_settings(key: str, raw: dict[str, Any]) -> Any:
    """The backend's settings from KEY=VALUE pairs; SettingsError names a bad or unknown key."""
    return parse(settings_class(key), raw, backend=key)


def create(key: str, model: str = "", settings: Any = None, **raw: Any) -> Backend:
    """Build backend `key` for `model`, from parsed settings or raw KEY=VALUE settings."""
    if settings is None:
        settings = parse_settings(key, raw)
    elif raw:
        raise TypeError("pass settings or raw settings, not both")
    return _load(entry(key).backend)(model, settings)
