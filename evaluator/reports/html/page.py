"""The page itself: sections in order, the title, the footnote on intervals."""

from __future__ import annotations

from pathlib import Path

from evaluator.reports.compare import Comparison
from evaluator.reports.html import charts, gallery, tables
from evaluator.reports.html.style import CSS, JS, esc
from serving.atomic_files import write_atomic


def sections(c: Comparison) -> list[tuple[str, str, str]]:
    """(id, heading, HTML) of each section the comparison has."""
    out = [
        ("leaderboard-section", "Leaderboard (answered questions)", tables.leaderboard(c)),
        ("leaderboard-all-section", "Leaderboard view (all selected questions, unanswered = wrong)",
         tables.leaderboard_all(c)),
        ("heatmap", "Capability heatmap (accuracy %, runs x dimensions)",
         f"{charts.heatmap(c)}<p class=\"sub\">Hover a cell for the value, its Wilson 95% "
         "interval and n.</p>"),
        ("bars", "Accuracy per dimension with 95% intervals",
         f"<p>{tables.runs_legend(c)}</p>{charts.bars(c)}"),
        ("dimensions-section", "Per-dimension accuracy", tables.dimension_table(c)),
        ("coverage-section", "Coverage and errors", tables.coverage(c)),
    ]
    if any(r.summary.subtypes for r in c.runs):
        out.insert(5, ("subtypes-section", "Accuracy per subtype", tables.subtype_table(c)))
    if c.pairs:
        out.append(("pairs", "Paired comparisons (same questions)", tables.pairs(c)))
    if c.reference is not None:
        out.append(("reference", f"Published reference: {c.reference.name}", tables.reference(c)))
    prov = tables.provenance(c)
    if prov:
        out.append(("provenance", "Provenance (where the inputs came from)", prov))
    g = gallery.gallery(c)
    if g:
        out.append(("gallery", "L3 gallery: generated image, option images, CLIP pick", g))
    return out


def render(c: Comparison, title: str | None = None) -> str:
    runs = c.runs
    title = title or (f"SEED-Bench report: {runs[0].label}" if len(runs) == 1
                      else f"SEED-Bench comparison: {len(runs)} runs")
    warnings = "".join(f'<div class="warn">warning: {esc(w)}</div>' for w in c.warnings)
    body = "".join(f'<section id="{sid}"><h2>{esc(h)}</h2><div class="scroll">{content}</div>'
                   "</section>" for sid, h, content in sections(c))
    iv = c.intervals or {}
    foot = (f'<p class="sub">Intervals: {esc(iv.get("dimension"))}; task averages: '
            f'{esc(iv.get("task"))}.</p>') if iv else ""
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1><p class=\"sub\">{esc(c.benchmark)} · "
            f"{len(runs)} run(s) · written by seedbench</p>{warnings}{body}{foot}"
            f'<div id="tip"></div><script>{JS}</script></body></html>')


def write(c: Comparison, out: str | Path, title: str | None = None) -> Path:
    return write_atomic(out, render(c, title), make_parents=True)
