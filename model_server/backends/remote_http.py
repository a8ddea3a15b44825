"""A small JSON-over-HTTP client for OpenAI-compatible APIs, standard library only.

THE retry layer for remote calls: nothing above it (the batcher, the
evaluator) retries an upstream failure, so one HTTP request of a backend costs
at most `max_retries + 1` upstream calls. It retries what is worth retrying
(408, 409, 429, 5xx, connection errors and timeouts) with exponential backoff
and jitter, waiting what Retry-After / retry-after-ms ask instead when the
server says. Permanent answers (other 4xx) are not retried and map to their
own errors; a malformed answer (a non-JSON body) is not retried either. When
the tries run out: UpstreamError, which the evaluator records instead of
retrying. The API key travels only in the Authorization header; it never
appears in a message, a log line or a repr.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import random
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from serving.errors import (
    InvalidRequest,
    NotSupported,
    PermissionDenied,
    ServiceError,
    TooLarge,
    UpstreamError,
)

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
MAX_MESSAGE_CHARS = 500


def api_message(body: bytes) -> str:
    """The human part of an error body: {"error": {"message"}}, {"message"}, or the raw text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:MAX_MESSAGE_CHARS] or "(empty body)"
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:MAX_MESSAGE_CHARS]
        if isinstance(err, str):
            return err[:MAX_MESSAGE_CHARS]
    return text[:MAX_MESSAGE_CHARS]


def retry_after_s(headers) -> float | None:
    """Seconds the server asked us to wait: retry-after-ms, Retry-After seconds or an HTTP date."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = headers.get("Retry-After")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(ra)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class HttpClient:
    """POST JSON to base_url + path with retries; thread-safe (no shared connection state)."""

    base_url: str
    api_key: str = field(default="", repr=False)
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    max_retries: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 60.0

    @property
    def max_calls(self) -> int:
        """Upstream calls one request can cost: the bound the docs promise."""
        return self.max_retries + 1

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "application/json",
             "User-Agent": "seedbench-model-server"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def _delay(self, attempt: int, server_wait: float | None) -> float:
        if server_wait is not None:
            return min(server_wait, self.max_backoff_s)
        # Jitter (half to all of the step) spreads worker threads that hit the same 429 at once.
        return min(self.backoff_s * (2 ** attempt), self.max_backoff_s) * random.uniform(0.5, 1.0)

    def _error(self, status: int, message: str, path: str) -> ServiceError:
        where = f"remote API {path} returned HTTP {status}"
        if status in (401, 403):
            return PermissionDenied(
                f"{where}: {message}. Check the API key in the environment variable "
                f"{self.api_key_env} (set: {'yes' if self.api_key else 'no'}) and its permissions")
        if status == 413:
            return TooLarge(f"{where} (request too large): {message}")
        if status in (404, 405, 501):
            return NotSupported(f"{where}: {message} (wrong base_url or model id, or the server "
                                "lacks this endpoint)")
        if status in RETRYABLE_STATUS:
            return UpstreamError(f"{where} after {self.max_calls} attempts: {message}")
        return InvalidRequest("remote", f"{where}: {message}")

    def request(self, path: str, body: dict | None = None, method: str = "POST") -> dict:
        url = self.base_url.rstrip("/") + "/" + path.lstrip("/")
        data = None if body is None else json.dumps(body).encode()
        last = ""
        for attempt in range(self.max_retries + 1):
            req = urllib.request.Request(url, data=data, headers=self._headers(), method=method)
            wait = None
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    raw = resp.read()
                try:
                    return json.loads(raw)
                except ValueError:
                    raise UpstreamError(f"remote API {path} returned a non-JSON body: "
                                   f"{raw[:200].decode('utf-8', 'replace')!r}") from None
            except urllib.error.HTTPError as exc:
                status, message = exc.code, api_message(exc.read() or b"")
                if status not in RETRYABLE_STATUS:
                    raise self._error(status, message, path) from None
                wait = retry_after_s(exc.headers)
                last_exc: ServiceError = self._error(status, message, path)
                last = f"HTTP {status}: {message}"
            except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"{type(exc).__name__}: {reason}"
                last_exc = UpstreamError(f"remote API {path} unreachable after {self.max_calls} "
                                         f"attempts: {last}")
            if attempt < self.max_retries:
                delay = self._delay(attempt, wait)
                log.warning("remote %s failed (%s); retry %d/%d in %.2fs", path, last, attempt + 1,
                            self.max_retries, delay)
                time.sleep(delay)
        raise last_exc

    def post(self, path: str, body: dict) -> dict:
        return self.request(path, body, "POST")
