"""The evaluator as a library, used the way a notebook would: only `from evaluator import ...`.

A synthetic model server and the tiny CLIP server run as real processes on loopback; the
tests configure, plan, evaluate, load and compare through the public API and hold the typed
results against the files the run wrote. The files' key sets are pinned to what the
evaluator wrote before the API existed (users' scripts parse them): keys may be added,
never renamed or dropped.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from evaluator import (
    ConfigError,
    DimensionScore,
    GroupScore,
    RunConfig,
    RunPlan,
    RunResult,
    compare,
    evaluate,
    evaluate_async,
    load_run,
    plan,
)
from evaluator.results.store import Store
from serving.processes import ROOT, child_env
from tests.evaluator_runs import kill_after
from tests.procs import model_server

PER_DIM = 2
QUIET = ["--log-level", "WARNING"]

# Key paths of the files as the evaluator wrote them before the library API (a full
# SEED-Bench-2 run with CLIP; "*" stands for any dimension or group, "[]" for list items).
SUMMARY_KEYS = {
    "all_questions", "all_questions.averages", "all_questions.averages.*",
    "all_questions.averages.*.all", "all_questions.averages.*.complete",
    "all_questions.averages.*.correct", "all_questions.averages.*.missing",
    "all_questions.averages.*.selected", "all_questions.averages.*.task",
    "all_questions.dimensions", "all_questions.dimensions.*",
    "all_questions.dimensions.*.accuracy", "all_questions.dimensions.*.correct",
    "all_questions.dimensions.*.selected", "annotations", "averages", "averages.*",
    "averages.*.all", "averages.*.all_ci95", "averages.*.all_ci_method", "averages.*.ci95",
    "averages.*.ci_method", "averages.*.complete", "averages.*.dims", "averages.*.dims_answered",
    "averages.*.missing", "averages.*.n", "averages.*.task", "benchmark", "clip",
    "clip.checkpoint", "clip.fingerprint", "clip.name", "counts", "counts.answered",
    "counts.errors", "counts.pending", "counts.selected", "counts.skipped_invalid",
    "counts.skipped_unsupported", "counts.unparsed", "dimensions", "dimensions.*",
    "dimensions.*.accuracy", "dimensions.*.ci95", "dimensions.*.ci_method", "dimensions.*.correct",
    "dimensions.*.errors", "dimensions.*.n", "dimensions.*.name", "dimensions.*.total",
    "dimensions.*.unparsed", "error_reasons", "filters", "filters.dimensions", "filters.level",
    "filters.limit", "filters.subpart", "filters.version", "group_coverage", "group_coverage.*",
    "group_coverage.*.complete", "group_coverage.*.missing", "include_end_of_turn", "intervals",
    "intervals.all", "intervals.dimension", "intervals.level", "intervals.resamples",
    "intervals.seed", "intervals.task", "method", "model", "model.backend", "model.details",
    "model.details.*", "model.fingerprint", "model.name", "notes", "preset", "preset.end_token",
    "preset.images", "preset.interface", "preset.letter_suffix", "preset.methods", "preset.name",
    "preset.note", "preset.option_prefix", "preset.prompt", "preset.reduction",
    "preset.reproduces"}
RUN_KEYS = {
    "answered", "clip", "clip.calls", "clip.failures", "clip.ok", "clip.target", "cpu_s",
    "elapsed_s", "endpoints", "endpoints[].calls", "endpoints[].failures", "endpoints[].latency_ms",
    "endpoints[].latency_ms.p50", "endpoints[].latency_ms.p90", "endpoints[].latency_ms.p99",
    "endpoints[].ok", "endpoints[].status", "endpoints[].target", "errors", "in_flight",
    "latency_ms", "latency_ms.p50", "latency_ms.p90", "latency_ms.p99", "method", "outage_wait",
    "outage_wait.outages", "outage_wait.waited_s", "preset", "stopped", "throughput_qps", "todo",
    "usage", "usage.completion_tokens", "usage.cost_usd", "usage.max_cost_usd", "usage.model",
    "usage.price_usd_per_1m", "usage.prompt_tokens", "usage.requests", "usage.retries",
    "video_sources", "videos_decoded"}
COMPARE_KEYS = {
    "benchmark", "dimensions", "dimensions[].*", "headline", "intervals", "pairs", "pairs[].a",
    "pairs[].b", "pairs[].dimensions", "pairs[].dimensions.*", "pairs[].dimensions.*.a",
    "pairs[].dimensions.*.b", "pairs[].dimensions.*.diff", "pairs[].dimensions.*.n",
    "pairs[].dimensions.*.p", "pairs[].dimensions.*.significant", "pairs[].dimensions.*.test",
    "pairs[].groups", "pairs[].groups.*", "pairs[].groups.*.all", "pairs[].groups.*.all.a",
    "pairs[].groups.*.all.b", "pairs[].groups.*.all.diff", "pairs[].groups.*.all.n",
    "pairs[].groups.*.all.p", "pairs[].groups.*.all.significant", "pairs[].groups.*.all.test",
    "pairs[].groups.*.dims", "pairs[].groups.*.task", "pairs[].groups.*.task.ci95",
    "pairs[].groups.*.task.diff", "pairs[].groups.*.task.p", "pairs[].groups.*.task.significant",
    "pairs[].groups.*.task.test", "pairs[].shared", "reference", "reference.average",
    "reference.benchmark", "reference.method", "reference.model", "reference.name",
    "reference.note", "reference.preset", "reference.runs", "reference.runs[].average",
    "reference.runs[].method", "reference.runs[].method.match", "reference.runs[].method.published",
    "reference.runs[].method.run", "reference.runs[].model", "reference.runs[].note",
    "reference.runs[].preset", "reference.runs[].preset.match", "reference.runs[].preset.published",
    "reference.runs[].preset.run", "reference.runs[].reference", "reference.runs[].rows",
    "reference.runs[].rows[].ci95", "reference.runs[].rows[].diff", "reference.runs[].rows[].group",
    "reference.runs[].rows[].published", "reference.runs[].rows[].run",
    "reference.runs[].rows[].within_ci", "reference.runs[].run", "reference.runs[].source",
    "reference.runs[].warnings", "reference.scores", "reference.source", "runs",
    "runs[].all_questions", "runs[].annotations", "runs[].averages", "runs[].averages.*",
    "runs[].averages.*.all", "runs[].averages.*.all_ci95", "runs[].averages.*.ci95",
    "runs[].averages.*.complete", "runs[].averages.*.n", "runs[].averages.*.task",
    "runs[].benchmark", "runs[].clip", "runs[].counts", "runs[].counts.answered", "runs[].coverage",
    "runs[].dimensions", "runs[].dimensions.*", "runs[].dimensions.*.accuracy",
    "runs[].dimensions.*.ci95", "runs[].dir", "runs[].error_reasons", "runs[].filters",
    "runs[].label", "runs[].method", "runs[].model", "runs[].model.name", "runs[].notes",
    "runs[].preset", "significance", "warnings"}
ENTITY = {"dimensions", "averages", "group_coverage", "video_sources", "details", "groups"}


def key_paths(obj, prefix: str = "", parent: str = "") -> set[str]:
    out = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            p = ".".join(x for x in (prefix, "*" if parent in ENTITY else k) if x)
            out |= {p} | key_paths(v, p, k)
    elif isinstance(obj, list):
        for v in obj:
            out |= key_paths(v, prefix + "[]", parent)
    return out


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_clip):
    """Sample data as a user makes it (`seedbench sample-data`), a synthetic model server and
    the tiny CLIP server."""
    data = tmp_path_factory.mktemp("api") / "data"
    r = subprocess.run([sys.executable, "-m", "evaluator.cli", "sample-data", "--out", str(data),
                        "--seed", "3", "--per-dim", str(PER_DIM)], env=child_env(), cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    ann = Path(r.stdout.strip())
    roots = {"cc3m": data / "cc3m", "SEED-Bench v2": data / "seed_bench_v2"}
    with model_server(["--backend", "synthetic", "--model", "alpha", *QUIET]) as (target, _):
        yield ann, roots, target, tiny_clip


@pytest.fixture(scope="module")
def full(served, tmp_path_factory) -> RunResult:
    ann, roots, target, clip = served
    config = RunConfig(annotations=ann, media_roots=roots, model=[target], clip=clip,
                       out=tmp_path_factory.mktemp("full") / "out")
    return evaluate(config)


def _ci(pair):
    return None if pair is None else tuple(pair)


def test_evaluate_returns_the_summary_the_files_hold(full):
    on_disk = json.loads((full.out / "summary.json").read_text())
    s = full.summary
    assert not full.partial and not full.all_failed and full.stopped is None
    assert set(s.dimensions) == set(range(1, 28)) and all(
        isinstance(x, DimensionScore) for x in s.dimensions.values())
    for d, x in s.dimensions.items():
        f = on_disk["dimensions"][str(d)]
        assert (x.name, x.accuracy, x.ci95, x.n, x.answered, x.correct, x.errors, x.unparsed) == (
            f["name"], f["accuracy"], _ci(f["ci95"]), f["n"], f["total"], f["correct"],
            f["errors"], f["unparsed"])
        every = on_disk["all_questions"]["dimensions"][str(d)]
        assert (x.selected, x.accuracy_of_selected) == (every["selected"], every["accuracy"])
    assert list(s.groups) == list(on_disk["averages"])
    for k, g in s.groups.items():
        f = on_disk["averages"][k]
        assert isinstance(g, GroupScore) and g.status == "complete" and g.missing is None
        assert (g.task, g.all, g.task_ci95, g.all_ci95, g.n, g.dims_answered, g.dims_of) == (
            f["task"], f["all"], _ci(f["ci95"]), _ci(f["all_ci95"]), f["n"], f["dims_answered"],
            f["dims"])
        assert g.all_questions.all == on_disk["all_questions"]["averages"][k]["all"]
    assert s.counts.answered == on_disk["counts"]["answered"] == 27 * PER_DIM
    assert s.model.name == "alpha" and s.clip.fingerprint == on_disk["clip"]["fingerprint"]
    assert s.to_dict() == on_disk
    assert full.run.to_dict() == json.loads((full.out / "run.json").read_text())
    assert full.run.answered == 27 * PER_DIM and full.run.endpoints[0].ok >= full.run.answered


def test_the_files_keep_every_key_they_had(full, tmp_path):
    assert SUMMARY_KEYS <= key_paths(json.loads((full.out / "summary.json").read_text()))
    assert RUN_KEYS <= key_paths(json.loads((full.out / "run.json").read_text()))
    # `compare --json`: two complete runs beside a published row
    comparison = compare([full, full.out], reference="seed2-llava-1.5-7b")
    assert COMPARE_KEYS <= key_paths(comparison.to_dict())


def test_load_run_reads_the_same_run_back(full):
    again = load_run(full.out)
    assert again.summary == full.summary and again.run == full.run
    answered = [q for q in again.questions() if q.status == "ok"]
    assert len(answered) == 27 * PER_DIM
    assert sum(q.correct for q in answered) == sum(x.correct for x in full.summary.dimensions.values())


def test_a_limited_run_loads_as_partial_with_its_groups_marked(served, tmp_path):
    ann, roots, target, _ = served
    result = evaluate(RunConfig(annotations=ann, media_roots=roots, model=target,
                                out=tmp_path, limit=10))
    loaded = load_run(tmp_path)
    s = loaded.summary
    assert loaded.partial and s == result.summary
    assert s.counts.selected == s.counts.answered == 10
    l1 = s.groups["L1"]
    assert l1.status == "partial" and not l1.complete
    assert l1.missing.dimensions == tuple(range(6, 23)) and l1.dims_answered == 5
    assert s.groups["L3"].status == "n/a" and not s.groups["L3"].available
    assert s.groups["L3"].task is None and s.to_dict()["averages"]["L3"] is None


def test_a_killed_run_loads_as_partial_with_its_questions_pending(served, tmp_path):
    """A run killed mid-way (SIGKILL): its store holds what was answered; load_run reports it
    as partial, with the rest pending, and matches `seedbench report --json`."""
    ann, roots, _, _ = served
    plain_roots = {k: str(v) for k, v in roots.items()}
    with model_server(["--backend", "synthetic", "--model", "slow", "--backend-arg",
                       "latency_ms=50", *QUIET]) as (slow, _):
        code = ("from evaluator import RunConfig, evaluate\n"
                f"evaluate(RunConfig(annotations={str(ann)!r}, media_roots={plain_roots!r}, "
                f"model={slow!r}, out={str(tmp_path)!r}, in_flight=1))\n")
        proc = subprocess.Popen([sys.executable, "-c", code], env=child_env(), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kill_after(proc, tmp_path, 5)
    loaded = load_run(tmp_path)
    s = loaded.summary
    assert loaded.run is None  # killed before it could write run.json
    assert loaded.partial and 5 <= s.counts.answered < 24 * PER_DIM
    assert s.counts.pending == 24 * PER_DIM - s.counts.answered
    assert s.groups["L1"].status == "partial" and s.groups["L1"].missing.questions > 0
    r = subprocess.run([sys.executable, "-m", "evaluator.cli", "report", str(tmp_path), "--json"],
                       env=child_env(), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert json.loads(r.stdout) == s.to_dict()


def test_plan_is_data_and_sends_nothing(served, tmp_path):
    ann, roots, target, clip = served
    p = plan(RunConfig(annotations=ann, media_roots=roots, model=target, out=tmp_path / "o",
                       dimensions=[1, 25]))
    assert isinstance(p, RunPlan) and not (tmp_path / "o").exists()
    by_dim = {d.dimension: d for d in p.dimensions}
    assert by_dim[1].handler == "score_handler" and by_dim[25].handler is None
    assert "requires --clip" in by_dim[25].unsupported
    text = str(p)
    assert "Scene Understanding" in text and "NOT RUN" in text
    assert p.as_dict()["runnable"] == PER_DIM


def test_evaluate_async_and_evaluate_inside_a_running_loop(served, tmp_path):
    ann, roots, target, _ = served
    config = RunConfig(annotations=ann, media_roots=roots, model=target, out=tmp_path,
                       dimensions="1,2")
    first = asyncio.run(evaluate_async(config))
    assert first.summary.counts.answered == 2 * PER_DIM

    async def notebook_cell():  # a notebook's cells run inside an event loop
        return evaluate(config)

    again = asyncio.run(notebook_cell())
    assert again.run.todo == 0 and again.summary == first.summary


def test_a_bad_setting_names_the_field(tmp_path):
    with pytest.raises(ConfigError) as caught:
        RunConfig(annotations="a.json", model="h:1", out=tmp_path, retries=-1)
    assert caught.value.field == "retries" and str(caught.value).startswith("retries must be")


def test_provenance_recorded_with_the_run_is_typed_and_shown(full, tmp_path):
    """A run record carrying provenance (annotation digest, media roots, model, method, preset,
    CLIP): load_run types it, summary.json gains it, the report and the page show it."""
    import shutil

    shutil.copytree(full.out, tmp_path / "run", ignore=shutil.ignore_patterns("generated"))
    store = Store(tmp_path / "run")
    record = store.meta("run")
    record["provenance"] = {
        "annotations": {"path": "/data/[x]/ann.json", "sha256": "ab" * 32, "questions": 54,
                        "benchmark": "SEED-Bench-2", "version": None, "warnings": []},
        "media_roots": {"cc3m": "/data/cc3m"}, "model": {"fingerprint": "fp1"},
        "method": "ppl", "preset": "chat-mean", "clip": {"fingerprint": "clipfp"}}
    store.set_meta("run", record)
    store.close()
    s = load_run(tmp_path / "run").summary
    p = s.provenance
    assert p.annotations.sha256 == "ab" * 32 and p.annotations.questions == 54
    assert p.media_roots == {"cc3m": "/data/cc3m"} and p.model_fingerprint == "fp1"
    assert (p.method, p.preset, p.clip) == ("ppl", "chat-mean", "clipfp")
    assert s.to_dict()["provenance"] == record["provenance"]
    recorded = load_run(full.out).summary.provenance  # every run records its own
    assert recorded.annotations.questions and len(recorded.annotations.sha256) == 64
    from evaluator.reports import html, terminal

    console = Console(record=True, width=120, file=open("/dev/null", "w"))  # noqa: SIM115
    terminal.print_report(s, console)
    text = console.export_text()
    assert "Provenance" in text and "annotations.sha256" in text and "/data/[x]/ann.json" in text
    page = html.render(compare([tmp_path / "run"]))
    assert 'id="provenance"' in page and "ab" * 32 in page


def test_report_formats_carry_the_same_numbers(full):
    """`report --format csv|markdown|json` render the typed summary: the same values."""
    import csv
    import io

    from evaluator.data import benchmarks as B
    from evaluator.reports import text_formats

    s = full.summary
    rows = list(csv.DictReader(io.StringIO(text_formats.render(s, "csv"))))
    dims = {int(r["id"]): r for r in rows if r["kind"] == "dimension"}
    groups = {r["id"]: r for r in rows if r["kind"] == "group"}
    assert sorted(dims) == list(range(1, 28)) and list(groups) == list(s.groups)
    for d, x in s.dimensions.items():
        assert float(dims[d]["accuracy"]) == x.accuracy and int(dims[d]["n"]) == x.n
        assert (float(dims[d]["ci95_low"]), float(dims[d]["ci95_high"])) == x.ci95
    for k, g in s.groups.items():
        assert float(groups[k]["task_avg"]) == g.task and groups[k]["status"] == "complete"
        assert float(groups[k]["question_weighted"]) == g.all
    md = text_formats.render(s, "markdown")
    assert all(f"| {d} | {name} | " in md for d, name in B.SEED_BENCH_2.dimensions.items())
    assert json.loads(text_formats.render(s, "json")) == s.to_dict()
