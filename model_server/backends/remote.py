"""Remote models behind the ModelService: OpenAI-compatible APIs and vLLM servers.

The model runs elsewhere; this backend translates tasks into HTTP calls, so a
closed model or a vLLM deployment is evaluated through the same gRPC interface
as a local one. Two scoring modes, because remote APIs expose different things:

- ``completions-echo``: /v1/completions with ``echo`` + ``logprobs`` returns the
  log-probability of every prompt token, so the option tokens of
  ``prompt + option`` give the PPL score. Text only: the completions
  endpoint takes no images.
- ``chat-letter``: /v1/chat/completions with ``top_logprobs`` on the first
  generated token. Only letters can be ranked this way, so it implements the
  leaderboard's "PPL for A/B/C/D" method.

Backend settings arrive as strings from ``--backend-arg KEY=VALUE``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import math
import os
import threading
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from model_server.backends.base import (
    BackendInfo,
    BaseBackend,
    GeneratedImage,
    GenerateImageTask,
    GenerateTask,
    OptionScore,
    ScoreTask,
)
from model_server.backends.remote_http import HttpClient
from model_server.errors import InvalidRequest, NotReady, NotSupported

log = logging.getLogger(__name__)

PLACEHOLDER = "<img>"
SCORE_MODES = ("completions-echo", "chat-letter")
CAPABILITIES = ("score", "generate", "generate_image")
# Characters around a letter token that still mean "this letter": " C", "C.", "(C".
LETTER_STRIP = " \t\n\r.:)(][*\"'"


def _bool(v) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes", "on")


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
    """Chat content: each image where its <img> stands, in order; no placeholder: images first."""
    def img(part: dict) -> dict:
        return {"type": "image_url", "image_url": part}

    if PLACEHOLDER not in text:
        parts = [img(u) for u in image_urls]
        return parts + [{"type": "text", "text": text}]
    pieces = text.split(PLACEHOLDER)
    parts: list[dict] = []
    for i, piece in enumerate(pieces):
        if piece:
            parts.append({"type": "text", "text": piece})
        if i < len(pieces) - 1:
            parts.append(img(image_urls[i]))
    return parts


def normalise_letter(token: str) -> str:
    return token.strip(LETTER_STRIP)


def logsumexp(values: Sequence[float]) -> float:
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def letter_logprobs(top: Sequence[dict], letters: Sequence[str], k: int) -> tuple[list[float], int]:
    """Log-probability of each letter as the first answer token, from a top-k list.

    Token variants of one letter (" C", "C", "C.") are different tokens with the
    same meaning, so their probabilities add (logsumexp). A letter missing from
    the top k has a probability below the smallest listed one; it gets the floor
    ``min(listed) - ln(k)``, strictly below every listed letter, so it ranks last
    and never ties with a letter the model actually considered. Returns the
    scores and how many letters got the floor.
    """
    found: dict[str, list[float]] = {}
    listed = []
    for entry in top:
        lp = entry.get("logprob")
        if lp is None:
            continue
        lp = float(lp)
        listed.append(lp)
        found.setdefault(normalise_letter(str(entry.get("token", ""))), []).append(lp)
    if not listed:
        raise NotSupported("the remote returned no top_logprobs; "
                           "it cannot score in chat-letter mode")
    floor = min(listed) - math.log(max(k, 2))
    out, floored = [], 0
    for letter in letters:
        if letter in found:
            out.append(logsumexp(found[letter]))
        else:
            out.append(floor)
            floored += 1
    return out, floored


def option_span(offsets: Sequence[int], token_logprobs: Sequence[float | None], context_len: int,
                full_len: int) -> OptionScore:
    """Sum the echoed log-probs of the tokens that carry the option's characters.

    A token belongs to the option when it ends after the context (so a token
    merged across the question/option boundary counts, as it carries option
    text) and starts before the end of the prompt (so a generated token that
    some servers append is left out). Token ends come from the next token's
    offset, not from token strings, which byte-level tokenizers garble.
    """
    total, n = 0.0, 0
    for i, start in enumerate(offsets):
        end = offsets[i + 1] if i + 1 < len(offsets) else full_len
        if start >= full_len:
            break
        if end <= context_len:
            continue
        lp = token_logprobs[i]
        if lp is None:
            raise InvalidRequest("prompt.text", "the option starts at the first token, which has "
                                 "no log-probability; the prompt template must put text before it")
        total += float(lp)
        n += 1
    if n == 0:
        raise NotReady("the remote echoed no tokens for the option (offsets did not cover it)")
    return OptionScore(logprob_sum=total, num_tokens=n)


class OpenAIBackend(BaseBackend):
    """A model behind an OpenAI-compatible HTTP API."""

    backend_key = "openai"
    default_base_url = "https://api.openai.com/v1"
    default_score_mode = "chat-letter"
    default_echo_max_tokens = 0

    def __init__(self, model: str, base_url: str = "", api_key_env: str = "OPENAI_API_KEY",
                 timeout_s: str | float = 120, max_retries: str | int = 4,
                 backoff_s: str | float = 1.0, concurrency: str | int = 8,
                 image_detail: str = "", image_format: str = "png", score_mode: str = "",
                 capabilities: str = "score,generate", top_logprobs: str | int = 20,
                 prompt_template: str = "{question}\nAnswer:", option_prefix: str = " ",
                 echo_max_tokens: str | int | None = None, text_only: str | bool = False,
                 max_tokens_field: str = "max_tokens", image_model: str = "",
                 image_size: str = "", image_response_format: str = "b64_json",
                 max_images: str | int = 16, revision: str = "", device: str = "",
                 dtype: str = "", **unknown):
        if unknown:
            raise ValueError(f"unknown {self.backend_key} backend settings: "
                             f"{', '.join(sorted(unknown))}")
        if not model:
            raise ValueError("--model must name the remote model id")
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL", "")
                         or self.default_base_url).rstrip("/")
        parsed = urllib.parse.urlparse(self.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
        self.host = parsed.netloc.lower()
        self.api_key_env = api_key_env
        api_key = os.environ.get(api_key_env, "") if api_key_env else ""
        if not api_key:
            log.info("environment variable %s is not set: requests carry no Authorization header",
                     api_key_env)
        self.http = HttpClient(self.base_url, api_key=api_key, api_key_env=api_key_env,
                               timeout_s=float(timeout_s), max_retries=max(0, int(max_retries)),
                               backoff_s=float(backoff_s))
        self.score_mode = score_mode or self.default_score_mode
        if self.score_mode not in SCORE_MODES:
            raise ValueError(f"score_mode must be one of {', '.join(SCORE_MODES)}, "
                             f"got {score_mode!r}")
        caps = {c.strip() for c in capabilities.split(",") if c.strip()}
        if caps - set(CAPABILITIES):
            raise ValueError(f"unknown capabilities {sorted(caps - set(CAPABILITIES))}; "
                             f"choose from {', '.join(CAPABILITIES)}")
        self.capabilities = caps
        self.concurrency = max(1, int(concurrency))
        self.image_detail = image_detail
        if image_format not in ("png", "jpeg"):
            raise ValueError(f"image_format must be png or jpeg, got {image_format!r}")
        self.image_format = image_format
        self.top_logprobs = int(top_logprobs)
        if "{question}" not in prompt_template:
            raise ValueError("prompt_template must contain {question}")
        self.prompt_template = prompt_template.replace("\\n", "\n")
        self.option_prefix = option_prefix
        self.echo_max_tokens = int(self.default_echo_max_tokens if echo_max_tokens is None
                                   else echo_max_tokens)
        self.text_only = _bool(text_only)
        self.max_tokens_field = max_tokens_field
        self.image_model = image_model or model
        self.image_size = image_size
        self.image_response_format = image_response_format
        self.max_images = int(max_images)
        self.revision = revision
        self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="remote")
        self._warned_image_inputs = threading.Event()

    # -- description ---------------------------------------------------------------------------

    def fingerprint(self) -> str:
        """Identity of what answers: host, model id and every setting that changes scores.

        The remote's weights are not visible: the same id can change behind it,
        so `revision` lets an operator force a new fingerprint when it does.
        """
        parts = [self.host, self.model, self.score_mode, self.revision]
        if self.score_mode == "completions-echo":
            parts += [self.prompt_template, self.option_prefix, str(self.text_only)]
        else:
            parts += [str(self.top_logprobs)]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]

    def info(self) -> BackendInfo:
        method = ("PPL (option tokens echoed by /v1/completions, text only)"
                  if self.score_mode == "completions-echo"
                  else "PPL for A/B/C/D (first-token top_logprobs from /v1/chat/completions)")
        details = {
            "remote_host": self.host, "remote_model": self.model, "score_mode": self.score_mode,
            "score_method": method, "concurrency": str(self.concurrency),
            "image_format": self.image_format,
            "weights": "remote: may change behind the same model id",
        }
        if self.score_mode == "chat-letter":
            details["letter_floor"] = f"min(top_logprobs) - ln({self.top_logprobs})"
        else:
            details.update(prompt_template=self.prompt_template,
                           option_prefix=repr(self.option_prefix),
                           images="dropped (text only)" if self.text_only else "refused")
        if "generate_image" in self.capabilities:
            details["generate_image_inputs"] = "ignored (/v1/images/generations is text only)"
        if self.revision:
            details["revision"] = self.revision
        return BackendInfo(
            name=self.model, backend=self.backend_key, fingerprint=self.fingerprint(),
            can_score="score" in self.capabilities, can_generate="generate" in self.capabilities,
            can_generate_image="generate_image" in self.capabilities,
            max_images=self.max_images,
            details=details,
        )

    # -- helpers -------------------------------------------------------------------------------

    def _require(self, cap: str) -> None:
        if cap not in self.capabilities:
            raise NotSupported(f"{cap} is not enabled for remote model {self.model!r} "
                               f"(settings: capabilities={','.join(sorted(self.capabilities))})")

    def _chat_messages(self, text: str, images: Sequence[Image.Image]) -> list[dict]:
        urls = []
        for im in images:
            part = {"url": encode_image(im, self.image_format)}
            if self.image_detail:
                part["detail"] = self.image_detail
            urls.append(part)
        return [{"role": "user", "content": content_parts(text, urls)}]

    def _first_choice(self, resp: dict, path: str) -> dict:
        choices = resp.get("choices") or []
        if not choices:
            raise NotReady(f"remote API {path} returned no choices")
        return choices[0]

    # -- score ---------------------------------------------------------------------------------

    def score(self, tasks: Sequence[ScoreTask]) -> list[list[OptionScore]]:
        """All HTTP calls of the batch run at once, bounded by `concurrency`.

        Every task is checked before any call goes out, so one bad question in a
        batch fails fast; a call that fails raises for the whole batch, as the
        local backends do.
        """
        self._require("score")
        for t in tasks:
            self._check_score_task(t)
        if self.score_mode == "chat-letter":
            futures = [self.pool.submit(self._score_letters, t) for t in tasks]
            return [f.result() for f in futures]
        futures = [[self.pool.submit(self._score_echo, t, o) for o in t.options] for t in tasks]
        return [[f.result() for f in row] for row in futures]

    def _check_score_task(self, t: ScoreTask) -> None:
        if t.include_end_of_turn:
            raise InvalidRequest("include_end_of_turn", "a remote API cannot score the chat "
                                 "template's end-of-turn token; send include_end_of_turn=false")
        if self.score_mode == "chat-letter" and t.raw_prompt:
            raise InvalidRequest("raw_prompt", "a chat API always applies the model's chat "
                                 "template; it cannot read a raw prompt. Use a chat-template "
                                 "preset, or a server with score_mode=completions-echo")
        if self.score_mode == "chat-letter":
            bad = [o for o in t.options if len(o.strip()) != 1 or not ("A" <= o.strip() <= "Z")]
            if bad:
                raise InvalidRequest("options", f"score_mode=chat-letter ranks only single letters "
                                     f"(the 'PPL for A/B/C/D' method: the remote API exposes the "
                                     f"log-probs of the first answer token only); got {bad[0]!r}. "
                                     "Use the letter method, or a server with "
                                     "score_mode=completions-echo")
            if len({o.strip() for o in t.options}) != len(t.options):
                raise InvalidRequest("options", "letters must be distinct")
        elif t.images and not self.text_only:
            raise NotSupported("score_mode=completions-echo is text only (/v1/completions takes no "
                               "images); set text_only=true to drop images knowingly, or use "
                               "score_mode=chat-letter")

    def _score_letters(self, t: ScoreTask) -> list[OptionScore]:
        body = {"model": self.model, "messages": self._chat_messages(t.text, t.images),
                "logprobs": True, "top_logprobs": self.top_logprobs, "temperature": 0,
                self.max_tokens_field: 1}
        choice = self._first_choice(self.http.post("chat/completions", body), "chat/completions")
        content = (choice.get("logprobs") or {}).get("content") or []
        if not content:
            raise NotSupported("the remote returned no logprobs for chat/completions; it cannot "
                               "score in chat-letter mode")
        top = content[0].get("top_logprobs") or [content[0]]
        letters = [o.strip() for o in t.options]
        values, floored = letter_logprobs(top, letters, self.top_logprobs)
        if floored:
            log.debug("[%s] %d letters absent from top_logprobs, floored", t.request_id, floored)
        return [OptionScore(logprob_sum=v, num_tokens=1) for v in values]

    def _score_echo(self, t: ScoreTask, option: str) -> OptionScore:
        question = t.text.replace(PLACEHOLDER, "") if t.images else t.text
        if t.raw_prompt:  # the request's text is the whole prompt; the option follows directly
            context, full = question, question + option
        else:
            context = self.prompt_template.replace("{question}", question)
            full = context + self.option_prefix + option
        body = {"model": self.model, "prompt": full, "echo": True, "logprobs": 1,
                "max_tokens": self.echo_max_tokens, "temperature": 0}
        choice = self._first_choice(self.http.post("completions", body), "completions")
        lp = choice.get("logprobs") or {}
        offsets, token_lps = lp.get("text_offset"), lp.get("token_logprobs")
        if not offsets or not token_lps or len(offsets) != len(token_lps):
            raise NotSupported("the remote did not echo prompt log-probs with text offsets; it "
                               "cannot score in completions-echo mode")
        return option_span(offsets, token_lps, len(context), len(full))

    # -- generation ----------------------------------------------------------------------------

    def _chat_text(self, text: str, images: Sequence[Image.Image], max_tokens: int,
                   temperature: float, seed: int) -> str:
        body = {"model": self.model, "messages": self._chat_messages(text, images),
                "temperature": temperature, self.max_tokens_field: max_tokens, "seed": seed}
        choice = self._first_choice(self.http.post("chat/completions", body), "chat/completions")
        return (choice.get("message") or {}).get("content") or ""

    def generate(self, task: GenerateTask) -> str:
        self._require("generate")
        return self._chat_text(task.text, task.images, task.max_new_tokens, task.temperature,
                               task.seed)

    def generate_image(self, task: GenerateImageTask) -> GeneratedImage:
        """Text-to-image via /v1/images/generations; input images are ignored (it takes none)."""
        self._require("generate_image")
        if task.images and not self._warned_image_inputs.is_set():
            self._warned_image_inputs.set()
            log.warning("generate_image: input images are ignored by /v1/images/generations")
        body = {"model": self.image_model, "prompt": task.text.replace(PLACEHOLDER, " ").strip(),
                "n": 1}
        if self.image_response_format:
            body["response_format"] = self.image_response_format
        if self.image_size:
            body["size"] = self.image_size
        resp = self.http.post("images/generations", body)
        data = resp.get("data") or []
        if not data:
            raise NotReady("remote API images/generations returned no image")
        item = data[0]
        if item.get("b64_json"):
            raw = base64.b64decode(item["b64_json"])
        elif item.get("url"):
            with urllib.request.urlopen(item["url"], timeout=self.http.timeout_s) as r:
                raw = r.read()
        else:
            raise NotReady("remote API images/generations returned neither b64_json nor url")
        text = ""
        if task.with_text:
            self._require("generate")
            text = self._chat_text(task.text, task.images, task.max_new_tokens, 0.0, task.seed)
        return GeneratedImage(png=to_png(raw), text=text)


def to_png(raw: bytes) -> bytes:
    """PNG bytes as the protocol promises, converting whatever format the API returned."""
    if raw.startswith(b"\x89PNG\r\n\x1a\n"):
        return raw
    try:
        im = Image.open(io.BytesIO(raw))
        im.load()
    except Exception as exc:
        raise NotReady(f"remote returned an image that cannot be decoded ({exc})") from None
    buf = io.BytesIO()
    im.convert("RGBA" if "A" in im.getbands() else "RGB").save(buf, format="PNG")
    return buf.getvalue()


class VLLMBackend(OpenAIBackend):
    """A vLLM OpenAI-compatible server: local by default, PPL via echoed prompt log-probs.

    vLLM rejects max_tokens=0, so one token is generated and ignored (its text
    offset lies past the prompt). vLLM's automatic prefix caching shares the
    question prefix across options on the server side.
    """

    backend_key = "vllm"
    default_base_url = "http://127.0.0.1:8000/v1"
    default_score_mode = "completions-echo"
    default_echo_max_tokens = 1

    def __init__(self, model: str, base_url: str = "", api_key_env: str = "VLLM_API_KEY", **kw):
        # vLLM's own default; OPENAI_BASE_URL is for the generic backend and is not consulted.
        super().__init__(model, base_url=base_url or self.default_base_url, api_key_env=api_key_env,
                         **kw)
