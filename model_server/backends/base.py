"""The backend protocol and registry.

A backend turns validated tasks (decoded images, text, options) into numbers or
images. It is called from one worker thread, never from the event loop, and
receives score tasks in batches so it can use the device well.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image

from model_server.errors import NotSupported


@dataclass(frozen=True)
class ScoreTask:
    request_id: str
    text: str  # may hold "<img>" placeholders, one per image, in order
    images: Sequence[Image.Image]  # decoded; empty for backends with needs_pixels = False
    options: Sequence[str]
    include_end_of_turn: bool = False
    raw_prompt: bool = False  # no chat template: text as sent, each option appended directly
    image_sha256: Sequence[str] = ()  # of the encoded bytes, always set
    prepared: object = None  # what the backend's prepare() computed ahead of the device


@dataclass(frozen=True)
class OptionScore:
    logprob_sum: float
    num_tokens: int


@dataclass(frozen=True)
class GenerateTask:
    request_id: str
    text: str
    images: Sequence[Image.Image]
    max_new_tokens: int = 32
    temperature: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class GenerateImageTask:
    request_id: str
    text: str
    images: Sequence[Image.Image]
    seed: int = 0
    with_text: bool = False
    max_new_tokens: int = 32


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
    details: dict[str, str] = field(default_factory=dict)


class Backend(Protocol):
    def info(self) -> BackendInfo: ...

    def prepare(self, task: ScoreTask) -> ScoreTask:
        """CPU-side work for one task, run in a worker thread before batching (may return
        the task with `prepared` set), so it overlaps the device's work on other batches."""

    def score(self, tasks: Sequence[ScoreTask]) -> list[list[OptionScore]]:
        """Score every option of every task; one inner list per task, options in order."""

    def generate(self, task: GenerateTask) -> str: ...

    def generate_image(self, task: GenerateImageTask) -> GeneratedImage: ...


class BaseBackend:
    """Defaults for optional capabilities: UNIMPLEMENTED."""

    # False: scoring never looks at pixels, so the server only checks that each
    # image is a recognisable image file and skips decoding it.
    needs_pixels = True

    def prepare(self, task: ScoreTask) -> ScoreTask:
        return task

    def generate(self, task: GenerateTask) -> str:
        raise NotSupported(f"backend {type(self).__name__} cannot generate text")

    def generate_image(self, task: GenerateImageTask) -> GeneratedImage:
        raise NotSupported(f"backend {type(self).__name__} cannot generate images")


_REGISTRY: dict[str, str | Callable[..., Backend]] = {
    # key -> "module:factory", imported on first use so torch loads only when needed
    "hf": "model_server.backends.hf:HFBackend",
    "synthetic": "model_server.backends.synthetic:SyntheticBackend",
    "janus": "model_server.backends.janus:JanusBackend",
    "openai": "model_server.backends.remote:OpenAIBackend",
    "vllm": "model_server.backends.remote:VLLMBackend",
    "scripted": "model_server.backends.scripted:ScriptedBackend",
}


def register(key: str, factory: str | Callable[..., Backend]) -> None:
    """Add a backend: a callable, or a lazy "module:attr" reference."""
    _REGISTRY[key] = factory


def available() -> list[str]:
    return sorted(_REGISTRY)


def create(key: str, **kwargs) -> Backend:
    try:
        factory = _REGISTRY[key]
    except KeyError:
        raise ValueError(f"unknown backend {key!r}; choose from {', '.join(available())}") from None
    if isinstance(factory, str):
        module, attr = factory.split(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory(**kwargs)
