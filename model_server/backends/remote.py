"""Remote models behind the ModelService: OpenAI-compatible APIs and vLLM servers.

The model runs elsewhere; this backend translates tasks into HTTP calls, so a
closed model or a vLLM deployment is evaluated through the same gRPC interface
as a local one. Scoring is delegated to a mode (remote_scoring.py), settings
are declared in remote_settings.py, retries happen in remote_http.py only.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import threading
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from model_server.backends.base import (
    Backend,
    BackendInfo,
    GeneratedImage,
    GenerateImageTask,
    GenerateTask,
    ScoreResult,
    ScoreTask,
)
from model_server.backends.chat_prompt import user_content
from model_server.backends.remote_http import HttpClient
from model_server.backends.remote_scoring import MODES, first_choice
from model_server.backends.remote_settings import OpenAISettings, VLLMSettings
from model_server.fingerprint import fingerprint_text
from serving.errors import InvalidRequest, NotSupported, UpstreamError
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
        raise UpstreamError(f"remote returned an image that cannot be decoded ({exc})") from None
    buf = io.BytesIO()
    im.convert("RGBA" if "A" in im.getbands() else "RGB").save(buf, format="PNG")
    return buf.getvalue()


class OpenAIBackend(Backend[ScoreTask]):
    """A model behind an OpenAI-compatible HTTP API."""

    backend_key = "openai"
    settings_class: type[OpenAISettings] = OpenAISettings
    base_url_env = "OPENAI_BASE_URL"  # consulted when base_url is empty
    default_base_url = "https://api.openai.com/v1"

    def __init__(self, model: str, settings: OpenAISettings | None = None):
        s = settings or self.settings_class()
        if not model:
            raise ValueError("--model must name the remote model id")
        self.model, self.settings = model, s
        self.base_url = (s.base_url or os.environ.get(self.base_url_env, "")
                         or self.default_base_url).rstrip("/")
        parsed = urllib.parse.urlparse(self.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
        self.host = parsed.netloc.lower()
        api_key = os.environ.get(s.api_key_env, "") if s.api_key_env else ""
        if not api_key:
            log.info("environment variable %s is not set: requests carry no Authorization header",
                     s.api_key_env)
        self.http = HttpClient(self.base_url, api_key=api_key, api_key_env=s.api_key_env,
                               timeout_s=s.timeout_s, max_retries=max(0, s.max_retries),
                               backoff_s=s.backoff_s)
        self.score_mode = s.score_mode
        self.mode = MODES[s.score_mode](s, model, self.http.post, self._score_messages)
        self.capabilities = s.capability_set()
        self.pool = ThreadPoolExecutor(max(1, s.concurrency), thread_name_prefix="remote")
        self._warned_image_inputs = threading.Event()

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
            "concurrency": str(s.concurrency), "image_format": s.image_format,
            "upstream_calls": f"at most {self.http.max_calls} per HTTP request (max_retries + 1)",
            "weights": "remote: may change behind the same model id", **self.mode.details(),
        }
        if "generate_image" in self.capabilities:
            details["generate_image_inputs"] = "ignored (/v1/images/generations is text only)"
        if s.revision:
            details["revision"] = s.revision
        return BackendInfo(
            name=self.model, backend=self.backend_key, fingerprint=self.fingerprint(),
            can_score="score" in self.capabilities, can_generate="generate" in self.capabilities,
            can_generate_image="generate_image" in self.capabilities,
            max_images=s.max_images, details=details,
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

    def _check(self, task: ScoreTask) -> None:
        if task.include_end_of_turn:
            raise InvalidRequest("include_end_of_turn", "a remote API cannot score the chat "
                                 "template's end-of-turn token; send include_end_of_turn=false")
        self.mode.check(task)

    # -- score ---------------------------------------------------------------------------------

    def score(self, tasks: Sequence[ScoreTask]) -> list[ScoreResult]:
        """The HTTP calls of the whole batch run at once, bounded by `concurrency`.

        A task that fails its checks makes no call; a call that fails (after the
        HTTP client's retries) fails its own task only.
        """
        self._require("score")
        pending = []
        for t in tasks:
            try:
                self._check(t)
                pending.append([self.pool.submit(call) for call in self.mode.calls(t)])
            except Exception as exc:  # noqa: BLE001 - this task's result
                pending.append(exc)
        results: list[ScoreResult] = []
        for row in pending:
            if isinstance(row, Exception):
                results.append(row)
                continue
            try:
                results.append([score for f in row for score in f.result()])
            except Exception as exc:  # noqa: BLE001 - this task's result
                results.append(exc)
        return results

    # -- generation ----------------------------------------------------------------------------

    def _chat_text(self, text: str, images: Sequence[Image.Image], max_tokens: int,
                   temperature: float, seed: int) -> str:
        body = {"model": self.model, "messages": self._chat_messages(text, images),
                "temperature": temperature, self.settings.max_tokens_field: max_tokens,
                "seed": seed}
        choice = first_choice(self.http.post("chat/completions", body), "chat/completions")
        return (choice.get("message") or {}).get("content") or ""

    def generate(self, task: GenerateTask) -> str:
        self._require("generate")
        return self._chat_text(task.text, task.images, task.max_new_tokens, task.temperature,
                               task.seed)

    def generate_image(self, task: GenerateImageTask) -> GeneratedImage:
        """Text-to-image via /v1/images/generations; input images are ignored (it takes none)."""
        self._require("generate_image")
        s = self.settings
        if task.images and not self._warned_image_inputs.is_set():
            self._warned_image_inputs.set()
            log.warning("generate_image: input images are ignored by /v1/images/generations")
        body = {"model": s.image_model or self.model,
                "prompt": task.text.replace(PLACEHOLDER, " ").strip(), "n": 1}
        if s.image_response_format:
            body["response_format"] = s.image_response_format
        if s.image_size:
            body["size"] = s.image_size
        data = self.http.post("images/generations", body).get("data") or []
        if not data:
            raise UpstreamError("remote API images/generations returned no image")
        item = data[0]
        if item.get("b64_json"):
            raw = base64.b64decode(item["b64_json"])
        elif item.get("url"):
            try:
                with urllib.request.urlopen(item["url"], timeout=self.http.timeout_s) as r:
                    raw = r.read()
            except (OSError, ValueError) as exc:
                raise UpstreamError(f"the image URL the remote returned failed: {exc}") from None
        else:
            raise UpstreamError("remote API images/generations returned neither b64_json nor url")
        text = ""
        if task.with_text:
            self._require("generate")
            text = self._chat_text(task.text, task.images, task.max_new_tokens, 0.0, task.seed)
        return GeneratedImage(png=to_png(raw), text=text)


class VLLMBackend(OpenAIBackend):
    """A vLLM OpenAI-compatible server: local by default, PPL via echoed prompt
    log-probs (defaults in remote_settings.VLLMSettings)."""

    backend_key = "vllm"
    settings_class = VLLMSettings
    base_url_env = ""  # OPENAI_BASE_URL is for the generic backend and is not consulted
    default_base_url = VLLMSettings.base_url
