"""The published SEED-Bench rows (references.json): the one place they are written down.

`seedbench compare --reference NAME` puts a run beside a row; `seedbench presets`
lists, for each preset, the rows whose `preset` names it. Both read this file, so
a number or a preset match is corrected in one place.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

FILE = Path(__file__).with_name("references.json")


@cache
def load() -> dict[str, dict]:
    """name -> {model, benchmark, method, preset, average, scores, source, note}."""
    return json.loads(FILE.read_text(encoding="utf-8"))["references"]


def describe(name: str, ref: dict) -> str:
    """One line: the model, its numbers, which average and method, the source."""
    scores = ", ".join(f"{g} {v}" for g, v in ref["scores"].items())
    return (f"{ref['model']}: {scores} ({ref['benchmark']}, {ref['method']}, {ref['average']} "
            f"average; {ref['source']}; --reference {name})")


def for_preset(preset: str | None) -> list[str]:
    """The published rows a preset is meant to reproduce (preset None: rows no preset does)."""
    return [describe(name, ref) for name, ref in load().items() if ref.get("preset") == preset]
