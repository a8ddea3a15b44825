"""PNG exports of a comparison: the capability heatmap and the per-dimension bars.

matplotlib is imported only here and only when a PNG is asked for, so the
evaluator installs and runs without it (`pip install 'seedbench-platform[reports]'`
adds it). Files are written with a fixed DPI and no timestamp metadata, so the
same comparison gives the same bytes.
"""

from __future__ import annotations

import io
from pathlib import Path

from evaluator.reports import numbers as N
from evaluator.reports.compare import Comparison
from evaluator.reports.html.style import PALETTE, STOPS
from serving.atomic_files import write_atomic

INSTALL_HINT = ("PNG export needs matplotlib: pip install 'seedbench-platform[reports]' "
                "(or pip install matplotlib==3.11.2)")
DPI = 110


class MatplotlibMissing(Exception):
    """matplotlib is not installed: the message says how to install it."""


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise MatplotlibMissing(INSTALL_HINT) from None
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt
    from matplotlib.colors import LinearSegmentedColormap

    cmap = LinearSegmentedColormap.from_list(
        "seedbench", [(t, tuple(v / 255 for v in c)) for t, c in STOPS])
    return plt, cmap


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return write_atomic(path, buf.getvalue())


def _plain(text: str) -> str:
    """Text from data as matplotlib shows it literally ("$" would start mathtext)."""
    return text.replace("$", r"\$")


def _accuracy(run, d: int) -> float | None:
    x = run.summary.dimensions.get(d)
    return None if x is None else x.accuracy


def heatmap(c: Comparison, path: Path) -> Path:
    plt, cmap = _pyplot()
    runs, dims = c.runs, c.dimensions
    grid = [[_accuracy(r, d) for d, _ in dims] for r in runs]
    values = [v for row in grid for v in row if v is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 100.0)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.42 * len(dims) + 3), 1.2 + 0.45 * len(runs)))
    masked = [[float("nan") if v is None else v for v in row] for row in grid]
    im = ax.imshow(masked, cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1, aspect="auto")
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if v is None:
                ax.text(j, i, N.NA, ha="center", va="center", fontsize=6, color="#666")
                continue
            rgb = cmap((v - lo) / ((hi - lo) or 1))[:3]
            light = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 0.55
            ax.text(j, i, N.pct(v, 0), ha="center", va="center", fontsize=7,
                    color="black" if light else "white")
    ax.set_xticks(range(len(dims)), [_plain(f"{d}. {name}") for d, name in dims], rotation=60,
                  ha="right", fontsize=7)
    ax.set_yticks(range(len(runs)), [_plain(r.label) for r in runs], fontsize=8)
    ax.set_title(_plain(f"{c.benchmark}: accuracy % per dimension"), fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01)
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def bars(c: Comparison, path: Path) -> Path:
    plt, _ = _pyplot()
    runs, dims = c.runs, c.dimensions
    fig, ax = plt.subplots(figsize=(max(7.0, 0.35 * len(dims) * max(1, len(runs)) ** 0.5 + 3), 4.2))
    width = 0.8 / max(1, len(runs))
    for i, r in enumerate(runs):
        xs, ys, err_lo, err_hi = [], [], [], []
        for j, (d, _) in enumerate(dims):
            s = r.summary.dimensions.get(d)
            if not s or s.accuracy is None:
                continue
            xs.append(j - 0.4 + width * (i + 0.5))
            ys.append(s.accuracy)
            ci = s.ci95 or (s.accuracy, s.accuracy)
            err_lo.append(s.accuracy - ci[0])
            err_hi.append(ci[1] - s.accuracy)
        ax.bar(xs, ys, width=width, color=PALETTE[i % len(PALETTE)], label=_plain(r.label),
               yerr=[err_lo, err_hi], capsize=1.5, error_kw={"elinewidth": 0.7})
    ax.set_xticks(range(len(dims)), [str(d) for d, _ in dims], fontsize=7)
    ax.set_xlabel("dimension", fontsize=8)
    ax.set_ylabel("accuracy % (Wilson 95% interval)", fontsize=8)
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(_plain(f"{c.benchmark}: accuracy per dimension"), fontsize=10)
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def write(c: Comparison, out_dir: str | Path) -> list[Path]:
    """heatmap.png and bars.png in out_dir. Raises MatplotlibMissing without matplotlib."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [heatmap(c, out / "heatmap.png"), bars(c, out / "bars.png")]
