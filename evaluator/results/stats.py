"""95% intervals and paired tests for accuracies. Pure Python (no numpy), deterministic.

Why these methods:
- One dimension's accuracy, and a question-weighted group average, are single
  proportions (correct / answered): the Wilson score interval, which behaves
  at 0%, 100% and small n where the normal approximation does not.
- A task average (mean of per-dimension accuracies) is not a proportion: a
  seeded bootstrap over questions, stratified by dimension (each dimension's
  questions are resampled within it, as the benchmark's composition is fixed).
- Two runs on the same questions: McNemar's exact test for one proportion
  (dimension, question-weighted group), a paired stratified bootstrap for a
  task average.

Resampling n questions of which k are correct, with replacement, gives a
Binomial(n, k/n) count of correct ones; resampling n question pairs gives a
multinomial over (A only right, B only right, rest). So the bootstrap draws
those counts directly: exactly the question bootstrap, at the cost of a few
draws per dimension instead of n.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054  # two-sided 95% normal quantile
RESAMPLES = 2000
SEED = 0
ALPHA = 0.05
WILSON = "wilson"
BOOTSTRAP = "bootstrap"


def wilson(correct: int, total: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for correct/total, in percent (None when total is 0)."""
    if total <= 0:
        return None
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return 100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half)


def binomial(rng: random.Random, n: int, p: float) -> int:
    """One Binomial(n, p) draw by inversion, searching outward from the mode.

    Exact up to floating point and O(sqrt(n p (1-p))) steps; written here so
    draws are the same on every Python version (random.binomialvariate is 3.12+).
    """
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    q = 1.0 - p
    mode = min(n, int((n + 1) * p))
    log_pm = (math.lgamma(n + 1) - math.lgamma(mode + 1) - math.lgamma(n - mode + 1)
              + mode * math.log(p) + (n - mode) * math.log(q))
    pm = math.exp(log_pm)
    u = rng.random()
    if u <= pm:
        return mode
    u -= pm
    lo = hi = mode
    p_lo = p_hi = pm
    ratio = p / q
    while lo > 0 or hi < n:
        if hi < n:
            p_hi *= (n - hi) / (hi + 1) * ratio
            hi += 1
            if u <= p_hi:
                return hi
            u -= p_hi
        if lo > 0:
            p_lo *= lo / (n - lo + 1) / ratio
            lo -= 1
            if u <= p_lo:
                return lo
            u -= p_lo
    return mode  # rounding left a sliver of probability unassigned


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 1]) of already sorted values."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    pos = q * (len(sorted_values) - 1)
    i = int(math.floor(pos))
    j = min(i + 1, len(sorted_values) - 1)
    return sorted_values[i] + (sorted_values[j] - sorted_values[i]) * (pos - i)


def _rng(seed: int, stratum: object) -> random.Random:
    # One stream per dimension: a dimension's draws do not depend on which others exist.
    return random.Random(f"seedbench:{seed}:{stratum}")


def resampled_accuracies(correct: int, total: int, stratum: object,
                         resamples: int = RESAMPLES, seed: int = SEED) -> list[float]:
    """Bootstrap replicates of one dimension's accuracy (percent)."""
    rng = _rng(seed, stratum)
    p = correct / total
    return [100.0 * binomial(rng, total, p) / total for _ in range(resamples)]


def bootstrap_task_average(counts: dict[object, tuple[int, int]], resamples: int = RESAMPLES,
                           seed: int = SEED) -> tuple[float, float] | None:
    """95% percentile interval of the mean of per-stratum accuracies.

    `counts` maps a stratum (dimension id) to (correct, answered); strata with no
    answers are left out, as they are from the task average itself.
    """
    draws = {s: resampled_accuracies(c, n, s, resamples, seed)
             for s, (c, n) in counts.items() if n > 0}
    return _mean_interval(list(draws.values()), resamples)


def _mean_interval(per_stratum: list[list[float]], resamples: int) -> tuple[float, float] | None:
    if not per_stratum:
        return None
    means = sorted(sum(d[i] for d in per_stratum) / len(per_stratum) for i in range(resamples))
    return percentile(means, ALPHA / 2), percentile(means, 1 - ALPHA / 2)


# -- summary.json --------------------------------------------------------------------------------

def describe(resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """What the `ci95` fields of summary.json are, recorded beside them."""
    return {
        "level": 0.95,
        "dimension": f"{WILSON}: Wilson score interval of correct/answered",
        "task": f"{BOOTSTRAP}: percentile interval of the task average over {resamples} "
                f"resamples of the answered questions, stratified by dimension (seed {seed})",
        "all": f"{WILSON}: Wilson score interval of the group's correct/answered",
        "resamples": resamples,
        "seed": seed,
    }


def rounded(ci: tuple[float, float] | None) -> tuple[float, float] | None:
    """An interval as summary.json stores it (4 decimals)."""
    return None if ci is None else (round(ci[0], 4), round(ci[1], 4))


def dimension_draws(counts: dict[int, tuple[int, int]], resamples: int = RESAMPLES,
                    seed: int = SEED) -> dict[int, list[float]]:
    """Bootstrap replicates of each answered dimension's accuracy; `counts`: dim ->
    (correct, answered). Drawn once per dimension and shared by every group holding it."""
    return {d: resampled_accuracies(c, n, d, resamples, seed)
            for d, (c, n) in counts.items() if n > 0}


def task_interval(draws: dict[int, list[float]], dims, resamples: int = RESAMPLES
                  ) -> tuple[float, float] | None:
    """The bootstrap 95% interval of a group's task average over its answered dims."""
    return _mean_interval([draws[d] for d in dims if d in draws], resamples)


# -- paired comparisons --------------------------------------------------------------------------

@dataclass(frozen=True)
class PairCounts:
    """One stratum of two runs' answers to the same questions."""

    n: int  # questions both runs answered
    a_only: int  # A right, B wrong
    b_only: int  # A wrong, B right
    a_correct: int
    b_correct: int

    @property
    def diff(self) -> float:
        """Accuracy of A minus accuracy of B, in points."""
        return 100.0 * (self.a_only - self.b_only) / self.n if self.n else 0.0


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of the discordant pairs at 1/2."""
    m = a_only + b_only
    if m == 0:
        return 1.0
    k = min(a_only, b_only)
    term = tail = 1  # C(m, 0); exact integers: 2.0 ** m overflows past m = 1023
    for i in range(k):
        term = term * (m - i) // (i + 1)
        tail += term
    return min(1.0, 2 * tail / (1 << m))


@dataclass(frozen=True)
class PairedResult:
    diff: float  # points, A - B
    p: float
    method: str
    ci95: tuple[float, float] | None = None  # of the difference (bootstrap only)

    @property
    def significant(self) -> bool:
        return self.p < ALPHA


def paired_proportion(c: PairCounts) -> PairedResult:
    return PairedResult(diff=c.diff, p=mcnemar_exact(c.a_only, c.b_only), method="mcnemar-exact")


def paired_diff_draws(c: PairCounts, stratum: object, resamples: int = RESAMPLES,
                      seed: int = SEED) -> list[float]:
    """Bootstrap replicates of one stratum's A - B accuracy difference (points).

    Resampling the n question pairs is a multinomial over (A only right, B only
    right, the rest): drawn as a binomial for A-only, then one for B-only among the rest.
    """
    rng = _rng(seed, f"pair:{stratum}")
    pa, pb = c.a_only / c.n, c.b_only / c.n
    out = []
    for _ in range(resamples):
        a = binomial(rng, c.n, pa)
        b = binomial(rng, c.n - a, min(1.0, pb / (1 - pa))) if pa < 1 else 0
        out.append(100.0 * (a - b) / c.n)
    return out


def paired_bootstrap_task(strata: dict[object, PairCounts], resamples: int = RESAMPLES,
                          seed: int = SEED,
                          draws: dict[object, list[float]] | None = None) -> PairedResult | None:
    """Difference of task averages (A - B) with a paired bootstrap stratified by dimension.

    Each resample redraws every dimension's question pairs; p is twice the share
    of resampled differences on the far side of zero (capped at 1). `draws` may
    hold each stratum's paired_diff_draws already (groups sharing dimensions
    then share the work; the result is the same).
    """
    used = {s: c for s, c in strata.items() if c.n > 0}
    if not used:
        return None
    observed = sum(c.diff for c in used.values()) / len(used)
    per = [draws[s] if draws is not None and s in draws else
           paired_diff_draws(c, s, resamples, seed) for s, c in used.items()]
    diffs = sorted(sum(d[i] for d in per) / len(per) for i in range(resamples))
    below = sum(1 for d in diffs if d <= 0) / resamples
    above = sum(1 for d in diffs if d >= 0) / resamples
    return PairedResult(diff=observed, p=min(1.0, 2 * min(below, above)),
                        method="paired-bootstrap",
                        ci95=(percentile(diffs, ALPHA / 2), percentile(diffs, 1 - ALPHA / 2)))
