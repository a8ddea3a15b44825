"""The page's charts as inline SVG: the capability heatmap and the per-dimension bars."""

from __future__ import annotations

from evaluator.reports import numbers as N
from evaluator.reports.compare import Comparison
from evaluator.reports.html.style import PALETTE, colour, esc, hex_colour, ink


def _tip(label: str, d: int, name: str, x) -> str:
    return (f"{label} - {d}. {name}: {N.pct(x.accuracy)}% {N.ci(x.ci95, brackets=True)} "
            f"n={x.n}")


def heatmap(c: Comparison) -> str:
    runs, dims = c.runs, c.dimensions
    values = [x.accuracy for r in runs for x in r.summary.dimensions.values()
              if x.accuracy is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 100.0)
    span = (hi - lo) or 1.0
    cw, ch, left, top = 40, 30, 190, 170
    width, height = left + cw * len(dims) + 100, top + ch * len(runs) + 60
    parts = [f'<svg id="heatmap-svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             'aria-label="accuracy heatmap: runs by dimensions">']
    for j, (d, name) in enumerate(dims):
        x = left + j * cw + cw / 2
        parts.append(f'<text x="{x}" y="{top - 8}" font-size="11" transform="rotate(-50 {x} '
                     f'{top - 8})">{d}. {esc(name)}</text>')
    for i, r in enumerate(runs):
        y = top + i * ch
        parts.append(f'<text x="{left - 8}" y="{y + ch / 2 + 4}" font-size="12" text-anchor="end">'
                     f'{esc(r.label)}</text>')
        for j, (d, name) in enumerate(dims):
            s = r.summary.dimensions.get(d)
            x = left + j * cw
            if s is None or s.accuracy is None:
                fill, text_ink, text = (238, 238, 238), "#666", N.NA
                tip = f"{r.label} - {d}. {name}: no answers"
            else:
                fill = colour((s.accuracy - lo) / span)
                text_ink, text = ink(fill), N.pct(s.accuracy, 1)
                tip = _tip(r.label, d, name, s)
            parts.append(
                f'<g class="cell" data-run="{esc(r.label)}" data-dim="{d}" '
                f'data-tip="{esc(tip)}"><rect x="{x}" y="{y}" width="{cw - 2}" height="{ch - 2}" '
                f'fill="{hex_colour(fill)}"><title>{esc(tip)}</title></rect>'
                f'<text x="{x + (cw - 2) / 2}" y="{y + ch / 2 + 3}" font-size="11" '
                f'text-anchor="middle" fill="{text_ink}">{text}</text></g>')
    ly = top + ch * len(runs) + 22  # the legend
    for k in range(11):
        parts.append(f'<rect x="{left + k * 24}" y="{ly}" width="24" height="12" '
                     f'fill="{hex_colour(colour(k / 10))}"/>')
    parts.append(f'<text x="{left - 8}" y="{ly + 10}" font-size="11" text-anchor="end">'
                 f'{N.pct(lo, 1)}%</text><text x="{left + 11 * 24 + 6}" y="{ly + 10}" '
                 f'font-size="11">{N.pct(hi, 1)}%</text>')
    parts.append("</svg>")
    return "".join(parts)


def bars(c: Comparison) -> str:
    runs, dims = c.runs, c.dimensions
    bh, gap, left, plot_w = 9, 8, 230, 520
    band = bh * len(runs) + gap
    top = 24
    height = top + band * len(dims) + 30
    width = left + plot_w + 60
    parts = [f'<svg id="bars-svg" width="{width}" height="{height}"'
             f' viewBox="0 0 {width} {height}" role="img" aria-label="accuracy per dimension with '
             '95% intervals">']
    for v in range(0, 101, 20):
        x = left + plot_w * v / 100
        parts.append(f'<line x1="{x}" y1="{top - 4}" x2="{x}" y2="{height - 26}" stroke="#ddd"/>'
                     f'<text x="{x}" y="{top - 8}" font-size="10" text-anchor="middle">{v}%</text>')
    for j, (d, name) in enumerate(dims):
        y0 = top + j * band
        parts.append(f'<text x="{left - 8}" y="{y0 + band / 2}" font-size="11" text-anchor="end">'
                     f'{d}. {esc(name)}</text>')
        for i, r in enumerate(runs):
            s = r.summary.dimensions.get(d)
            y = y0 + i * bh
            if s is None or s.accuracy is None:
                continue
            w = plot_w * s.accuracy / 100
            tip = _tip(r.label, d, name, s)
            parts.append(f'<g class="bar" data-tip="{esc(tip)}"><rect x="{left}" y="{y}" '
                         f'width="{w:.1f}" height="{bh - 2}" fill="{PALETTE[i % len(PALETTE)]}" '
                         f'opacity="0.85"><title>{esc(tip)}</title></rect>')
            if s.ci95:
                x1 = left + plot_w * s.ci95[0] / 100
                x2 = left + plot_w * s.ci95[1] / 100
                ym = y + (bh - 2) / 2
                parts.append(f'<line x1="{x1:.1f}" y1="{ym}" x2="{x2:.1f}" y2="{ym}" stroke="#000"/>'
                             f'<line x1="{x1:.1f}" y1="{y}" x2="{x1:.1f}" y2="{y + bh - 2}" '
                             f'stroke="#000"/><line x1="{x2:.1f}" y1="{y}" x2="{x2:.1f}" '
                             f'y2="{y + bh - 2}" stroke="#000"/>')
            parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)
