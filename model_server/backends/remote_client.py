"""The remote backends' one way to call an OpenAI-compatible API, and THE retry layer.

Requests go through the official `openai` async client with its own retries
switched off (`max_retries=0`): this module alone decides what is retried and
how often, so a question's cost in upstream calls is bounded and documented.

- Retried: 408, 409, 429, 5xx, timeouts, connection errors and resets, and
  malformed or truncated bodies; with exponential backoff and full jitter
  (a uniform wait between 0 and `backoff_s * 2**n`, capped), or exactly the wait
  the server asks for in Retry-After / retry-after-ms.
- Not retried: every other 4xx (permanent), each mapped to its own error.
- Budget: a question's calls share `max_retries` retries, so a question whose
  work is R requests costs at most R + max_retries upstream calls.
- Concurrency adapts: the limit of calls in flight halves on a 429 and grows
  by one per limit's worth of successes, never above `concurrency`.
- Every message that leaves (errors, log lines) passes `Redactor`, so the API
  key never shows even when the upstream echoes it.

The async clients run on one event loop in a daemon thread, shared by every
client of the process (a composite model's chat and image clients await each
other); the backend's synchronous methods submit coroutines to it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import openai

from model_server.backends.base import Usage
from serving.errors import (
    InvalidRequest,
    NotSupported,
    PermissionDenied,
    ServiceError,
    TooLarge,
    UpstreamError,
)

log = logging.getLogger(__name__)
# The HTTP library logs every request at INFO: one line per question is noise at scale
# (failures are logged here, with their reason).
logging.getLogger("httpx2").setLevel(logging.WARNING)

RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
MAX_MESSAGE_CHARS = 500
MAX_SERVER_WAIT_S = 120.0  # a longer Retry-After is treated as "give up now"
REDACTED = "[redacted]"
# Bearer tokens and common key shapes, removed even when they are not our key.
_TOKEN_PATTERNS = (re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]{8,}"),
                   re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"))


class Redactor:
    """Removes the API key and bearer tokens from any text that leaves the backend."""

    def __init__(self, secrets: list[str]):
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, REDACTED)
        for pattern in _TOKEN_PATTERNS:
            text = pattern.sub(REDACTED, text)
        return text

    def error(self, exc: BaseException) -> BaseException:
        """The same error with a redacted message; anything not ours becomes an UpstreamError."""
        if isinstance(exc, ServiceError):
            exc.args = tuple(self(str(a)) if isinstance(a, str) else a for a in exc.args)
            return exc
        return UpstreamError(self(f"{type(exc).__name__}: {exc}"))


class RedactingFilter(logging.Filter):
    """On the process's log handlers: a log line never carries a key of any backend."""

    def __init__(self):
        super().__init__()
        self.redactors: list[Redactor] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.redactors:
            return True
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        for redact in self.redactors:
            text = redact(text)
        record.msg, record.args = text, None
        return True


_LOG_FILTER = RedactingFilter()


def install_log_redaction(redact: Redactor) -> None:
    """Redact this key from every log line of the process, whichever logger writes it."""
    if redact not in _LOG_FILTER.redactors:
        _LOG_FILTER.redactors.append(redact)
    for h in logging.getLogger().handlers or [logging.lastResort]:
        if h is not None and _LOG_FILTER not in h.filters:
            h.addFilter(_LOG_FILTER)


@dataclass
class Budget:
    """What one question may still spend, shared by all its requests: retries and time
    (a monotonic deadline); and what it has cost so far."""

    retries_left: int
    deadline: float
    usage: Usage = field(default_factory=Usage)

    def time_left(self) -> float:
        return self.deadline - time.monotonic()


class AdaptiveLimit:
    """Calls in flight: halve on a 429, +1 per `limit` successes, within [1, cap]."""

    def __init__(self, cap: int):
        self.cap = max(1, cap)
        self.limit = float(self.cap)
        self.in_flight = 0
        self._cond: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    async def __aenter__(self) -> None:
        cond = self._condition()
        async with cond:
            await cond.wait_for(lambda: self.in_flight < max(1, int(self.limit)))
            self.in_flight += 1

    async def __aexit__(self, *exc) -> None:
        cond = self._condition()
        async with cond:
            self.in_flight -= 1
            cond.notify_all()

    def succeeded(self) -> None:
        self.limit = min(float(self.cap), self.limit + 1.0 / max(1.0, self.limit))

    def throttled(self) -> None:
        self.limit = max(1.0, self.limit / 2)


def api_message(body: object, text: str = "") -> str:
    """The human part of an error body: {"error": {"message"}}, {"message"}, or the raw text."""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:MAX_MESSAGE_CHARS]
        if isinstance(err, str):
            return err[:MAX_MESSAGE_CHARS]
        if body.get("message"):
            return str(body["message"])[:MAX_MESSAGE_CHARS]
    if isinstance(body, str) and body.strip():
        return body.strip()[:MAX_MESSAGE_CHARS]
    return text.strip()[:MAX_MESSAGE_CHARS] or "(empty body)"


class MalformedAnswer(UpstreamError):
    """An answer without the fields a request promises (no choices, no image...); retried,
    and an UpstreamError once the question's budget is spent."""


class _Retry(Exception):
    """A failure worth another try: what happened ("unreachable", "returned HTTP 503"), the
    detail, and the server's requested delay, if any."""

    def __init__(self, kind: str, detail: str, wait: float | None = None,
                 throttled: bool = False, final: bool = False):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail
        self.wait = wait
        self.throttled = throttled
        self.final = final  # no retry, whatever the budget says


def server_wait_s(headers) -> float | None:
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue
    return None


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def remote_loop() -> asyncio.AbstractEventLoop:
    """The process's one event loop for remote calls, started on first use."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="remote-api", daemon=True).start()
        return _loop


class RemoteClient:
    """Calls one API root; thread-safe; `run` executes a coroutine on the client's loop."""

    def __init__(self, base_url: str, api_key: str, key_source: str, timeout_s: float = 60.0,
                 max_retries: int = 4, backoff_s: float = 0.5, max_backoff_s: float = 60.0,
                 concurrency: int = 8, question_s: float = 100.0, redact: Redactor | None = None):
        self.base_url = base_url
        self.key_source = key_source  # "environment variable X" / "file Y": named in 401 errors
        self.has_key = bool(api_key)
        self.timeout_s = timeout_s
        self.max_retries = max(0, max_retries)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.question_s = question_s
        self.redact = redact or Redactor([api_key])
        self.limit = AdaptiveLimit(concurrency)
        self.total = Usage()
        self._lock = threading.Lock()
        # The header is dropped per request when there is no key (a local vLLM needs none).
        self._headers = {} if api_key else {"Authorization": openai.Omit()}
        self._loop = remote_loop()
        self._sdk = openai.AsyncOpenAI(api_key=api_key or "unused", base_url=base_url,
                                       max_retries=0, timeout=timeout_s)

    def __repr__(self) -> str:
        return f"RemoteClient({self.base_url!r}, key from {self.key_source})"

    # -- running -------------------------------------------------------------------------------

    def run(self, coro: Awaitable[Any]) -> Any:
        """Run a coroutine on the client's loop from a worker thread, waiting for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def budget(self) -> Budget:
        return Budget(self.max_retries, time.monotonic() + self.question_s)

    def probe(self, timeout_s: float = 10.0) -> None:
        """Check at start-up that the API answers and takes the key: GET models, once.

        Unreachable, or refusing the key: ValueError with one redacted line, so the
        server stops at once instead of failing every question later. Any other
        answer (even 404: some servers have no model list) counts as reachable.
        """
        async def get() -> None:
            await self._sdk.get("/models", cast_to=str, options={
                "headers": self._headers, "timeout": timeout_s})

        try:
            self.run(get())
        except openai.APIStatusError as exc:
            if exc.status_code in (401, 403):
                raise ValueError(self.redact(
                    f"{self.base_url} refused the API key from the {self.key_source} "
                    f"(HTTP {exc.status_code}: {api_message(exc.body)})")) from None
        except openai.APIConnectionError as exc:  # timeouts included
            cause = exc.__cause__ or exc
            raise ValueError(self.redact(f"cannot reach {self.base_url} "
                                         f"({type(cause).__name__}: {cause})")) from None

    # -- one request, retried ------------------------------------------------------------------

    async def call(self, path: str, body: dict, budget: Budget,
                   read: Callable[[dict], Any] = lambda answer: answer) -> Any:
        """Send body to path ("chat/completions", "completions", "images/generations") and
        return read(the JSON answer), retrying within the question's budget. `read`
        raising MalformedAnswer makes the answer count as malformed: retried."""
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self.limit:
                    timeout = min(self.timeout_s, budget.time_left())
                    if timeout <= 0:
                        raise _Retry("ran out of time", f"question_timeout_s={self.question_s:g} "
                                     "spent", final=True)
                    self._count(budget, requests=1)
                    answer = await self._send(path, body, timeout)
                self.limit.succeeded()
                self._count_tokens(budget, answer.get("usage"))
                try:
                    return read(answer)
                except MalformedAnswer as exc:
                    raise _Retry("answered malformed", str(exc)) from None
            except _Retry as exc:
                if exc.throttled:
                    self.limit.throttled()
                delay = self._delay(attempt, exc.wait)
                if (exc.final or budget.retries_left <= 0 or delay >= budget.time_left()
                        or (exc.wait is not None and exc.wait > MAX_SERVER_WAIT_S)):
                    raise UpstreamError(self.redact(
                        f"remote API {path} {exc.kind} after {attempt} attempt(s): {exc.detail}")
                    ) from None
                budget.retries_left -= 1
                self._count(budget, retries=1)
                log.warning("remote %s failed (%s); retry in %.2fs (%d left for this question)",
                            path, self.redact(str(exc)), delay, budget.retries_left)
                await asyncio.sleep(delay)

    def _delay(self, attempt: int, server_wait: float | None) -> float:
        if server_wait is not None:
            return server_wait
        return random.uniform(0.0, min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)))

    def _count(self, budget: Budget, requests: int = 0, retries: int = 0) -> None:
        step = Usage(requests=requests, retries=retries)
        budget.usage.add(step)
        with self._lock:
            self.total.add(step)

    def _count_tokens(self, budget: Budget, usage: object) -> None:
        if not isinstance(usage, dict):
            return
        step = Usage(prompt_tokens=int(usage.get("prompt_tokens") or 0),
                     completion_tokens=int(usage.get("completion_tokens") or 0))
        budget.usage.add(step)
        with self._lock:
            self.total.add(step)

    async def _send(self, path: str, body: dict, timeout: float) -> dict:
        endpoint = {"chat/completions": self._sdk.chat.completions.create,
                    "completions": self._sdk.completions.create,
                    "images/generations": self._sdk.images.generate}[path]
        try:
            result = await endpoint(**body, extra_headers=self._headers, timeout=timeout)
        except openai.APIStatusError as exc:
            raise self._status_error(exc, path) from None
        except openai.APITimeoutError:
            raise _Retry("timed out", f"no answer within {timeout:.3g}s") from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise _Retry("unreachable", f"{type(cause).__name__}: {cause}") from None
        except (ValueError, openai.APIResponseValidationError) as exc:  # JSONDecodeError included
            raise _Retry("answered malformed", f"truncated or invalid JSON ({exc})") from None
        if not isinstance(result, openai.BaseModel):  # a body that is not JSON comes back as is
            raise _Retry("answered malformed", f"not JSON: {str(result)[:200]!r}")
        return result.model_dump(mode="json", exclude_unset=True)

    def _status_error(self, exc: openai.APIStatusError, path: str) -> Exception:
        status = exc.status_code
        message = self.redact(api_message(exc.body, exc.response.text if exc.response else ""))
        where = f"remote API {path} returned HTTP {status}"
        if status in RETRYABLE_STATUS:
            return _Retry(f"returned HTTP {status}", message,
                          wait=server_wait_s(exc.response.headers), throttled=status == 429)
        log.warning("%s (not retried): %s", where, message)
        if status in (401, 403):
            return PermissionDenied(
                f"{where}: {message}. Check the API key in the {self.key_source} "
                f"(set: {'yes' if self.has_key else 'no'}) and its permissions")
        if status == 413:
            return TooLarge(f"{where} (request too large): {message}")
        if status in (404, 405, 501):
            return NotSupported(f"{where}: {message} (wrong base_url or model id, or the server "
                                "lacks this endpoint)")
        return InvalidRequest("remote", f"{where}: {message}")
