"""Intervals and paired tests (evaluator/stats.py): coverage, width, significance, determinism."""

from __future__ import annotations

import math
import random

import pytest

from evaluator.data import benchmarks
from evaluator.results import stats


def _mean_var(xs):
    m = sum(xs) / len(xs)
    return m, sum((x - m) ** 2 for x in xs) / len(xs)


@pytest.mark.parametrize("n,p", [(10, 0.3), (4649, 0.47), (3, 0.9), (1000, 0.01), (50, 1.0)])
def test_binomial_draws_have_the_binomial_mean_and_variance(n, p):
    rng = random.Random(3)
    xs = [stats.binomial(rng, n, p) for _ in range(20000)]
    assert all(0 <= x <= n for x in xs)
    m, v = _mean_var(xs)
    assert m == pytest.approx(n * p, abs=4 * math.sqrt(n * p * (1 - p) / 20000) + 1e-9)
    assert v == pytest.approx(n * p * (1 - p), rel=0.05, abs=1e-9)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.85])
@pytest.mark.parametrize("n", [30, 200, 1000])
def test_wilson_covers_the_true_proportion_95_percent_of_the_time(p, n):
    rng = random.Random(f"{p}-{n}")
    trials = 2000
    hits = 0
    for _ in range(trials):
        lo, hi = stats.wilson(stats.binomial(rng, n, p), n)
        hits += lo <= 100 * p <= hi
    # 2000 trials: a binomial standard error of ~0.5 points around 95%.
    assert 0.93 <= hits / trials <= 0.975


def test_wilson_width_shrinks_with_n_and_stays_in_range():
    widths = []
    for n in (10, 40, 160, 640, 2560):
        lo, hi = stats.wilson(int(0.6 * n), n)
        assert 0 <= lo < 60 < hi <= 100
        widths.append(hi - lo)
    assert all(a > b for a, b in zip(widths, widths[1:], strict=False))
    assert widths[0] / widths[-1] == pytest.approx(16, rel=0.35)  # ~1/sqrt(n)
    assert stats.wilson(0, 20)[0] == 0.0 and stats.wilson(20, 20)[1] == 100.0
    assert stats.wilson(0, 0) is None


def test_bootstrap_task_average_covers_the_mean_of_the_true_accuracies():
    ps, ns = [0.3, 0.55, 0.7, 0.9], [60, 150, 100, 40]
    true = 100 * sum(ps) / len(ps)
    rng = random.Random(11)
    trials, hits = 400, 0
    for t in range(trials):
        counts = {d: (stats.binomial(rng, n, p), n) for d, (p, n) in enumerate(zip(ps, ns, strict=True))}
        lo, hi = stats.bootstrap_task_average(counts, resamples=400, seed=t)
        hits += lo <= true <= hi
    assert 0.92 <= hits / trials <= 0.98


def test_bootstrap_width_shrinks_with_n_and_is_seeded():
    widths = []
    for n in (20, 80, 320, 1280):
        lo, hi = stats.bootstrap_task_average({1: (n // 2, n), 2: (3 * n // 4, n)}, resamples=1000)
        widths.append(hi - lo)
    assert all(a > b for a, b in zip(widths, widths[1:], strict=False))
    counts = {1: (30, 50), 2: (10, 40)}
    assert stats.bootstrap_task_average(counts) == stats.bootstrap_task_average(counts)
    assert stats.bootstrap_task_average(counts, seed=1) != stats.bootstrap_task_average(counts)
    assert stats.bootstrap_task_average({1: (0, 0)}) is None


def test_summary_gets_intervals_and_n_for_every_dimension_and_group():
    """The typed summary of a SEED-Bench-1 run: dim 1 30/50, dim 3 9/10, dim 2 and the video
    dims selected but unanswered."""
    from evaluator.results.store import Row
    from evaluator.results.summary import summarize

    rows = []
    for d, correct, answered, selected in ((1, 30, 50, 50), (2, 0, 0, 2), (3, 9, 10, 10),
                                            (10, 0, 0, 1)):
        for k in range(selected):
            status = "ok" if k < answered else None
            rows.append(Row(f"{d}_{k}", len(rows), d, "A", status,
                            "A" if k < correct else "B" if status else None, None, None))
    run = {"benchmark": benchmarks.SEED_BENCH_1.name, "annotations": "f.json", "filters": {},
           "model": {"name": "m", "fingerprint": "fp", "backend": "b", "details": {}},
           "method": "ppl", "include_end_of_turn": False, "skipped_invalid": 0, "clip": None}
    s = summarize(run, rows)
    d1, d2 = s.dimensions[1], s.dimensions[2]
    assert d1.n == 50 and d1.ci_method == "wilson"
    assert d1.ci95 == tuple(round(x, 4) for x in stats.wilson(30, 50))
    assert d2.n == 0 and d2.ci95 is None and d2.accuracy is None
    image = s.groups["Image"]
    assert image.n == 60 and image.ci_method == "bootstrap" and image.all_ci_method == "wilson"
    assert image.task == 75.0 and image.task_ci95[0] < 75.0 < image.task_ci95[1]
    assert image.all_ci95 == tuple(round(x, 4) for x in stats.wilson(39, 60))
    assert image.task_ci95 == stats.rounded(stats.task_interval(
        stats.dimension_draws({1: (30, 50), 3: (9, 10)}), (1, 3)))
    assert image.status == "partial" and image.missing.dimensions == (2, 4, 5, 6, 7, 8, 9)
    assert s.groups["Video"].status == "n/a" and s.groups["Video"].task_ci95 is None
    assert s.to_dict()["averages"]["Video"] is None
    assert s.intervals["level"] == 0.95 and "Wilson" in s.intervals["dimension"]
    assert set(benchmarks.SEED_BENCH_1.dimensions) == set(range(1, 13))


# -- paired tests -----------------------------------------------------------------------------

def _pairs(a: list[bool], b: list[bool]) -> stats.PairCounts:
    return stats.PairCounts(n=len(a), a_only=sum(x and not y for x, y in zip(a, b, strict=True)),
                            b_only=sum(y and not x for x, y in zip(a, b, strict=True)),
                            a_correct=sum(a), b_correct=sum(b))


def test_mcnemar_exact_values():
    assert stats.mcnemar_exact(0, 0) == 1.0
    assert stats.mcnemar_exact(5, 5) == 1.0
    assert stats.mcnemar_exact(10, 0) == pytest.approx(2 / 1024)
    assert stats.mcnemar_exact(0, 10) == stats.mcnemar_exact(10, 0)
    # 2 * P(X <= 1), X ~ Bin(6, 1/2) = 2 * 7/64
    assert stats.mcnemar_exact(1, 5) == pytest.approx(14 / 64)
    # full-benchmark sizes (thousands of discordant pairs) neither overflow nor lose the tail
    assert stats.mcnemar_exact(3000, 3000) == 1.0
    near = stats.mcnemar_exact(3000, 3100)  # z ~ 1.28: p ~ 0.2
    assert 0.15 < near < 0.25
    assert 0 <= stats.mcnemar_exact(3000, 3400) < 1e-5


def test_identical_runs_are_not_significantly_different():
    rng = random.Random(5)
    answers = {d: [rng.random() < 0.6 for _ in range(200)] for d in range(1, 6)}
    strata = {d: _pairs(a, a) for d, a in answers.items()}
    for c in strata.values():
        r = stats.paired_proportion(c)
        assert r.diff == 0 and r.p == 1.0 and not r.significant
    boot = stats.paired_bootstrap_task(strata)
    assert boot.diff == 0 and boot.p == 1.0 and not boot.significant
    assert boot.ci95 == (0.0, 0.0)


def test_a_constructed_large_difference_is_significant():
    rng = random.Random(6)
    strata = {}
    for d in range(1, 6):
        a = [rng.random() < 0.8 for _ in range(150)]
        b = [x if rng.random() < 0.5 else False for x in a]  # B loses about half of A's hits
        strata[d] = _pairs(a, b)
        r = stats.paired_proportion(strata[d])
        assert r.diff > 20 and r.significant, r
    boot = stats.paired_bootstrap_task(strata)
    assert boot.diff > 20 and boot.significant and boot.ci95[0] > 0
    # and the other way round
    flipped = {d: stats.PairCounts(c.n, c.b_only, c.a_only, c.b_correct, c.a_correct)
               for d, c in strata.items()}
    back = stats.paired_bootstrap_task(flipped)
    assert back.diff == pytest.approx(-boot.diff) and back.significant and back.ci95[1] < 0


def test_a_small_difference_on_few_questions_is_not_significant():
    a = [True, True, False, True, False, True, False, True, True, False, True, False]
    b = [True, False, False, True, False, True, True, True, False, False, True, False]
    c = _pairs(a, b)
    assert c.diff > 0  # A is ahead by one question in twelve
    r = stats.paired_proportion(c)
    assert not r.significant and r.p > 0.5
    boot = stats.paired_bootstrap_task({1: c, 2: _pairs(b[:8], a[:8])})
    assert not boot.significant and boot.ci95[0] < 0 < boot.ci95[1]
