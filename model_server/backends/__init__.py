"""Backends: the model-specific half of the server, behind one small protocol."""

from model_server.backends.base import (
    Backend,
    BackendInfo,
    GeneratedImage,
    GenerateImageTask,
    GenerateTask,
    OptionScore,
    ScoreTask,
    available,
    create,
    register,
)

__all__ = [
    "Backend",
    "BackendInfo",
    "GenerateImageTask",
    "GenerateTask",
    "GeneratedImage",
    "OptionScore",
    "ScoreTask",
    "available",
    "create",
    "register",
]
