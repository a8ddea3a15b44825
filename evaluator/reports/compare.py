"""`seedbench compare`: runs side by side, paired tests between them, published references.

A comparison is built from run directories alone (each one's results store):
the summaries (with their intervals), which questions each run answered and
whether correctly, and, for L3, the stored generation records. The result is
plain JSON-able data that the terminal tables, the HTML page and the PNG
exports all draw from.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evaluator.data import benchmarks as B
from evaluator.data import references as reference_rows
from evaluator.results import stats
from evaluator.results import summary as report
from evaluator.results.runkey import RunKey
from evaluator.results.store import Store, StoreError

# The leaderboard's method label of each --method.
LEADERBOARD_METHOD = {"ppl": "PPL", "letter": "PPL for A/B/C/D", "generate": "Generate"}


class CompareError(Exception):
    """A run directory or reference that cannot be compared: the message says which and why."""


@dataclass
class Run:
    path: Path
    summary: dict
    correct: dict[str, tuple[int, bool]]  # answered question id -> (dimension, correct)
    selected: frozenset[str]
    l3: dict[str, dict] = field(default_factory=dict)  # L3 question id -> answer + evidence
    label: str = ""

    @property
    def method(self) -> str:
        s = self.summary
        return s["method"] + (" +eot" if s.get("include_end_of_turn") else "")


def load_run(path: str | Path) -> Run:
    path = Path(path)
    if not (path / Store.FILE).exists():
        raise CompareError(f"{path}: not a run directory (no {Store.FILE})")
    try:
        store = Store(path)
    except StoreError as exc:
        raise CompareError(str(exc)) from None
    try:
        try:
            summary = report.build_summary(store)
        except ValueError as exc:
            raise CompareError(str(exc)) from None
        key = RunKey.from_run(store.meta("run"))
        rows = store.rows(key)
        correct = {r.question_id: (r.dimension, r.prediction == r.answer)
                   for r in rows if r.status == "ok"}
        l3_rows = {r.question_id: r for r in rows
                   if r.status == "ok" and r.dimension in key.clip_dims}
        evidence = store.scores(key, l3_rows) if l3_rows else {}
    finally:
        store.close()
    l3 = {q: {"dimension": r.dimension, "prediction": r.prediction, "answer": r.answer,
              "scores": evidence.get(q)} for q, r in l3_rows.items()}
    return Run(path, summary, correct, frozenset(r.question_id for r in rows), l3)


def preset_name(summary: dict) -> str | None:
    """The run's preset name (None when it used none or predates presets)."""
    p = summary.get("preset")
    return p.get("name") if isinstance(p, dict) else p


def _label_runs(runs: list[Run]) -> None:
    """`model · method[/preset]`, with the directory name added where two would look alike.

    The preset is part of the label only where the runs' presets differ.
    """
    base = []
    presets_differ = len({preset_name(r.summary) for r in runs}) > 1
    for r in runs:
        preset = preset_name(r.summary) if presets_differ else None
        base.append(f"{r.summary['model']['name']} · {r.method}" + (f"/{preset}" if preset else ""))
    for r, b in zip(runs, base, strict=True):
        r.label = b if base.count(b) == 1 else f"{b} [{r.path.name}]"
    seen: dict[str, int] = {}
    for r in runs:  # still equal (same directory name twice): number them
        seen[r.label] = seen.get(r.label, 0) + 1
        if seen[r.label] > 1:
            r.label = f"{r.label} #{seen[r.label]}"


def _clip_name(s: dict) -> str | None:
    c = s.get("clip")
    return f"{c['name']} ({c['fingerprint']})" if c else None


def config_warnings(runs: list[Run]) -> list[str]:
    """What makes the runs' numbers not like for like."""
    if len(runs) < 2:
        return []
    out = []
    checks = [("benchmark", lambda s: s["benchmark"]),
              ("filters", lambda s: json.dumps(s["filters"], sort_keys=True)),
              ("method", lambda s: s["method"]),
              ("end-of-turn scoring", lambda s: s.get("include_end_of_turn")),
              ("preset", preset_name),
              ("CLIP model", _clip_name)]
    for what, get in checks:
        values = {r.label: get(r.summary) for r in runs}
        if len(set(map(str, values.values()))) > 1:
            listed = "; ".join(f"{k}: {v if v is not None else 'none'}" for k, v in values.items())
            out.append(f"runs differ in {what} ({listed})")
    if len({r.selected for r in runs}) > 1:
        out.append("runs selected different questions: paired tests use the questions both "
                   "runs of a pair answered")
    return out


def _pair_counts(a: Run, b: Run, ids) -> stats.PairCounts:
    ac = [a.correct[q][1] for q in ids]
    bc = [b.correct[q][1] for q in ids]
    return stats.PairCounts(
        n=len(ids), a_only=sum(x and not y for x, y in zip(ac, bc, strict=True)),
        b_only=sum(y and not x for x, y in zip(ac, bc, strict=True)),
        a_correct=sum(ac), b_correct=sum(bc))


def _result(r: stats.PairedResult | None, c: stats.PairCounts | None = None) -> dict | None:
    if r is None:
        return None
    out = {"diff": round(r.diff, 4), "p": round(r.p, 6), "significant": r.significant,
           "test": r.method}
    if r.ci95 is not None:
        out["ci95"] = [round(r.ci95[0], 4), round(r.ci95[1], 4)]
    if c is not None:
        out.update(n=c.n, a=round(100 * c.a_correct / c.n, 4) if c.n else None,
                   b=round(100 * c.b_correct / c.n, 4) if c.n else None)
    return out


def paired(a: Run, b: Run) -> dict:
    """Paired tests of A against B on the questions both answered, per dimension and group."""
    out = {"a": a.label, "b": b.label, "shared": 0, "dimensions": {}, "groups": {}}
    if a.summary["benchmark"] != b.summary["benchmark"]:
        out["note"] = "different benchmarks: no paired test"
        return out
    shared = sorted(set(a.correct) & set(b.correct))
    out["shared"] = len(shared)
    if not shared:
        out["note"] = "no question answered by both runs: no paired test"
        return out
    by_dim: dict[int, list[str]] = {}
    for q in shared:
        by_dim.setdefault(a.correct[q][0], []).append(q)
    counts = {d: _pair_counts(a, b, ids) for d, ids in sorted(by_dim.items())}
    out["dimensions"] = {str(d): _result(stats.paired_proportion(c), c) for d, c in counts.items()}
    draws = {d: stats.paired_diff_draws(c, d) for d, c in counts.items() if c.n}
    bench = B.find(a.summary["benchmark"])
    for group in bench.groups if bench else ():
        label = group.label
        strata = {d: counts[d] for d in group.dims if d in counts}
        if not strata:
            continue
        pooled = stats.PairCounts(*(sum(getattr(c, f) for c in strata.values())
                                    for f in ("n", "a_only", "b_only", "a_correct", "b_correct")))
        out["groups"][label] = {
            "task": _result(stats.paired_bootstrap_task(strata, draws=draws)),
            "all": _result(stats.paired_proportion(pooled), pooled),
            "dims": len(strata),
        }
    return out


# -- published references ----------------------------------------------------------------------

def references() -> dict[str, dict]:
    return reference_rows.load()


def against_reference(run: Run, name: str, ref: dict) -> dict:
    """The run's numbers beside the published row: difference, interval, method/preset match."""
    s = run.summary
    which = ref["average"]  # "task" or "all"
    rows = []
    for group, published in ref["scores"].items():
        g = (s["averages"] or {}).get(group)
        value = g[which] if g else None
        ci = (g.get("ci95") if which == "task" else g.get("all_ci95")) if g else None
        rows.append({"group": group, "published": published, "run": value, "ci95": ci,
                     "diff": None if value is None else round(value - published, 4),
                     "within_ci": None if not ci else ci[0] <= published <= ci[1]})
    run_method = LEADERBOARD_METHOD.get(s["method"], s["method"])
    run_preset = preset_name(s)
    warnings = []
    if s["benchmark"] != ref["benchmark"]:
        warnings.append(f"{run.label}: the run is {s['benchmark']}, {name} is {ref['benchmark']}")
    return {
        "run": run.label, "reference": name, "model": ref["model"], "source": ref["source"],
        "note": ref.get("note"), "average": which, "rows": rows,
        "method": {"published": ref["method"], "run": run_method,
                   "match": run_method == ref["method"]},
        "preset": {"published": ref.get("preset"), "run": run_preset,
                   "match": None if ref.get("preset") is None else run_preset == ref["preset"]},
        "warnings": warnings,
    }


# -- the comparison -----------------------------------------------------------------------------

def _run_record(r: Run) -> dict:
    s = r.summary
    c = s["counts"]
    return {
        "label": r.label, "dir": str(r.path), "benchmark": s["benchmark"], "model": s["model"],
        "annotations": s["annotations"],
        "method": r.method, "preset": preset_name(s), "clip": _clip_name(s),
        "filters": s["filters"], "counts": c,
        "coverage": round(c["answered"] / c["selected"], 4) if c["selected"] else None,
        "dimensions": s["dimensions"], "averages": s["averages"], "notes": s["notes"],
        "all_questions": (s.get("all_questions") or {}).get("averages") or {},
        "error_reasons": s.get("error_reasons") or [],  # grouped by evaluator.results.failures
        "subtypes": s.get("subtypes") or [],  # SEED-Bench-2-Plus: per question_image_subtype
    }


def build(paths: list[str | Path], reference: str | None = None) -> dict:
    """Everything a comparison shows, as JSON-able data. Raises CompareError on bad input."""
    refs = references()
    if reference is not None and reference not in refs:
        raise CompareError(f"unknown reference {reference!r}; known: {', '.join(sorted(refs))}")
    runs = [load_run(p) for p in paths]
    _label_runs(runs)
    benchmark = runs[0].summary["benchmark"]
    bench = B.find(benchmark)
    dims: dict[str, str] = {}
    for r in runs:
        for d, s in r.summary["dimensions"].items():
            dims.setdefault(d, s["name"])
    result = {
        "benchmark": benchmark,
        "headline": list(bench.headline) if bench else [],  # the groups every table shows first
        "generation_dims": sorted(bench.generation_dims) if bench else [],
        "dimensions": [{"id": int(d), "name": n} for d, n in sorted(dims.items(), key=lambda x: int(x[0]))],
        "runs": [_run_record(r) for r in runs],
        "warnings": config_warnings(runs),
        "pairs": [paired(a, b) for a, b in itertools.combinations(runs, 2)],
        "reference": None,
        "intervals": runs[0].summary.get("intervals"),
        "significance": f"two-sided p < {stats.ALPHA}, each test on its own (no correction "
                        "for the many dimensions compared)",
    }
    if reference is not None:
        ref = refs[reference]
        rows = [against_reference(r, reference, ref) for r in runs]
        result["reference"] = {"name": reference, **ref, "runs": rows}
        result["warnings"] += [w for row in rows for w in row["warnings"]]
    # Loaded separately: L3 evidence is for the HTML gallery, not the JSON.
    result["_l3"] = {r.label: r.l3 for r in runs}
    return result


def public(result: dict) -> dict:
    """The comparison without the private gallery data (what --json prints)."""
    return {k: v for k, v in result.items() if not k.startswith("_")}


# -- terminal tables -----------------------------------------------------------------------------

def _pct(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _ci(ci) -> str:
    return "" if not ci else escape(f" [{ci[0]:.1f}, {ci[1]:.1f}]")


def _sig(r: dict | None) -> str:
    if r is None:
        return ""
    return f"{r['diff']:+.2f} (p={r['p']:.3g}{'' if r['significant'] else ', n.s.'})"


def tables(result: dict) -> list[Table]:
    out = []
    runs = Table(title=f"{result['benchmark']}: runs")
    for col in ("run", "dir", "backend", "method", "preset", "CLIP", "answered", "coverage",
                "errors"):
        runs.add_column(col)
    for r in result["runs"]:
        c = r["counts"]
        runs.add_row(escape(r["label"]), escape(r["dir"]), r["model"]["backend"], r["method"],
                     r["preset"] or "", r["clip"] or "", f"{c['answered']}/{c['selected']}",
                     "" if r["coverage"] is None else f"{100 * r['coverage']:.1f}%",
                     str(c["errors"]))
    out.append(runs)

    board = Table(title=escape("Leaderboard (task avg [bootstrap 95% CI] / question-weighted)"))
    board.add_column("run")
    board.add_column("method")
    for g in result["headline"]:
        board.add_column(f"{g} task", justify="right")
        board.add_column(f"{g} all", justify="right")
    for r in result["runs"]:
        cells = []
        for g in result["headline"]:
            v = r["averages"].get(g)
            cells += ["n/a", "n/a"] if v is None else [_pct(v["task"]) + _ci(v.get("ci95")),
                                                     _pct(v["all"])]
        board.add_row(escape(r["label"]), r["method"], *cells)
    out.append(board)

    dims = Table(title=escape("Accuracy % per dimension [Wilson 95% CI]"))
    dims.add_column("dim", justify="right")
    dims.add_column("name")
    for r in result["runs"]:
        dims.add_column(escape(r["label"]), justify="right")
    for d in result["dimensions"]:
        cells = []
        for r in result["runs"]:
            s = r["dimensions"].get(str(d["id"]))
            cells.append("" if s is None else _pct(s["accuracy"]) + _ci(s.get("ci95")))
        dims.add_row(str(d["id"]), d["name"], *cells)
    out.append(dims)

    for p in result["pairs"]:
        t = Table(title=f"{escape(p['a'])} vs {escape(p['b'])}: difference in points (A - B) on "
                        f"{p['shared']} shared questions; n.s. = not significant")
        for col in ("", "n", "A %", "B %", "A - B (McNemar)", "task avg A - B (paired bootstrap)"):
            t.add_column(col, justify="left" if not col else "right")
        if p.get("note"):
            t.add_row(p["note"], "", "", "", "", "")
        for label, g in p["groups"].items():
            a = g["all"]
            t.add_row(label, str(a["n"]), _pct(a["a"]), _pct(a["b"]), _sig(a), _sig(g["task"]))
        names = {str(d["id"]): d["name"] for d in result["dimensions"]}
        for d, r in p["dimensions"].items():
            t.add_row(f"{d} {names.get(d, '')}", str(r["n"]), _pct(r["a"]), _pct(r["b"]), _sig(r), "")
        out.append(t)

    ref = result.get("reference")
    if ref:
        t = Table(title=f"Published: {ref['name']} - {ref['model']} ({ref['source']}; "
                        f"{'task averages' if ref['average'] == 'task' else 'question-weighted'})")
        for col in ("run", "group", "published", "run value [95% CI]", "run - published",
                    "within CI", "method", "preset"):
            t.add_column(col)
        for row in ref["runs"]:
            m, pr = row["method"], row["preset"]
            method = f"{m['run']} vs {m['published']}: {'match' if m['match'] else 'DIFFERENT'}"
            preset = ("not published" if pr["match"] is None else
                      f"{pr['run'] or 'none'} vs {pr['published']}: "
                      f"{'match' if pr['match'] else 'DIFFERENT'}")
            for x in row["rows"]:
                t.add_row(escape(row["run"]), x["group"], f"{x['published']:.1f}",
                          _pct(x["run"]) + _ci(x["ci95"]),
                          "n/a" if x["diff"] is None else f"{x['diff']:+.2f}",
                          {True: "yes", False: "no", None: ""}[x["within_ci"]], method, preset)
        out.append(t)
    return out


def print_compare(result: dict, console: Console | None = None) -> None:
    console = console or Console()
    for w in result["warnings"]:
        console.print(f"[yellow]warning: {w}", highlight=False)
    for t in tables(result):
        console.print(t)
    for r in result["runs"]:
        for e in r["error_reasons"]:
            console.print(f"errors ({r['label']}): {e['count']} x {e['status']}: {e['reason']} "
                          f"(e.g. {', '.join(e['examples'])})", markup=False, highlight=False)
    ref = result.get("reference")
    if ref and ref.get("note"):
        console.print(f"note ({ref['name']}): {ref['note']}", highlight=False)
    console.print(f"significance: {result['significance']}", highlight=False)
