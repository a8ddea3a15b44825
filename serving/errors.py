"""Errors a backend or validator raises, and their gRPC status codes.

Backends raise these plain exceptions; only the servicer layer knows about gRPC.
Anything else escaping a backend is a server bug and maps to INTERNAL.
"""

from __future__ import annotations

import functools
import logging

import grpc

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """Base class: an error with a status code and a message for the client."""

    code = grpc.StatusCode.INTERNAL


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
    """The model is still loading or the server is draining."""

    code = grpc.StatusCode.UNAVAILABLE


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
            await context.abort(exc.code, prefix + str(exc))
        except Exception as exc:  # a bug, not bad input: keep serving, say what broke
            log.exception("unhandled error in %s %s", method.__name__, rid)
            await context.abort(
                grpc.StatusCode.INTERNAL, f"{prefix}{type(exc).__name__}: {exc}"
            )

    return wrapper
