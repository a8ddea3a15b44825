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

from protos.wire import ERROR_SOURCE_KEY, ERROR_SOURCE_UPSTREAM

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


def grpc_errors(method):
    """Decorate an async servicer method: map ServiceError to its status code.

    The request id (when the request has one) prefixes the message so a client
    log line names the question that failed.
    """

    @functools.wraps(method)
    async def wrapper(self, request, context):
        rid = getattr(request, "request_id", "")
        prefix = f"[{rid}] " if rid else ""
        try:
            return await method(self, request, context)
        except ServiceError as exc:
            await context.abort(exc.code, prefix + str(exc), exc.trailing_metadata)
        except Exception as exc:  # a bug, not bad input: keep serving, say what broke
            log.exception("unhandled error in %s %s", method.__name__, rid)
            await context.abort(
                grpc.StatusCode.INTERNAL, f"{prefix}{type(exc).__name__}: {exc}"
            )

    return wrapper
