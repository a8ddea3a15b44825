"""Backends: the model-specific half of the server, behind one small contract (base.py)."""

from model_server.backends.base import (
    Backend,
    BackendInfo,
    GeneratedImage,
    GenerateImageTask,
    GenerateTask,
    OptionScore,
    ScoreResult,
    ScoreTask,
    available,
    create,
    parse_settings,
)

__all__ = [
    "Backend",
    "BackendInfo",
    "GenerateImageTask",
    "GenerateTask",
    "GeneratedImage",
    "OptionScore",
    "ScoreResult",
    "ScoreTask",
    "available",
    "create",
    "parse_settings",
]
