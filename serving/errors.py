"""Errors a backend or validator raises, and their gRPC status codes.

Each error class names its status code here, in one table; `grpc_errors` turns
a raised error into that status at the servicer. Backends and validators raise
these and never call gRPC themselves. Anything else escaping a backend is a
server bug and maps to INTERNAL.
"""

from __future__ import annotations

import functools
import logging

import grpc

from protos.wire import ERROR_SOURCE_KEY, ERROR_SOURCE_QUEUE, ERROR_SOURCE_UPSTREAM

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """Base class: an error with a status code and a message for the client."""

    code = grpc.StatusCode.INTERNAL
    trailing_metadata: tuple[tuple[str, str], ...] = ()


class InvalidRequest(ServiceError):
    """The request is malformed; the message names the offending field."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field


class TooLarge(ServiceError):
    """The request exceeds a size or count limit."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class QueueFull(TooLarge):
    """The server's queue of waiting requests is full: backpressure, a client retries later
    (the trailing metadata tells it from a request that is too large, protos/wire.py)."""

    trailing_metadata = ((ERROR_SOURCE_KEY, ERROR_SOURCE_QUEUE),)


class DeadlinePassed(ServiceError):
    """The client's deadline passed before the request ran; it was dropped unrun."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotSupported(ServiceError):
    """The backend lacks this capability (e.g. image generation)."""

    code = grpc.StatusCode.UNIMPLEMENTED


class NotReady(ServiceError):
    """The model is still loading or the server is draining: a client retries later."""

    code = grpc.StatusCode.UNAVAILABLE


class PermissionDenied(ServiceError):
    """A remote API refused the server's credentials (401/403): retrying will not help."""

    code = grpc.StatusCode.PERMISSION_DENIED


class UpstreamError(ServiceError):
    """A remote API failed after the server's own retries, or answered malformed.

    UNAVAILABLE (the remote is) with the trailing metadata
    "seedbench-error-source: upstream" (protos/wire.py), which tells the
    evaluator not to retry: the server's HTTP client already decided how often
    to try (model_server/backends/remote_client.py), and a second retry layer would
    multiply the calls one question costs.
    """

    code = grpc.StatusCode.UNAVAILABLE
    trailing_metadata = ((ERROR_SOURCE_KEY, ERROR_SOURCE_UPSTREAM),)


# Longest request id and status message a client sees: a status message travels in the
# response trailers, and a client refuses trailers over its metadata limit (8 KiB by
# default) with RESOURCE_EXHAUSTED, which would hide the real status.
MAX_ID_CHARS = 120
MAX_MESSAGE_CHARS = 2000


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def grpc_errors(method):
    """Decorate an async servicer method: map ServiceError to its status code.

    The request id (when the request has one) prefixes the message so a client
    log line names the question that failed.
    """

    @functools.wraps(method)
    async def wrapper(self, request, context):
        rid = clip(getattr(request, "request_id", ""), MAX_ID_CHARS)
        prefix = f"[{rid}] " if rid else ""
        try:
            return await method(self, request, context)
        except ServiceError as exc:
            await context.abort(exc.code, clip(prefix + str(exc), MAX_MESSAGE_CHARS),
                                exc.trailing_metadata)
        except Exception as exc:  # a bug, not bad input: keep serving, say what broke
            log.exception("unhandled error in %s %s", method.__name__, rid)
            await context.abort(
                grpc.StatusCode.INTERNAL, clip(f"{prefix}{type(exc).__name__}: {exc}",
                                               MAX_MESSAGE_CHARS))

    return wrapper
