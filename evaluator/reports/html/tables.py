"""The page's tables: leaderboards, dimensions, coverage and errors, pairs, the published
reference and provenance. Every value from data is escaped (evaluator.reports.html.style.esc)."""

from __future__ import annotations

from evaluator.reports import numbers as N
from evaluator.reports.compare import ComparedRun, Comparison
from evaluator.reports.compare_types import PairedTest
from evaluator.reports.html.style import PALETTE, esc, td
from evaluator.results.scores import COMPLETE, PARTIAL, GroupScore

PARTIAL_MARK = " <small>partial</small>"


def _mark(g: GroupScore) -> str:
    return PARTIAL_MARK if g.status == PARTIAL else ""


def _ci(ci) -> str:
    return N.ci(ci, brackets=True)


def _table(table_id: str, head: str, rows: list[str], sortable: bool = True,
           note: str = "") -> str:
    cls = ' class="sortable"' if sortable else ""
    return (f'<table id="{table_id}"{cls}><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>'
            + (f'<p class="sub">{note}</p>' if note else ""))


def runs_legend(c: Comparison) -> str:
    return " ".join(f'<span><span class="chip" style="background:{PALETTE[i % len(PALETTE)]}">'
                    f'</span>{esc(r.label)}</span>' for i, r in enumerate(c.runs))


def _run_cells(r: ComparedRun) -> list[str]:
    s, n = r.summary, r.summary.counts
    clip_name = s.clip.name if s.clip else ""
    return [f'<td class="l" title="model {esc(s.model.name)} ({esc(s.model.fingerprint)}), '
            f'{esc(r.dir)}">{esc(r.label)}</td>',
            f'<td class="l">{esc(s.model.backend)}</td>',
            f'<td class="l method">{esc(r.method)}</td>',
            f'<td class="l">{esc(s.preset or "")}</td>',
            f'<td class="l" title="{esc(r.clip or "")}">{esc(clip_name)}</td>',
            td(r.coverage, f"{n.answered}/{n.selected}"
               + (f"<br><small>{N.share(n.answered, n.selected)}</small>" if n.selected else "")),
            td(n.errors, str(n.errors))]


def leaderboard(c: Comparison) -> str:
    head = "".join(f'<th class="l">{h}</th>' for h in ("run", "backend", "method", "preset", "CLIP"))
    head += "<th>coverage</th><th>errors</th>"
    head += "".join(f"<th>{esc(g)} task</th><th>{esc(g)} all</th>" for g in c.headline)
    rows = []
    for r in c.runs:
        cells = _run_cells(r)
        for name in c.headline:
            g = r.summary.groups.get(name)
            if g is None or not g.available:
                cells += [td(None, N.NA), td(None, N.NA)]
            else:
                cells += [td(g.task, f"{N.pct(g.task, 1)}{_mark(g)}<br><small>{_ci(g.task_ci95)}"
                                     "</small>"),
                          td(g.all, f"{N.pct(g.all, 1)}{_mark(g)}<br><small>{_ci(g.all_ci95)}"
                                    "</small>")]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    if c.reference is not None:
        ref, pub = c.reference, c.reference.published
        cells = [f'<td class="l">published: {esc(pub["model"])}<br><small>{esc(ref.name)}'
                 '</small></td>', '<td class="l">-</td>',
                 f'<td class="l method">{esc(pub["method"])}</td>',
                 f'<td class="l">{esc(pub.get("preset") or "")}</td>', '<td class="l"></td>',
                 td(None, ""), td(None, "")]
        for g in c.headline:
            val = pub["scores"].get(g)
            task = val if pub["average"] == "task" else None
            allq = val if pub["average"] == "all" else None
            cells += [td(task, N.pct(task, 1) if task is not None else ""),
                      td(allq, N.pct(allq, 1) if allq is not None else "")]
        rows.append('<tr class="ref">' + "".join(cells) + "</tr>")
    return _table("leaderboard", head, rows, note=(
        "task = mean of per-dimension accuracies with its bootstrap 95% interval; all = "
        "question-weighted, with its Wilson 95% interval. partial: not every dimension or "
        "question of the group answered. Click a header to sort."))


def leaderboard_all(c: Comparison) -> str:
    """The leaderboard's own view beside the answered-only one: every selected question
    counts, unanswered and errored ones as wrong (summary.json `all_questions`)."""
    head = '<th class="l">run</th><th class="l">method</th><th class="l">preset</th>' + "".join(
        f"<th>{esc(g)} task</th><th>{esc(g)} all</th><th>{esc(g)} correct / selected</th>"
        for g in c.headline)
    rows = []
    for r in c.runs:
        cells = [f'<td class="l">{esc(r.label)}</td>',
                 f'<td class="l method">{esc(r.method)}</td>',
                 f'<td class="l">{esc(r.summary.preset or "")}</td>']
        for name in c.headline:
            g = r.summary.groups.get(name)
            a = g.all_questions if g else None
            if a is None:
                cells += [td(None, N.NA), td(None, N.NA), td(None, "")]
            else:
                cells += [td(a.task, f"{N.pct(a.task, 1)}{_mark(g)}"),
                          td(a.all, f"{N.pct(a.all, 1)}{_mark(g)}"),
                          td(a.correct, f"{a.correct}/{a.selected}")]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return _table("leaderboard-all", head, rows, note=(
        "All selected questions: unanswered and errored ones count as wrong, as the benchmark's "
        "own submission converters score, so a run with errors never looks better than it is. "
        "n/a: no answers in the dimensions the group needs."))


def dimension_table(c: Comparison) -> str:
    head = '<th>dim</th><th class="l">name</th>' + "".join(
        f"<th>{esc(r.label)}</th>" for r in c.runs)
    rows = []
    for d, name in c.dimensions:
        cells = [td(d, str(d)), f'<td class="l dimname">{esc(name)}</td>']
        for r in c.runs:
            s = r.summary.dimensions.get(d)
            if s is None or s.accuracy is None:
                cells.append(td(None, N.NA))
            else:
                cells.append(td(s.accuracy, f"{N.pct(s.accuracy, 1)} <small>{_ci(s.ci95)}"
                                            f" n={s.n}</small>"))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return _table("dimensions", head, rows)


def subtype_table(c: Comparison) -> str:
    """Accuracy per (category, subtype), runs side by side (SEED-Bench-2-Plus)."""
    keys = sorted({(x.dimension, x.category, x.subtype) for r in c.runs for x in r.summary.subtypes})
    head = '<th class="l">category</th><th class="l">subtype</th>' + "".join(
        f"<th>{esc(r.label)}</th>" for r in c.runs)
    rows = []
    for dim, category, subtype in keys:
        cells = [f'<td class="l">{esc(category)}</td>', f'<td class="l">{esc(subtype)}</td>']
        for r in c.runs:
            x = next((x for x in r.summary.subtypes
                      if (x.dimension, x.subtype) == (dim, subtype)), None)
            cells.append(td(None, N.NA) if x is None or x.accuracy is None else
                         td(x.accuracy, f"{N.pct(x.accuracy, 1)} <small>{_ci(x.ci95)} "
                                        f"n={x.n}</small>"))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return _table("subtypes", head, rows)


COUNT_COLUMNS = ("selected", "answered", "errors", "pending", "skipped_invalid",
                 "skipped_unsupported")


def coverage(c: Comparison) -> str:
    head = ('<th class="l">run</th>' + "".join(f"<th>{k.replace('_', ' ')}</th>"
                                                for k in COUNT_COLUMNS)
            + '<th class="l">dimensions with errors</th><th class="l">notes</th>')
    rows, reasons = [], []
    for r in c.runs:
        s = r.summary
        counts = s.counts.to_dict()
        errs = ", ".join(f"{d}: {x.errors}" for d, x in s.dimensions.items() if x.errors)
        unparsed = sum(x.unparsed for x in s.dimensions.values())
        partial = [k for k, g in s.groups.items() if g.status == PARTIAL]
        notes = list(s.notes) + ([f"partial groups (not every dimension or question answered): "
                                  f"{', '.join(partial)}"] if partial else [])
        if unparsed:  # answers no letter could be read from (counted wrong)
            notes.append(f"{unparsed} answer(s) unparsed (counted wrong)")
        rows.append(f'<tr><td class="l">{esc(r.label)}</td>'
                    + "".join(td(counts[k], str(counts[k])) for k in COUNT_COLUMNS)
                    + f'<td class="l">{esc(errs)}</td><td class="l">{"<br>".join(map(esc, notes))}'
                    "</td></tr>")
        for e in s.error_reasons:
            reasons.append(f'<tr><td class="l">{esc(r.label)}</td>{td(e.count, str(e.count))}'
                           f'<td class="l">{esc(e.status)}: {esc(e.reason)}</td>'
                           f'<td class="l">{esc(", ".join(e.examples))}</td></tr>')
    errors = ("<h3>Most common errors</h3>" + _table(
        "error-reasons", '<th class="l">run</th><th>questions</th><th class="l">error</th>'
                         '<th class="l">for example</th>', reasons, sortable=False)
              ) if reasons else ""
    return _table("coverage", head, rows, sortable=False) + errors


def _sig_cell(t: PairedTest | None) -> str:
    if t is None:
        return "<td></td>"
    cls = "sig" if t.significant else "ns"
    mark = "" if t.significant else " n.s."
    ci = f" <small>{_ci(t.ci95)}</small>" if t.ci95 else ""
    return (f'<td class="{cls}" data-v="{t.diff}">{N.signed(t.diff)}{ci} '
            f'<small>p={esc(N.pvalue(t.p, t.test))}</small>{mark}</td>')


def pairs(c: Comparison) -> str:
    names = dict(c.dimensions)
    out = []
    for p in c.pairs:
        out.append(f'<h3>{esc(p.a)} <small>vs</small> {esc(p.b)} '
                   f'<small>({p.shared} questions answered by both)</small></h3>')
        if p.note:
            out.append(f'<p class="warn">{esc(p.note)}</p>')
            continue
        rows = []
        for label, g in p.groups.items():
            if g.withheld:
                rows.append(f'<tr class="withheld"><td class="l">{esc(label)}</td><td></td><td>'
                            f'</td><td></td><td class="l" colspan="2">no paired test: '
                            f"{esc(g.withheld)}</td></tr>")
                continue
            a = g.all
            rows.append(f'<tr><td class="l">{esc(label)}</td>{td(a.n, str(a.n))}'
                        f'{td(a.a, N.pct(a.a))}{td(a.b, N.pct(a.b))}'
                        f"{_sig_cell(a)}{_sig_cell(g.task)}</tr>")
        for d, t in p.dimensions.items():
            rows.append(f'<tr><td class="l">{d}. {esc(names.get(d, ""))}</td>{td(t.n, str(t.n))}'
                        f"{td(t.a, N.pct(t.a))}{td(t.b, N.pct(t.b))}{_sig_cell(t)}<td></td></tr>")
        out.append('<table class="pair sortable"><thead><tr><th class="l">group / dimension</th>'
                   "<th>n</th><th>A %</th><th>B %</th><th>A - B, question-weighted (McNemar exact)"
                   "</th><th>A - B, task average (paired bootstrap)</th></tr></thead>"
                   f'<tbody>{"".join(rows)}</tbody></table>')
    out.append('<p class="sub">Differences in points; n.s. = not significant '
               f"({esc(c.significance)}). A group that is n/a or partial in either run gets no "
               "paired test.</p>")
    return "".join(out)


def reference(c: Comparison) -> str:
    ref, pub = c.reference, c.reference.published
    rows = []
    for row in ref.runs:
        method = (f"{esc(row.method)} vs {esc(pub['method'])}: "
                  + ("match" if row.method_match else "<b>different</b>"))
        preset = ("not published" if row.preset_match is None else
                  f"{esc(row.preset or 'none')} vs {esc(pub.get('preset'))}: "
                  + ("match" if row.preset_match else "<b>different</b>"))
        for x in row.rows:
            mark = PARTIAL_MARK if x.status != COMPLETE and x.run is not None else ""
            within = ({True: "yes", False: "no", None: ""}[x.within_ci] if x.why is None
                      else f"not compared: {esc(x.why)}")
            published = td(x.published, N.pct(x.published, 1))
            value = td(x.run, f"{N.pct(x.run, 1)}{mark} <small>{_ci(x.ci95)}</small>")
            diff = td(x.diff, N.signed(x.diff))
            rows.append(f'<tr><td class="l">{esc(row.run)}</td><td class="l">{esc(x.group)}</td>'
                        f'{published}{value}{diff}<td class="l">{within}</td><td class="l">'
                        f'{method}</td><td class="l">{preset}</td></tr>')
    avg = "task averages" if pub["average"] == "task" else "question-weighted averages"
    note = f'<p class="sub">{esc(pub["note"])}</p>' if pub.get("note") else ""
    head = ('<th class="l">run</th><th class="l">group</th><th>published</th><th>run [95% CI]</th>'
            '<th>run - published</th><th class="l">published within CI</th><th class="l">method'
            '</th><th class="l">preset</th>')
    return (f"<p>{esc(pub['model'])}: {esc(pub['source'])} ({avg}).</p>{note}"
            + _table("reference-table", head, rows, sortable=False))


def provenance(c: Comparison) -> str:
    """Each run's recorded provenance (runs recorded before provenance have none)."""
    out = []
    for r in c.runs:
        p = r.summary.provenance
        if p is None:
            continue
        rows = [f'<tr><td class="l">{esc(k)}</td><td class="l">{esc(v)}</td></tr>'
                for k, v in p.items()]
        out.append(f"<h3>{esc(r.label)}</h3>" + _table(
            f"provenance-{len(out) + 1}", '<th class="l">field</th><th class="l">value</th>',
            rows, sortable=False))
    return "".join(out)
