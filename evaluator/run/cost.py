"""What a run against a paid remote API costs, and the cap that stops it.

Prices come from a small file (`--prices`, JSON or TOML): USD per million
prompt and completion tokens, per model name as the model server's Info names
it. The estimate multiplies them with the `usage` the replicas reported for
the calls answered so far (requests that failed for good report none).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from evaluator.run.client import USAGE_FIELDS

try:
    import tomllib
except ImportError:  # Python 3.10: JSON prices only
    tomllib = None

MILLION = 1_000_000


class PriceError(ValueError):
    """A prices file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Price:
    prompt: float  # USD per 1M prompt tokens
    completion: float  # USD per 1M completion tokens

    def of(self, usage: dict[str, int]) -> float:
        return (usage.get("prompt_tokens", 0) * self.prompt
                + usage.get("completion_tokens", 0) * self.completion) / MILLION


def load_prices(path: Path) -> dict[str, Price]:
    """`{"model-name": {"prompt": 2.5, "completion": 10.0}, ...}` (JSON, or the same as TOML
    tables); every entry needs both numbers, 0 or more."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PriceError(f"--prices {path}: cannot read it ({exc.strerror or exc})") from None
    kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
    if kind == "TOML" and tomllib is None:
        raise PriceError(f"--prices {path}: TOML needs Python 3.11 or later; write it as JSON")
    try:
        raw = tomllib.loads(text) if kind == "TOML" else json.loads(text)
    except ValueError as exc:  # TOMLDecodeError is a ValueError too
        raise PriceError(f"--prices {path}: not valid {kind} ({exc})") from None
    if not isinstance(raw, dict) or not raw:
        raise PriceError(f"--prices {path}: expected a table of model names, each with "
                         '"prompt" and "completion" (USD per 1M tokens)')
    prices = {}
    for model, entry in raw.items():
        if not isinstance(entry, dict):
            raise PriceError(f"--prices {path}: {model!r} must hold \"prompt\" and \"completion\"")
        values = []
        for side in ("prompt", "completion"):
            v = entry.get(side)
            if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                raise PriceError(f"--prices {path}: {model!r} needs {side!r} as a number of USD "
                                 f"per 1M tokens, 0 or more (got {v!r})")
            values.append(float(v))
        prices[model] = Price(*values)
    return prices


def usage_total(endpoints) -> dict[str, int]:
    """The replicas' `usage` tallies (client Endpoint objects) added up."""
    total = dict.fromkeys(USAGE_FIELDS, 0)
    for ep in endpoints:
        for name in USAGE_FIELDS:
            total[name] += ep.upstream[name]
    return total


@dataclass(frozen=True)
class Budget:
    """The price of the run's model and the cap (None: no cap) on this run's estimate."""

    model: str
    price: Price | None
    max_cost: float | None

    def spent(self, endpoints) -> float | None:
        return None if self.price is None else self.price.of(usage_total(endpoints))

    def exhausted(self, endpoints) -> str | None:
        """Why no new question may be sent, or None."""
        if self.max_cost is None or self.price is None:
            return None
        spent = self.spent(endpoints)
        if spent >= self.max_cost:
            return (f"estimated cost ${spent:.4f} reached --max-cost ${self.max_cost:g}; "
                    "no new question was sent (those in flight were kept)")
        return None

    def record(self, endpoints) -> dict:
        """run.json's `usage`: the tallies, the price used and the estimate."""
        spent = self.spent(endpoints)
        return {**usage_total(endpoints), "model": self.model,
                "price_usd_per_1m": None if self.price is None else
                {"prompt": self.price.prompt, "completion": self.price.completion},
                "cost_usd": None if spent is None else round(spent, 6),
                "max_cost_usd": self.max_cost}


def budget_for(model: str, prices: dict[str, Price] | None, max_cost: float | None) -> Budget:
    """The run's budget; a cap with no price for the model is refused (nothing can stop it)."""
    price = (prices or {}).get(model)
    if max_cost is not None and price is None:
        known = ", ".join(sorted(prices or {})) or "none"
        raise PriceError(f"--max-cost needs a price for the model {model!r} in --prices "
                         f"(models priced: {known})")
    return Budget(model, price, max_cost)
