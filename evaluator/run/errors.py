"""What a failed question is stored as: one status per error (see evaluator.results.failures)."""

from __future__ import annotations

from evaluator.data.media import MediaError
from evaluator.run.client import CallFailed


class QuestionError(Exception):
    """A handler's per-question failure: stored as an error and retried on the next run."""


def error_text(exc: BaseException) -> str:
    """What the store records for a question that failed with `exc`."""
    if isinstance(exc, CallFailed):
        return str(exc)
    if isinstance(exc, MediaError):
        return f"MEDIA: {exc.field}: {exc.reason}"
    if isinstance(exc, QuestionError):
        return f"QUESTION: {exc}"
    if isinstance(exc, OSError):
        return f"IO: {exc}"
    return f"INTERNAL: internal error: {exc!r}"
