"""Prices files (JSON and TOML) and the budget arithmetic, without a server."""

from __future__ import annotations

import json
import sys

import pytest

from evaluator import cli
from evaluator.run import cost
from evaluator.run.client import USAGE_FIELDS


def test_json_and_toml_prices_read_the_same(tmp_path):
    as_json = tmp_path / "p.json"
    as_json.write_text(json.dumps({"gpt-x": {"prompt": 2.5, "completion": 10}}))
    assert cost.load_prices(as_json) == {"gpt-x": cost.Price(2.5, 10.0)}
    if sys.version_info >= (3, 11):
        as_toml = tmp_path / "p.toml"
        as_toml.write_text('["gpt-x"]\nprompt = 2.5\ncompletion = 10\n')
        assert cost.load_prices(as_toml) == cost.load_prices(as_json)


@pytest.mark.parametrize("text, named", [
    ("{not json", "not valid JSON"),
    ("[]", "a table of model names"),
    ('{"m": 3}', "'m' must hold"),
    ('{"m": {"prompt": 1}}', "'m' needs 'completion'"),
    ('{"m": {"prompt": -1, "completion": 1}}', "'m' needs 'prompt'"),
    ('{"m": {"prompt": "1", "completion": 1}}', "'m' needs 'prompt'"),
])
def test_a_bad_prices_file_is_named_with_its_entry(tmp_path, text, named):
    path = tmp_path / "prices.json"
    path.write_text(text)
    with pytest.raises(cost.PriceError, match="--prices .*prices.json") as info:
        cost.load_prices(path)
    assert named in str(info.value)


class FakeEndpoint:
    def __init__(self, **usage):
        self.upstream = {**dict.fromkeys(USAGE_FIELDS, 0), **usage}


def test_the_budget_adds_the_replicas_and_stops_at_the_cap():
    eps = [FakeEndpoint(requests=3, retries=1, prompt_tokens=400_000, completion_tokens=10_000),
           FakeEndpoint(requests=2, prompt_tokens=100_000, completion_tokens=40_000)]
    budget = cost.budget_for("m", {"m": cost.Price(2.0, 10.0)}, max_cost=1.5)
    assert budget.spent(eps) == pytest.approx(0.5 * 2 + 0.05 * 10)  # $1.50
    assert "reached --max-cost $1.5" in budget.exhausted(eps)
    assert cost.budget_for("m", {"m": cost.Price(2.0, 10.0)}, 1.6).exhausted(eps) is None
    rec = budget.record(eps)
    assert rec["requests"] == 5 and rec["retries"] == 1 and rec["cost_usd"] == 1.5
    unpriced = cost.budget_for("m", {"other": cost.Price(1, 1)}, None)
    assert unpriced.record(eps)["cost_usd"] is None and unpriced.exhausted(eps) is None
    with pytest.raises(cost.PriceError, match="'m'.*models priced: other"):
        cost.budget_for("m", {"other": cost.Price(1, 1)}, 1.0)


def test_a_cap_needs_prices_and_a_positive_amount(tmp_path, capsys):
    ann = tmp_path / "a.json"
    ann.write_text("{}")
    base = ["run", "--annotations", str(ann), "--model", "127.0.0.1:1", "--out", str(tmp_path)]
    assert cli.main([*base, "--max-cost", "5"]) == 2
    assert "--max-cost needs --prices" in capsys.readouterr().err
    assert cli.main([*base, "--max-cost", "0"]) == 2
    assert "--max-cost must be a positive number" in capsys.readouterr().err
