"""One self-contained HTML page from a comparison (evaluator.reports.compare.build): nothing external.

Styles, the sorting script and every chart (inline SVG) live in the page;
images are embedded as data URIs, so the file can be mailed or archived and
opens offline. `seedbench report RUN --html` is the same page for one run.
"""

from __future__ import annotations

import base64
import html
import io
import random
from pathlib import Path

from PIL import Image

from evaluator.data.annotation_file import AnnotationError, read_questions
from evaluator.data.image_source import ImageSource, locate
from serving.atomic_files import write_atomic

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
# Heatmap colour stops (dark blue -> teal -> yellow); readable in grey print too.
STOPS = [(0.0, (68, 1, 84)), (0.25, (59, 82, 139)), (0.5, (33, 145, 140)),
         (0.75, (94, 201, 98)), (1.0, (253, 231, 37))]
GALLERY_PER_DIM = 2
THUMB = 128

CSS = """
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;color:#222;
background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.sub{color:#666}.warn{background:#fff4d6;border-left:4px solid #e0a800;padding:6px 10px;margin:4px 0}
table{border-collapse:collapse;margin:6px 0}th,td{padding:3px 8px;border-bottom:1px solid #eee;
text-align:right;white-space:nowrap}th{background:#f5f5f5;position:sticky;top:0}
td.l,th.l{text-align:left}table.sortable th{cursor:pointer;user-select:none}
table.sortable th:after{content:' \\2195';color:#aaa}
small{color:#777}.ns{color:#999}.sig{font-weight:600}.ref td{background:#f3f7ff;font-style:italic}
.chip{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
svg text{font-family:system-ui,sans-serif}.cell:hover rect{stroke:#000;stroke-width:2}
#tip{position:fixed;pointer-events:none;background:#222;color:#fff;padding:4px 8px;border-radius:4px;
font-size:12px;display:none;z-index:9}
.gallery{display:flex;flex-wrap:wrap;gap:14px}.item{border:1px solid #ddd;padding:8px;border-radius:6px;
max-width:560px}.scroll{overflow-x:auto;max-width:100%}
.imgs{display:flex;gap:6px;align-items:flex-end}.imgs figure{margin:0;text-align:center}
.imgs img{width:96px;height:96px;object-fit:contain;border:3px solid transparent;background:#fafafa}
.imgs .gen img{border-color:#555}.imgs .input img{opacity:.8}
.imgs .pick img{border-color:#d62728}.imgs .gt figcaption{font-weight:700}
figcaption{font-size:12px}
"""

JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){
    th.addEventListener('click',function(){
      var body=t.tBodies[0],rows=Array.from(body.rows),asc=th.dataset.dir!=='asc';
      t.querySelectorAll('th').forEach(function(h){delete h.dataset.dir});th.dataset.dir=asc?'asc':'desc';
      rows.sort(function(a,b){
        var x=a.cells[i].dataset.v,y=b.cells[i].dataset.v;
        if(x===undefined)x=a.cells[i].textContent;if(y===undefined)y=b.cells[i].textContent;
        var nx=parseFloat(x),ny=parseFloat(y),r;
        if(isNaN(nx)&&isNaN(ny))r=x.localeCompare(y);else if(isNaN(nx))r=1;else if(isNaN(ny))r=-1;
        else r=nx-ny;
        return asc?r:-r});
      rows.forEach(function(r){body.appendChild(r)});
    });
  });
});
var tip=document.getElementById('tip');
document.querySelectorAll('[data-tip]').forEach(function(el){
  el.addEventListener('mousemove',function(e){tip.textContent=el.dataset.tip;tip.style.display='block';
    tip.style.left=(e.clientX+12)+'px';tip.style.top=(e.clientY+12)+'px'});
  el.addEventListener('mouseleave',function(){tip.style.display='none'});
});
"""


def esc(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _pct(x) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def _ci(ci) -> str:
    return "" if not ci else f"[{ci[0]:.1f}, {ci[1]:.1f}]"


def colour(t: float) -> tuple[int, int, int]:
    """Position t in [0, 1] on the heatmap scale."""
    t = min(1.0, max(0.0, t))
    for (t0, c0), (t1, c1) in zip(STOPS, STOPS[1:], strict=False):
        if t <= t1:
            f = (t - t0) / (t1 - t0)
            return tuple(round(a + (b - a) * f) for a, b in zip(c0, c1, strict=True))
    return STOPS[-1][1]


def _hex(c) -> str:
    return "#" + "".join(f"{v:02x}" for v in c)


def _ink(c) -> str:
    return "#000" if 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 140 else "#fff"


def _td(value, text: str, cls: str = "") -> str:
    v = "" if value is None else f' data-v="{esc(value)}"'
    return f'<td{v}{f" class={chr(34)}{cls}{chr(34)}" if cls else ""}>{text}</td>'


# -- sections -----------------------------------------------------------------------------------

def _runs_legend(runs: list[dict]) -> str:
    return " ".join(f'<span><span class="chip" style="background:{PALETTE[i % len(PALETTE)]}">'
                    f'</span>{esc(r["label"])}</span>' for i, r in enumerate(runs))


def leaderboard(result: dict) -> str:
    groups = result["headline"]
    head = "".join(f"<th>{esc(h)}</th>" for h in
                   ["run", "backend", "method", "preset", "CLIP", "coverage", "errors"])
    head = head.replace("<th>", '<th class="l">', 5)
    head += "".join(f"<th>{g} task</th><th>{g} all</th>" for g in groups)
    rows = []
    for r in result["runs"]:
        c = r["counts"]
        cells = [f'<td class="l" title="model {esc(r["model"]["name"])} '
                 f'({esc(r["model"]["fingerprint"])}), {esc(r["dir"])}">{esc(r["label"])}</td>',
                 f'<td class="l">{esc(r["model"]["backend"])}</td>',
                 f'<td class="l method">{esc(r["method"])}</td>',
                 f'<td class="l">{esc(r["preset"] or "")}</td>',
                 f'<td class="l" title="{esc(r["clip"] or "")}">{esc((r["clip"] or "").split(" (")[0])}</td>',
                 _td(r["coverage"], f"{c['answered']}/{c['selected']}"
                     + (f"<br><small>{100 * r['coverage']:.1f}%</small>" if r["coverage"] is not None
                        else "")),
                 _td(c["errors"], str(c["errors"]))]
        for g in groups:
            v = r["averages"].get(g)
            if v is None:
                cells += [_td(None, "n/a"), _td(None, "n/a")]
            else:
                mark = " <small>partial</small>" if v.get("complete") is False else ""
                cells += [_td(v["task"], f"{_pct(v['task'])}{mark}<br><small>{_ci(v.get('ci95'))}"
                                         "</small>"),
                          _td(v["all"], f"{_pct(v['all'])}{mark}<br><small>"
                                        f"{_ci(v.get('all_ci95'))}</small>")]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    ref = result.get("reference")
    if ref:
        cells = [f'<td class="l">published: {esc(ref["model"])}<br><small>{esc(ref["name"])}'
                 '</small></td>', '<td class="l">-</td>',
                 f'<td class="l method">{esc(ref["method"])}</td>',
                 f'<td class="l">{esc(ref.get("preset") or "")}</td>', '<td class="l"></td>',
                 _td(None, ""), _td(None, "")]
        for g in groups:
            val = ref["scores"].get(g)
            task = val if ref["average"] == "task" else None
            allq = val if ref["average"] == "all" else None
            cells += [_td(task, _pct(task) if task is not None else ""),
                      _td(allq, _pct(allq) if allq is not None else "")]
        rows.append('<tr class="ref">' + "".join(cells) + "</tr>")
    return (f'<table id="leaderboard" class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>'
            '<p class="sub">task = mean of per-dimension accuracies with its bootstrap 95% interval;'
            ' all = question-weighted, with its Wilson 95% interval. Click a header to sort.</p>')


def leaderboard_all(result: dict) -> str:
    """The leaderboard's own view beside the answered-only one: every selected question
    counts, unanswered and errored ones as wrong (summary.json `all_questions`)."""
    groups = result["headline"]
    head = '<th class="l">run</th><th class="l">method</th><th class="l">preset</th>' + "".join(
        f"<th>{g} task</th><th>{g} all</th><th>{g} correct / selected</th>" for g in groups)
    rows = []
    for r in result["runs"]:
        cells = [f'<td class="l">{esc(r["label"])}</td>',
                 f'<td class="l method">{esc(r["method"])}</td>',
                 f'<td class="l">{esc(r["preset"] or "")}</td>']
        for g in groups:
            v = (r.get("all_questions") or {}).get(g)
            if v is None:
                cells += [_td(None, "n/a"), _td(None, "n/a"), _td(None, "")]
            else:
                mark = " <small>partial</small>" if v.get("complete") is False else ""
                cells += [_td(v["task"], f"{_pct(v['task'])}{mark}"),
                          _td(v["all"], f"{_pct(v['all'])}{mark}"),
                          _td(v["correct"], f"{v['correct']}/{v['selected']}")]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table id="leaderboard-all" class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>'
            '<p class="sub">All selected questions: unanswered and errored ones count as wrong, '
            "as the benchmark's own submission converters score, so a run with errors never "
            "looks better than it is. n/a: no answers in the dimensions the group needs.</p>")


def dimension_table(result: dict) -> str:
    head = '<th>dim</th><th class="l">name</th>' + "".join(
        f"<th>{esc(r['label'])}</th>" for r in result["runs"])
    rows = []
    for d in result["dimensions"]:
        cells = [_td(d["id"], str(d["id"])), f'<td class="l dimname">{esc(d["name"])}</td>']
        for r in result["runs"]:
            s = r["dimensions"].get(str(d["id"]))
            if s is None or s["accuracy"] is None:
                cells.append(_td(None, "n/a"))
            else:
                cells.append(_td(s["accuracy"], f"{_pct(s['accuracy'])} <small>{_ci(s.get('ci95'))}"
                                 f" n={s.get('n', s['total'])}</small>"))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table id="dimensions" class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def subtype_table(result: dict) -> str:
    """Accuracy per (category, subtype), runs side by side (SEED-Bench-2-Plus)."""
    keys = sorted({(s["dimension"], s["category"], s["subtype"]) for r in result["runs"]
                   for s in r.get("subtypes") or []})
    per_run = [{(s["dimension"], s["subtype"]): s for s in r.get("subtypes") or []}
               for r in result["runs"]]
    head = '<th class="l">category</th><th class="l">subtype</th>' + "".join(
        f"<th>{esc(r['label'])}</th>" for r in result["runs"])
    rows = []
    for dim, category, subtype in keys:
        cells = [f'<td class="l">{esc(category)}</td>', f'<td class="l">{esc(subtype)}</td>']
        for found in per_run:
            s = found.get((dim, subtype))
            cells.append(_td(None, "n/a") if s is None or s["accuracy"] is None else
                         _td(s["accuracy"], f"{_pct(s['accuracy'])} <small>{_ci(s['ci95'])} "
                                            f"n={s['n']}</small>"))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table id="subtypes" class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def heatmap(result: dict) -> str:
    runs, dims = result["runs"], result["dimensions"]
    values = [s["accuracy"] for r in runs for s in r["dimensions"].values()
              if s["accuracy"] is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 100.0)
    span = (hi - lo) or 1.0
    cw, ch, left, top = 40, 30, 190, 170
    width, height = left + cw * len(dims) + 100, top + ch * len(runs) + 60
    parts = [f'<svg id="heatmap-svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             'aria-label="accuracy heatmap: runs by dimensions">']
    for j, d in enumerate(dims):
        x = left + j * cw + cw / 2
        parts.append(f'<text x="{x}" y="{top - 8}" font-size="11" transform="rotate(-50 {x} '
                     f'{top - 8})">{d["id"]}. {esc(d["name"])}</text>')
    for i, r in enumerate(runs):
        y = top + i * ch
        parts.append(f'<text x="{left - 8}" y="{y + ch / 2 + 4}" font-size="12" text-anchor="end">'
                     f'{esc(r["label"])}</text>')
        for j, d in enumerate(dims):
            s = r["dimensions"].get(str(d["id"]))
            acc = None if s is None else s["accuracy"]
            x = left + j * cw
            if acc is None:
                fill, ink, text = (238, 238, 238), "#666", "n/a"
                tip = f"{r['label']} - {d['id']}. {d['name']}: no answers"
            else:
                fill = colour((acc - lo) / span)
                ink, text = _ink(fill), f"{acc:.1f}"
                tip = (f"{r['label']} - {d['id']}. {d['name']}: {acc:.2f}% "
                       f"{_ci(s.get('ci95'))} n={s.get('n', s['total'])}")
            parts.append(
                f'<g class="cell" data-run="{esc(r["label"])}" data-dim="{d["id"]}" '
                f'data-tip="{esc(tip)}"><rect x="{x}" y="{y}" width="{cw - 2}" height="{ch - 2}" '
                f'fill="{_hex(fill)}"><title>{esc(tip)}</title></rect>'
                f'<text x="{x + (cw - 2) / 2}" y="{y + ch / 2 + 3}" font-size="11" '
                f'text-anchor="middle" fill="{ink}">{text}</text></g>')
    # legend
    ly = top + ch * len(runs) + 22
    for k in range(11):
        c = colour(k / 10)
        parts.append(f'<rect x="{left + k * 24}" y="{ly}" width="24" height="12" fill="{_hex(c)}"/>')
    parts.append(f'<text x="{left - 8}" y="{ly + 10}" font-size="11" text-anchor="end">'
                 f'{lo:.1f}%</text><text x="{left + 11 * 24 + 6}" y="{ly + 10}" font-size="11">'
                 f'{hi:.1f}%</text>')
    parts.append("</svg>")
    return "".join(parts)


def bars(result: dict) -> str:
    runs, dims = result["runs"], result["dimensions"]
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
    for j, d in enumerate(dims):
        y0 = top + j * band
        parts.append(f'<text x="{left - 8}" y="{y0 + band / 2}" font-size="11" text-anchor="end">'
                     f'{d["id"]}. {esc(d["name"])}</text>')
        for i, r in enumerate(runs):
            s = r["dimensions"].get(str(d["id"]))
            y = y0 + i * bh
            if s is None or s["accuracy"] is None:
                continue
            w = plot_w * s["accuracy"] / 100
            tip = (f"{r['label']} - {d['name']}: {s['accuracy']:.2f}% {_ci(s.get('ci95'))} "
                   f"n={s.get('n', s['total'])}")
            parts.append(f'<g class="bar" data-tip="{esc(tip)}"><rect x="{left}" y="{y}" '
                         f'width="{w:.1f}" height="{bh - 2}" fill="{PALETTE[i % len(PALETTE)]}" '
                         f'opacity="0.85"><title>{esc(tip)}</title></rect>')
            if s.get("ci95"):
                x1 = left + plot_w * s["ci95"][0] / 100
                x2 = left + plot_w * s["ci95"][1] / 100
                ym = y + (bh - 2) / 2
                parts.append(f'<line x1="{x1:.1f}" y1="{ym}" x2="{x2:.1f}" y2="{ym}" stroke="#000"/>'
                             f'<line x1="{x1:.1f}" y1="{y}" x2="{x1:.1f}" y2="{y + bh - 2}" '
                             f'stroke="#000"/><line x1="{x2:.1f}" y1="{y}" x2="{x2:.1f}" '
                             f'y2="{y + bh - 2}" stroke="#000"/>')
            parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def coverage(result: dict) -> str:
    cols = ["selected", "answered", "errors", "pending", "skipped_invalid", "skipped_unsupported"]
    head = '<th class="l">run</th>' + "".join(f"<th>{c.replace('_', ' ')}</th>" for c in cols) + \
        '<th class="l">dimensions with errors</th><th class="l">notes</th>'
    rows = []
    for r in result["runs"]:
        c = r["counts"]
        errs = ", ".join(f"{d}: {s['errors']}" for d, s in r["dimensions"].items() if s["errors"])
        unparsed = sum(s.get("unparsed") or 0 for s in r["dimensions"].values())
        partial = [g for g, v in r["averages"].items()
                   if v is not None and not v.get("complete", v["dims_answered"] == v["dims"])]
        notes = list(r["notes"]) + ([f"partial groups (not every dimension or question "
                                     f"answered): {', '.join(partial)}"] if partial else [])
        if unparsed:  # answers no letter could be read from (counted wrong)
            notes.append(f"{unparsed} answer(s) unparsed (counted wrong)")
        rows.append(f'<tr><td class="l">{esc(r["label"])}</td>'
                    + "".join(_td(c.get(k), str(c.get(k, ""))) for k in cols)
                    + f'<td class="l">{esc(errs)}</td><td class="l">{"<br>".join(map(esc, notes))}'
                    "</td></tr>")
    reasons = []
    for r in result["runs"]:
        for e in r.get("error_reasons") or []:
            reasons.append(f'<tr><td class="l">{esc(r["label"])}</td>{_td(e["count"], str(e["count"]))}'
                           f'<td class="l">{esc(e["status"])}: {esc(e["reason"])}</td>'
                           f'<td class="l">{esc(", ".join(e["examples"]))}</td></tr>')
    errors = ("<h3>Most common errors</h3><table id=\"error-reasons\"><thead><tr><th class=\"l\">run"
              '</th><th>questions</th><th class="l">error</th><th class="l">for example</th></tr>'
              f'</thead><tbody>{"".join(reasons)}</tbody></table>') if reasons else ""
    return (f'<table id="coverage"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
            f"</tbody></table>{errors}")


def _sig_cell(r: dict | None) -> str:
    if r is None:
        return "<td></td>"
    cls = "sig" if r["significant"] else "ns"
    mark = "" if r["significant"] else " n.s."
    ci = f" <small>{_ci(r['ci95'])}</small>" if r.get("ci95") else ""
    return (f'<td class="{cls}" data-v="{r["diff"]}">{r["diff"]:+.2f}{ci} '
            f'<small>p={r["p"]:.3g}</small>{mark}</td>')


def pairs(result: dict) -> str:
    names = {str(d["id"]): d["name"] for d in result["dimensions"]}
    out = []
    for p in result["pairs"]:
        out.append(f'<h3>{esc(p["a"])} <small>vs</small> {esc(p["b"])} '
                   f'<small>({p["shared"]} questions answered by both)</small></h3>')
        if p.get("note"):
            out.append(f'<p class="warn">{esc(p["note"])}</p>')
            continue
        rows = []
        for g, v in p["groups"].items():
            a = v["all"]
            rows.append(f'<tr><td class="l">{esc(g)}</td>{_td(a["n"], str(a["n"]))}'
                        f'{_td(a["a"], _pct(a["a"]))}{_td(a["b"], _pct(a["b"]))}'
                        f'{_sig_cell(a)}{_sig_cell(v["task"])}</tr>')
        for d, r in p["dimensions"].items():
            rows.append(f'<tr><td class="l">{d}. {esc(names.get(d, ""))}</td>{_td(r["n"], str(r["n"]))}'
                        f'{_td(r["a"], _pct(r["a"]))}{_td(r["b"], _pct(r["b"]))}{_sig_cell(r)}'
                        "<td></td></tr>")
        out.append('<table class="pair sortable"><thead><tr><th class="l">group / dimension</th>'
                   "<th>n</th><th>A %</th><th>B %</th><th>A - B, question-weighted (McNemar exact)"
                   "</th><th>A - B, task average (paired bootstrap)</th></tr></thead>"
                   f'<tbody>{"".join(rows)}</tbody></table>')
    out.append(f'<p class="sub">Differences in points; n.s. = not significant '
               f'({esc(result["significance"])}).</p>')
    return "".join(out)


def reference(result: dict) -> str:
    ref = result["reference"]
    rows = []
    for row in ref["runs"]:
        m, pr = row["method"], row["preset"]
        method = f"{esc(m['run'])} vs {esc(m['published'])}: " + ("match" if m["match"] else
                                                                   "<b>different</b>")
        preset = ("not published" if pr["match"] is None else
                  f"{esc(pr['run'] or 'none')} vs {esc(pr['published'])}: "
                  + ("match" if pr["match"] else "<b>different</b>"))
        for x in row["rows"]:
            within = {True: "yes", False: "no", None: ""}[x["within_ci"]]
            published = _td(x["published"], f"{x['published']:.1f}")
            value = _td(x["run"], f"{_pct(x['run'])} <small>{_ci(x['ci95'])}</small>")
            diff = _td(x["diff"], "n/a" if x["diff"] is None else f"{x['diff']:+.2f}")
            rows.append(f'<tr><td class="l">{esc(row["run"])}</td><td class="l">{esc(x["group"])}</td>'
                        f'{published}{value}{diff}<td>{within}</td><td class="l">{method}</td>'
                        f'<td class="l">{preset}</td></tr>')
    avg = "task averages" if ref["average"] == "task" else "question-weighted averages"
    note = f'<p class="sub">{esc(ref["note"])}</p>' if ref.get("note") else ""
    return (f'<p>{esc(ref["model"])}: {esc(ref["source"])} ({avg}).</p>{note}'
            '<table id="reference-table"><thead><tr><th class="l">run</th><th class="l">group</th>'
            "<th>published</th><th>run [95% CI]</th><th>run - published</th><th>published within CI"
            '</th><th class="l">method</th><th class="l">preset</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


# -- L3 gallery ---------------------------------------------------------------------------------

def data_uri(source: ImageSource, size: int = THUMB) -> str | None:
    """A small PNG thumbnail of an image (a file or a snapshot's embedded image) as a data URI
    (None if it cannot be read)."""
    try:
        with Image.open(io.BytesIO(source.read_bytes())) as im:
            im = im.convert("RGB")
            im.thumbnail((size, size))
            buf = io.BytesIO()
            im.save(buf, format="PNG", optimize=True)
    except Exception:  # noqa: BLE001 - a missing or unreadable image is shown as missing
        return None
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _question_texts(annotations: str | None, wanted: set[str]) -> dict[str, str]:
    """Question texts from the run's annotations (JSON or snapshot), if they can still be read."""
    if not annotations or not wanted:
        return {}
    try:
        items = read_questions(Path(annotations))
    except AnnotationError:
        return {}
    return {str(q.get("question_id")): str(q.get("question", "")) for q in items
            if isinstance(q, dict) and str(q.get("question_id")) in wanted}


def _figure(uri: str | None, caption: str, cls: str = "") -> str:
    img = f'<img src="{uri}" alt="{esc(caption)}">' if uri else "<div>(missing)</div>"
    return f'<figure class="{cls}">{img}<figcaption>{caption}</figcaption></figure>'


def gallery_sample(l3: dict[str, dict], per_dim: int = GALLERY_PER_DIM, seed: int = 0) -> list[str]:
    """A seeded sample of answered L3 questions, `per_dim` from each of their dimensions."""
    rng = random.Random(seed)
    out = []
    for d in sorted({a["dimension"] for a in l3.values()}):
        ids = sorted(q for q, a in l3.items() if a["dimension"] == d)
        out += sorted(rng.sample(ids, min(per_dim, len(ids))))
    return out


def gallery(result: dict) -> str:
    l3 = result.get("_l3") or {}
    names = {d["id"]: d["name"] for d in result["dimensions"]}
    out = []
    for r in result["runs"]:
        answers = l3.get(r["label"]) or {}
        sample = gallery_sample(answers)
        if not sample:
            continue
        texts = _question_texts(r.get("annotations"), set(sample))
        out.append(f"<h3>{esc(r['label'])}</h3><div class=\"gallery\">")
        for q in sample:
            a = answers[q]
            sc = a["scores"] or {}
            gen = sc.get("generated")
            figs = [_figure(data_uri(locate(p)), f"input {k + 1}", "input")
                    for k, p in enumerate(sc.get("question_images") or [])]
            if gen:
                figs.append(_figure(data_uri(Path(r["dir"]) / gen["file"]), "generated", "gen"))
            sims = sc.get("similarities") or []
            for k, p in enumerate(sc.get("option_images") or []):
                letter = "ABCD"[k]
                cls = " ".join(c for c, on in (("pick", sc.get("image_prediction") == letter),
                                               ("gt", a["answer"] == letter)) if on)
                sim = f" {sims[k]:.3f}" if k < len(sims) else ""
                mark = " ✓" if a["answer"] == letter else ""
                figs.append(_figure(data_uri(locate(p)), f"{letter}{mark}{sim}", cls))
            if not sc.get("option_images"):
                figs.append("<div><small>option images not recorded with this answer</small></div>")
            verdict = "correct" if a["prediction"] == a["answer"] else "wrong"
            why = ""
            if a["dimension"] == 27 and not gen:
                why = (f" - text answer {esc(sc.get('text_prediction'))} wrong, so no image was "
                       "generated")
            out.append(
                f'<div class="item" data-question="{esc(q)}"><div><b>{esc(q)}</b> '
                f'<small>dim {a["dimension"]} {esc(names.get(a["dimension"], ""))}</small></div>'
                f'<div class="sub">{esc(texts.get(q, ""))}</div>'
                f'<div class="imgs">{"".join(figs)}</div>'
                f'<div><small>CLIP pick: {esc(sc.get("image_prediction") or "-")}, answer '
                f'{esc(a["answer"])}, prediction {esc(a["prediction"])} ({verdict}){why}. '
                "Red border: CLIP pick; ✓: ground truth; numbers: cosine similarity to the "
                "generated image.</small></div></div>")
        out.append("</div>")
    return "".join(out)


# -- the page -----------------------------------------------------------------------------------

def render(result: dict, title: str | None = None) -> str:
    runs = result["runs"]
    title = title or (f"SEED-Bench report: {runs[0]['label']}" if len(runs) == 1
                      else f"SEED-Bench comparison: {len(runs)} runs")
    warnings = "".join(f'<div class="warn">warning: {esc(w)}</div>' for w in result["warnings"])
    sections = [
        ("leaderboard-section", "Leaderboard (answered questions)", leaderboard(result)),
        ("leaderboard-all-section", "Leaderboard view (all selected questions, unanswered = wrong)",
         leaderboard_all(result)),
        ("heatmap", "Capability heatmap (accuracy %, runs x dimensions)",
         f"{heatmap(result)}<p class=\"sub\">Hover a cell for the value, its Wilson 95% "
         "interval and n.</p>"),
        ("bars", "Accuracy per dimension with 95% intervals",
         f"<p>{_runs_legend(runs)}</p>{bars(result)}"),
        ("dimensions-section", "Per-dimension accuracy", dimension_table(result)),
        ("coverage-section", "Coverage and errors", coverage(result)),
    ]
    if any(r.get("subtypes") for r in runs):
        sections.insert(5, ("subtypes-section", "Accuracy per subtype", subtype_table(result)))
    if result["pairs"]:
        sections.append(("pairs", "Paired comparisons (same questions)", pairs(result)))
    if result.get("reference"):
        sections.append(("reference", f"Published reference: {result['reference']['name']}",
                         reference(result)))
    g = gallery(result)
    if g:
        sections.append(("gallery", "L3 gallery: generated image, option images, CLIP pick", g))
    body = "".join(f'<section id="{sid}"><h2>{esc(h)}</h2><div class="scroll">{content}</div>'
                   "</section>" for sid, h, content in sections)
    iv = result.get("intervals") or {}
    foot = (f'<p class="sub">Intervals: {esc(iv.get("dimension"))}; task averages: '
            f'{esc(iv.get("task"))}.</p>') if iv else ""
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1><p class=\"sub\">{esc(result['benchmark'])} · "
            f"{len(runs)} run(s) · written by seedbench</p>{warnings}{body}{foot}"
            f'<div id="tip"></div><script>{JS}</script></body></html>')


def write(result: dict, out: str | Path, title: str | None = None) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, render(result, title))
    return out
