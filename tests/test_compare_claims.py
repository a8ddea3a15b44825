"""compare says only what holds: no paired test, no difference from a published number and no
"within the interval" for a group that is n/a or partial; the output says why instead.

Three real runs against synthetic model servers, without CLIP (so L3 is n/a in all of them):
two complete L1/L2 runs of different models, and one of dims 1-2 only (L1 partial, the rest n/a).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from evaluator import compare
from evaluator.data import sample_data
from evaluator.reports import numbers
from evaluator.results import stats
from serving.processes import ROOT, child_env
from tests.evaluator_runs import run
from tests.procs import model_server

QUIET = ["--log-level", "WARNING"]
REFERENCE = "seed2-llava-1.5-7b"  # L1 47.3, P2 30.8, L2 46.0 (task averages)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("claims")
    ann = sample_data.write_v2(root / "data", seed=6, per_dim=3)
    roots = sample_data.media_roots(root / "data")
    out = {}
    for name in ("alpha", "beta"):
        with model_server(["--backend", "synthetic", "--model", name, *QUIET]) as (target, _):
            out[name] = run(ann, roots, target, root / name)
            if name == "alpha":
                out["part"] = run(ann, roots, target, root / "part", dimensions=[1, 2])
    return out


def seedbench(*args) -> str:
    r = subprocess.run([sys.executable, "-m", "evaluator.cli", *map(str, args)], cwd=ROOT,
                       env=child_env(COLUMNS="250"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return r.stdout


def test_a_group_na_in_both_runs_gets_no_paired_test(runs):
    a, b = runs["alpha"], runs["beta"]
    assert a.summary.groups["L3"].status == b.summary.groups["L3"].status == "n/a"
    (pair,) = compare([a, b]).pairs
    l3, l2 = pair.groups["L3"], pair.groups["L2"]
    assert l3.task is None and l3.all is None and l3.withheld == "n/a in both runs"
    # L2 (complete in both) is tested, and on its own questions: L3's is not a copy of it.
    assert l2.withheld is None and l2.all.n == 24 * 3
    as_json = compare([a, b]).to_dict()["pairs"][0]["groups"]
    assert as_json["L3"] == {"task": None, "all": None, "dims": 24, "withheld": "n/a in both runs"}
    assert as_json["L2"]["all"]["n"] == 24 * 3
    l3_row = next(x for x in seedbench("compare", a.out, b.out).splitlines()
                  if x.startswith("│ L3 "))
    assert "n/a in both runs" in l3_row and "p=" not in l3_row


def test_a_partial_group_gets_no_paired_test_and_says_what_is_missing(runs):
    (pair,) = compare([runs["alpha"], runs["part"]]).pairs
    l1 = pair.groups["L1"]
    assert l1.task is None and l1.all is None
    assert l1.withheld == "partial in B (no answers in dims 3-22)"
    assert pair.groups["P2"].withheld.startswith("n/a in B")
    assert pair.dimensions[1].n == 3  # each dimension both answered is still tested


def test_a_partial_or_na_group_is_not_compared_with_the_published_number(runs):
    c = compare([runs["alpha"], runs["part"]], reference=REFERENCE)
    full, part = c.reference.runs
    assert all(r.status == "complete" and r.diff is not None and r.within_ci is not None
               for r in full.rows)
    rows = {r.group: r for r in part.rows}
    l1 = rows["L1"]
    assert l1.status == "partial" and l1.run == runs["part"].summary.groups["L1"].task
    assert l1.diff is None and l1.within_ci is None
    assert l1.why == "partial: no answers in dims 3-22"
    assert rows["P2"].status == "n/a" and rows["P2"].run is None and rows["P2"].diff is None
    row_json = c.to_dict()["reference"]["runs"][1]["rows"][0]
    assert (row_json["group"], row_json["diff"], row_json["within_ci"], row_json["status"]) == (
        "L1", None, None, "partial")
    # The table marks the partial number and says why it is not compared; no yes/no claim.
    text = seedbench("compare", runs["alpha"].out, runs["part"].out, "--reference", REFERENCE)
    (line,) = [x for x in text.splitlines() if "[part]" in x and "│ L1 " in x]
    assert "(partial)" in line and "not compared: partial: no answers in dims 3-22" in line
    assert "│ yes " not in line and "│ no " not in line


def test_partial_is_shown_wherever_a_partial_number_is(runs, tmp_path):
    part = runs["part"]
    text = seedbench("compare", runs["alpha"].out, part.out)
    board = text[text.index("Leaderboard"):text.index("Accuracy % per dimension")]
    (line,) = [x for x in board.splitlines() if "[part]" in x]
    task = numbers.pct(part.summary.groups["L1"].task)
    assert f"{task} (partial)" in line
    report = seedbench("report", part.out)
    assert f"{task} (partial)" in report and "PARTIAL: no answers in dims 3-22" in report
    page = tmp_path / "c.html"
    seedbench("compare", runs["alpha"].out, part.out, "--reference", REFERENCE, "--html", page)
    html = page.read_text()
    assert "no paired test: partial in B" in html and "not compared: partial" in html


def test_tiny_p_values_print_as_a_bound_never_zero():
    p = stats.mcnemar_exact(300, 0)  # 2**-299: far below what a float prints at 3 digits
    assert 0 <= p < 1e-80
    assert numbers.pvalue(p, "mcnemar-exact") == "<1e-6"
    assert numbers.pvalue(0.0, "paired-bootstrap") == "<0.001"  # 2000 resamples resolve no less
    assert numbers.pvalue(0.0312, "mcnemar-exact") == "0.0312"
    assert numbers.paired_cell(12.5, p, True, "mcnemar-exact") == "+12.50 (p=<1e-6)"
    from evaluator.reports.compare_types import PairedTest

    t = PairedTest.of(stats.paired_proportion(stats.PairCounts(400, 300, 0, 390, 90)))
    assert t.p > 0 and json.loads(json.dumps(t.to_dict()))["p"] > 0  # JSON keeps it nonzero
