"""Remote models behind the ModelService: OpenAI-compatible APIs and vLLM servers.

The model runs elsewhere; this backend translates tasks into API calls, so a
closed model or a vLLM deployment is evaluated through the same gRPC interface
as a local one. Generate (chat completions with the images as content parts)
is the way to evaluate a chat API; Score offers the two log-probability modes
of remote_scoring.py. Settings are declared in remote_settings.py; calls,
retries, usage counting and redaction live in remote_client.py. A composite
model pairs the chat model with an images endpoint elsewhere (image_base_url).
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import os
import threading
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from model_server.backends.base import (
    Backend,
    BackendInfo,
    GeneratedImage,
    GenerateImageTask,
    GenerateTask,
    Metered,
    ScoreResult,
    ScoreTask,
)
from model_server.backends.chat_prompt import user_content
from model_server.backends.remote_client import (
    MalformedAnswer,
    Redactor,
    RemoteClient,
    install_log_redaction,
)
from model_server.backends.remote_scoring import EOT_REFUSAL, MODES, first_choice
from model_server.backends.remote_settings import OpenAISettings, VLLMSettings
from model_server.fingerprint import fingerprint_text
from serving.errors import InvalidRequest, NotSupported, TooLarge
from serving.images import PLACEHOLDER

log = logging.getLogger(__name__)

def encode_image(im: Image.Image, fmt: str) -> str:
    """A data URL for one image; PNG by default so the remote sees exactly the decoded pixels."""
    buf = io.BytesIO()
    if fmt == "jpeg":
        im.convert("RGB").save(buf, format="JPEG", quality=95)
        mime = "image/jpeg"
    else:
        im.save(buf, format="PNG")
        mime = "image/png"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode()}"


def content_parts(text: str, image_urls: Sequence[dict]) -> list[dict]:
    """OpenAI chat content: the local chat template's user turn (chat_prompt.user_content),
    each image part carrying its URL, in order."""
    urls = iter(image_urls)
    return [{"type": "image_url", "image_url": next(urls)} if part["type"] == "image" else part
            for part in user_content(text, len(image_urls))]


def to_png(raw: bytes) -> bytes:
    """PNG bytes as the protocol promises, converting whatever format the API returned."""
    if raw.startswith(b"\x89PNG\r\n\x1a\n"):
        return raw
    try:
        im = Image.open(io.BytesIO(raw))
        im.load()
    except Exception as exc:
        raise MalformedAnswer(f"the remote returned an image that cannot be decoded ({exc})") \
            from None
    buf = io.BytesIO()
    im.convert("RGBA" if "A" in im.getbands() else "RGB").save(buf, format="PNG")
    return buf.getvalue()


def read_api_key(key_file: str, key_env: str) -> tuple[str, str]:
    """(key, where it came from): the file's first line if set, else the variable; "" if none."""
    if key_file:
        try:
            lines = Path(key_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ValueError(f"api_key_file {key_file!r} cannot be read ({exc.strerror})") from None
        return (lines[0].strip() if lines else ""), f"file {key_file}"
    return (os.environ.get(key_env, "") if key_env else ""), f"environment variable {key_env}"


def check_base_url(url: str) -> tuple[str, str]:
    """(url without a trailing slash, host) for an http(s) URL; ValueError otherwise."""
    url = url.rstrip("/")
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"base_url must be an http(s) URL, got {url!r}")
    return url, parsed.netloc.lower()


class OpenAIBackend(Backend[ScoreTask]):
    """A model behind an OpenAI-compatible HTTP API."""

    backend_key = "openai"
    settings_class: type[OpenAISettings] = OpenAISettings
    base_url_env = "OPENAI_BASE_URL"  # consulted when base_url is empty
    default_base_url = "https://api.openai.com/v1"
    device_bound = False  # nothing runs locally: Generate calls run concurrently

    def __init__(self, model: str, settings: OpenAISettings | None = None):
        s = settings or self.settings_class()
        if not model:
            raise ValueError("--model must name the remote model id")
        self.model, self.settings = model, s
        self.base_url, self.host = check_base_url(
            s.base_url or (os.environ.get(self.base_url_env, "") if self.base_url_env else "")
            or self.default_base_url)
        api_key, source = read_api_key(s.api_key_file, s.api_key_env)
        image_key, image_source = api_key, source
        if s.image_api_key_file or s.image_api_key_env:
            image_key, image_source = read_api_key(s.image_api_key_file, s.image_api_key_env)
        self.redact = Redactor([api_key, image_key])
        install_log_redaction(self.redact)
        if not api_key:
            log.info("no API key (%s): requests carry no Authorization header", source)
        self.client = self._client(self.base_url, api_key, source)
        self.image_client = self.client
        self.image_host = self.host
        if s.image_base_url:
            image_url, self.image_host = check_base_url(s.image_base_url)
            self.image_client = self._client(image_url, image_key, image_source)
        self.score_mode = s.score_mode
        self.mode = MODES[s.score_mode](s, model, self.client, self._score_messages)
        self.capabilities = s.capability_set()
        self._warned_image_inputs = threading.Event()

    def check(self) -> None:
        """The server's start-up check: each API answers and takes its key (one GET)."""
        if self.settings.check_at_start:
            for client in {self.client, self.image_client}:
                client.probe()

    def _client(self, url: str, key: str, source: str) -> RemoteClient:
        s = self.settings
        return RemoteClient(url, key, source, timeout_s=s.timeout_s, max_retries=s.max_retries,
                            backoff_s=s.backoff_s, concurrency=s.concurrency,
                            question_s=s.question_timeout_s, redact=self.redact)

    # -- description ---------------------------------------------------------------------------

    def fingerprint(self) -> str:
        """Identity of what answers: host, model id and every setting that changes scores.

        The remote's weights are not visible: the same id can change behind it,
        so `revision` lets an operator force a new fingerprint when it does.
        """
        return fingerprint_text(self.host, self.model, self.score_mode, self.settings.revision,
                                *self.mode.fingerprint_parts())

    def info(self) -> BackendInfo:
        s = self.settings
        details = {
            "remote_host": self.host, "remote_model": self.model, "score_mode": self.score_mode,
            "concurrency": f"adaptive, at most {s.concurrency}", "image_format": s.image_format,
            "upstream_calls": f"per question: its requests + at most {s.max_retries} retries",
            "generate_method": "chat/completions, images as content parts in <img> order",
            "weights": "remote: may change behind the same model id", **self.mode.details(),
        }
        if "generate_image" in self.capabilities:
            details["generate_image"] = (f"/v1/images/generations at {self.image_host}, model "
                                         f"{s.image_model or self.model}")
            details["generate_image_inputs"] = ("ignored: the images endpoint is text-to-image, "
                                                "it takes no input image")
        if s.revision:
            details["revision"] = s.revision
        return BackendInfo(
            name=self.model, backend=self.backend_key, fingerprint=self.fingerprint(),
            can_score="score" in self.capabilities, can_generate="generate" in self.capabilities,
            can_generate_image="generate_image" in self.capabilities,
            max_images=s.max_images, score_features=self.mode.features(), details=details,
        )

    # -- helpers -------------------------------------------------------------------------------

    def _require(self, cap: str) -> None:
        if cap not in self.capabilities:
            raise NotSupported(f"{cap} is not enabled for remote model {self.model!r} "
                               f"(settings: capabilities={','.join(sorted(self.capabilities))})")

    def _chat_messages(self, text: str, images: Sequence[Image.Image]) -> list[dict]:
        urls = []
        for im in images:
            part = {"url": encode_image(im, self.settings.image_format)}
            if self.settings.image_detail:
                part["detail"] = self.settings.image_detail
            urls.append(part)
        return [{"role": "user", "content": content_parts(text, urls)}]

    def _score_messages(self, task: ScoreTask) -> list[dict]:
        return self._chat_messages(task.text, task.images)

    def admit(self, task: ScoreTask | GenerateTask | GenerateImageTask) -> None:
        """What can be refused without calling the API, before the request queues: a
        capability the remote lacks, a score task its mode cannot score, max_new_tokens
        over max_output_tokens, text over max_prompt_chars (images per prompt are
        checked by the server against max_images). A refused request costs no HTTP call."""
        s = self.settings
        if isinstance(task, ScoreTask):
            self._require("score")
            self._check(task)
        elif isinstance(task, GenerateImageTask):
            self._require("generate_image")
            if task.with_text:
                self._require("generate")
        else:
            self._require("generate")
        if s.max_prompt_chars and len(task.text) > s.max_prompt_chars:
            raise TooLarge(f"prompt.text: {len(task.text)} characters, over this model's limit "
                           f"of {s.max_prompt_chars} (max_prompt_chars)")
        if isinstance(task, ScoreTask):
            chars = len(task.text) + sum(len(o) for o in task.options)
            if s.max_prompt_chars and chars > s.max_prompt_chars:
                raise TooLarge(f"options: {len(task.options)} options bring the request to "
                               f"{chars} characters, over this model's limit of "
                               f"{s.max_prompt_chars} (max_prompt_chars)")
            return
        writes_text = not isinstance(task, GenerateImageTask) or task.with_text
        if writes_text and s.max_output_tokens and task.max_new_tokens > s.max_output_tokens:
            raise TooLarge(f"max_new_tokens: {task.max_new_tokens} is over this remote model's "
                           f"limit of {s.max_output_tokens} (max_output_tokens)")

    def _check(self, task: ScoreTask) -> None:
        if task.include_end_of_turn:
            raise InvalidRequest("include_end_of_turn", f"{EOT_REFUSAL}; send "
                                 "include_end_of_turn=false")
        self.mode.check(task)

    # -- score ---------------------------------------------------------------------------------

    def score(self, tasks: Sequence[ScoreTask]) -> list[ScoreResult]:
        """The calls of the whole batch run at once (the client bounds how many are in
        flight). A task that fails its checks makes no call; a call that fails after the
        client's retries fails its own task only. Each result carries its usage."""
        self._require("score")

        async def one(t: ScoreTask) -> ScoreResult:
            budget = self.client.budget()
            try:
                self._check(t)
                return Metered(await self.mode.score(t, budget), budget.usage)
            except Exception as exc:  # noqa: BLE001 - this task's result, redacted
                return self.redact.error(exc)

        async def batch() -> list[ScoreResult]:
            return list(await asyncio.gather(*(one(t) for t in tasks)))

        return self.client.run(batch())

    # -- generation ----------------------------------------------------------------------------

    async def _chat_text(self, text: str, images: Sequence[Image.Image], max_tokens: int,
                         temperature: float, seed: int, budget) -> str:
        body = {"model": self.model, "messages": self._chat_messages(text, images),
                "temperature": temperature, self.settings.max_tokens_field: max_tokens,
                "seed": seed}

        def read(answer: dict) -> str:
            message = first_choice(answer).get("message")
            if not isinstance(message, dict):
                raise MalformedAnswer("the choice has no message")
            return message.get("content") or ""

        return self.redact(await self.client.call("chat/completions", body, budget, read))

    def generate(self, task: GenerateTask) -> Metered:
        """Chat completion of the prompt, images in `<img>` order; greedy unless the request
        sets a temperature."""
        self._require("generate")
        return self._metered(self.client, lambda budget: self._chat_text(
            task.text, task.images, task.max_new_tokens, task.temperature, task.seed, budget))

    def generate_image(self, task: GenerateImageTask) -> Metered:
        """Text-to-image via /v1/images/generations (on image_base_url when set); input
        images are ignored, as that endpoint takes none."""
        self._require("generate_image")
        if task.with_text:
            self._require("generate")
        if task.images and not self._warned_image_inputs.is_set():
            self._warned_image_inputs.set()
            log.warning("generate_image: input images are ignored by /v1/images/generations")
        return self._metered(self.image_client, lambda budget: self._image(task, budget))

    async def _image(self, task: GenerateImageTask, budget) -> GeneratedImage:
        s = self.settings
        body = {"model": s.image_model or self.model,
                "prompt": task.text.replace(PLACEHOLDER, " ").strip(), "n": 1}
        if s.image_response_format:
            body["response_format"] = s.image_response_format
        if s.image_size:
            body["size"] = s.image_size

        def read(answer: dict) -> bytes:
            data = answer.get("data") or []
            if not data or not isinstance(data[0], dict):
                raise MalformedAnswer("the images endpoint returned no image")
            if data[0].get("b64_json"):
                try:
                    return to_png(base64.b64decode(data[0]["b64_json"]))
                except ValueError as exc:
                    raise MalformedAnswer(f"b64_json does not decode ({exc})") from None
            if data[0].get("url"):
                return data[0]["url"]
            raise MalformedAnswer("the images endpoint returned neither b64_json nor url")

        png = await self.image_client.call("images/generations", body, budget, read)
        if isinstance(png, str):  # a URL to fetch
            png = to_png(await asyncio.to_thread(self._download, png))
        text = ""
        if task.with_text:
            text = await self._chat_text(task.text, task.images, task.max_new_tokens, 0.0,
                                         task.seed, budget)
        return GeneratedImage(png=png, text=text)

    def _download(self, url: str) -> bytes:
        try:
            with urllib.request.urlopen(url, timeout=self.settings.timeout_s) as r:
                return r.read()
        except (OSError, ValueError) as exc:
            raise MalformedAnswer(f"the image URL the remote returned failed: {exc}") from None

    def _metered(self, client: RemoteClient, make) -> Metered:
        budget = client.budget()
        try:
            return Metered(client.run(make(budget)), budget.usage)
        except Exception as exc:  # noqa: BLE001 - redacted and typed for the servicer
            raise self.redact.error(exc) from None


class VLLMBackend(OpenAIBackend):
    """A vLLM OpenAI-compatible server: local by default, PPL via echoed prompt
    log-probs (defaults in remote_settings.VLLMSettings)."""

    backend_key = "vllm"
    settings_class = VLLMSettings
    base_url_env = ""  # OPENAI_BASE_URL is for the generic backend and is not consulted
    default_base_url = VLLMSettings.base_url
