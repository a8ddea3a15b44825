"""Typed backend settings: declared once per backend, converted here and nowhere else.

A backend declares its settings as a frozen dataclass whose fields are built
with `setting(default, help)`. `--backend-arg KEY=VALUE` strings (and the
server-wide `--device`/`--dtype`) are turned into that dataclass by `parse`,
which knows each field's type from its annotation, refuses unknown keys naming
the valid ones, and refuses values that do not convert. Torch-free, so
`seedbench-model-server backends` and the settings check run before any model
code is imported.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from typing import Any, NewType

# A torch device string ("", cpu, cuda, cuda:N, mps, auto); "" lets the backend choose.
Device = NewType("Device", str)
# A torch floating dtype name ("", float32, bfloat16, float16); "" lets the backend choose.
Dtype = NewType("Dtype", str)

DTYPES = ("float32", "bfloat16", "float16")
_DEVICE = re.compile(r"^(|cpu|auto|mps|cuda(:\d+)?)$")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class SettingsError(ValueError):
    """A backend setting that is unknown or does not convert; the message names it."""


def setting(default: Any, help: str) -> Any:  # noqa: A002 - the word users see
    """A settings field: its default and the one line `backends` prints for it."""
    return dataclasses.field(default=default, metadata={"help": help})


def parse_bool(value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def parse_int(value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {value!r}") from None


def parse_float(value: str) -> float:
    try:
        return float(value.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {value!r}") from None


def parse_auto_bool(value: str) -> bool | None:
    """auto (None: the backend decides), or true/false."""
    return None if value.strip().lower() == "auto" else parse_bool(value)


def parse_device(value: str) -> str:
    if not _DEVICE.match(value.strip()):
        raise ValueError(f"expected cpu, cuda, cuda:N, mps or auto, got {value!r}")
    return value.strip()


def parse_dtype(value: str) -> str:
    if value.strip() not in ("", *DTYPES):
        raise ValueError(f"expected one of {', '.join(DTYPES)}, got {value!r}")
    return value.strip()


_PARSERS = {bool: parse_bool, bool | None: parse_auto_bool, int: parse_int, float: parse_float, str: str,
            Device: parse_device, Dtype: parse_dtype}
_NAMES = {bool | None: "auto|bool", Device: "device", Dtype: "dtype"}


def _types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def parse(cls: type, raw: Mapping[str, Any], backend: str = "") -> Any:
    """Build `cls` from KEY=VALUE settings; strings are converted, typed values checked.

    Unknown keys are refused at once, naming the valid ones, so a typo never
    silently falls back to a default.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    types = _types(cls)
    name = f"the {backend} backend" if backend else cls.__name__
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        valid = ", ".join(sorted(fields)) or "(none)"
        raise SettingsError(f"{name} has no setting {', '.join(unknown)}; valid settings: {valid}")
    values = {}
    for key, value in raw.items():
        try:
            values[key] = _convert(types[key], value)
        except ValueError as exc:
            raise SettingsError(f"{name}: setting {key}: {exc}") from None
    try:
        return cls(**values)  # a __post_init__ may refuse values that convert but make no sense
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from None


def _convert(kind: Any, value: Any) -> Any:
    """A string through the type's parser; an already typed value (from code) checked as is."""
    if isinstance(value, str):
        return _PARSERS[kind](value)
    if kind in (bool, bool | None) and (isinstance(value, bool) or (value is None and kind is not bool)):
        return value
    if kind in (int, float) and isinstance(value, int | float) and not isinstance(value, bool):
        if kind is int and value != int(value):
            raise ValueError(f"expected an integer, got {value!r}")
        return kind(value)
    raise ValueError(f"expected {_type_name(kind)}, got {value!r}")


def _type_name(kind: Any) -> str:
    return _NAMES.get(kind, getattr(kind, "__name__", str(kind)))


def _show(default: Any) -> str:
    if default is None:
        return "auto"
    if isinstance(default, bool):
        return str(default).lower()
    return repr(default) if isinstance(default, str) else str(default)


def describe(cls: type) -> list[tuple[str, str, str, str]]:
    """(key, type, default, help) for every setting, in declaration order."""
    types = _types(cls)
    return [(f.name, _type_name(types[f.name]), _show(f.default), f.metadata.get("help", ""))
            for f in dataclasses.fields(cls)]


@dataclasses.dataclass(frozen=True)
class NoSettings:
    """A backend without settings."""
