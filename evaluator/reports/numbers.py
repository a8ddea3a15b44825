"""How every report writes a number: percentages, intervals, differences, p-values.

The terminal tables, the Markdown/CSV text, the HTML page and the PNG figures
all format through here, so a value reads the same everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from evaluator.results import stats

NA = "n/a"
# Below this an exact p-value prints as a bound: more digits claim nothing useful.
P_FLOOR = 1e-6


def pct(x: float | None, digits: int = 2) -> str:
    """A percentage's number (no % sign): "75.00", or "n/a" when there is none."""
    return NA if x is None else f"{x:.{digits}f}"


def ci(interval: Sequence[float] | None, digits: int = 1, brackets: bool = False) -> str:
    """An interval: "60.1-85.2", or "[60.1, 85.2]" with brackets; "" when there is none."""
    if not interval:
        return ""
    lo, hi = interval[0], interval[1]
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]" if brackets else f"{lo:.{digits}f}-{hi:.{digits}f}"


def signed(x: float | None, digits: int = 2) -> str:
    """A difference in points: "+1.25", "-0.50"; "n/a" when there is none."""
    return NA if x is None else f"{x:+.{digits}f}"


def p_floor(test: str | None) -> float:
    """The smallest p a test can report: a bootstrap's resolution is 2 / resamples."""
    return 2 / stats.RESAMPLES if test == "paired-bootstrap" else P_FLOOR


def pvalue(p: float, test: str | None = None) -> str:
    """"0.0312", "<1e-06", never "0": a tiny p-value prints as the bound it is below."""
    floor = p_floor(test)
    return "<" + f"{floor:g}".replace("e-0", "e-") if p < floor else f"{p:.3g}"


def share(part: float, whole: float, digits: int = 1) -> str:
    """part / whole as a percentage with its sign: "87.5%"; "" when whole is 0."""
    return f"{100.0 * part / whole:.{digits}f}%" if whole else ""


def latency(ms) -> str:
    """p50 / p90 / p99 of a Latency (or None): "9 / 19 / 39 ms"."""
    if ms is None:
        return "-"
    return f"{ms.p50:g} / {ms.p90:g} / {ms.p99:g} ms"


def usd(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None else f"${x:.{digits}f}"


def paired_cell(diff: float, p: float, significant: bool, test: str | None) -> str:
    """A paired test in one cell: "+1.25 (p=0.031)" or "+0.50 (p=0.62, n.s.)"."""
    return f"{signed(diff)} (p={pvalue(p, test)}{'' if significant else ', n.s.'})"
