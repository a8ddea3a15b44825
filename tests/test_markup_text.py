"""Text from data prints as typed in every command: never read as console markup.

`[bold]x[/]`, `[/x]` and `[link=file:///x]y[/link]` are fed through a model's name (a real
synthetic server named with them), its backend (the run record), the paths of the
annotation file, the media roots and the output folder, question ids (so error messages
and examples carry them), question text (the HTML gallery) and an invalid answer; then
run, run --dry-run --clip, report in every format with --html and --png, compare with
--html, score and presets each print them literally, with no traceback.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import sys

import pytest

from evaluator.data import sample_data
from evaluator.results.store import Store
from serving.processes import ROOT, child_env
from tests.evaluator_runs import run_argv
from tests.procs import model_server

BOLD, CLOSE, LINK = "[bold]x[/]", "[/x]", "[link=file:///x]y[/link]"
MODEL = BOLD + CLOSE + LINK  # one word: the tables never wrap it
QUIET = ["--log-level", "WARNING"]


def seedbench(*args) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "evaluator.cli", *map(str, args)],
                       env=child_env(COLUMNS="250"), cwd=ROOT, capture_output=True, text=True,
                       timeout=180)
    assert "Traceback" not in r.stderr + r.stdout and "MarkupError" not in r.stderr, r.stderr
    return r


def literal(text: str, *needles: str) -> None:
    for n in needles:
        assert n in text, f"{n!r} not printed as typed"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_clip):
    """Sample data under bracketed folders, with bracketed question ids, text and an invalid
    answer; two runs of a model with a bracketed name that refuses two-image prompts."""
    root = tmp_path_factory.mktemp("markup")
    data = root / BOLD / "data"  # the path holds "[bold]x[/]" (its "/" splits folders)
    ann = sample_data.write_v2(data, seed=5, per_dim=1)
    doc = json.loads(ann.read_text())
    for q in doc["questions"]:
        if q["question_type_id"] == 17:  # two images: refused by the server, an error
            q["question_id"] = f"q{BOLD}"
        if q["question_type_id"] == 25:
            q["question"] = f"Draw {LINK} and {BOLD}."
    bad = dict(doc["questions"][0], question_id="bad", answer=CLOSE)
    doc["questions"].append(bad)
    ann = root / CLOSE / "SEED-Bench_v2_level1_2_3.json"
    ann.parent.mkdir(parents=True)
    ann.write_text(json.dumps(doc))
    roots = sample_data.media_roots(data)
    out = {k: root / "[link=file:/x]y[/link]" / k for k in ("a", "b")}
    server = ["--backend", "synthetic", "--model", MODEL, "--backend-arg", "max_images=1", *QUIET]
    with model_server(server) as (target, _):
        runs = {k: seedbench(*run_argv(ann, roots, target, o, "--clip", tiny_clip)) for k, o in out.items()}
        dry = seedbench(*run_argv(ann, roots, target, root / "dry", "--clip", tiny_clip, "--dry-run"))
    return ann, roots, out, runs, dry, root


def test_run_and_dry_run_print_names_paths_and_errors_as_typed(runs):
    ann, roots, out, done, dry, _ = runs
    r = done["a"]
    assert r.returncode == 0, r.stderr
    literal(r.stdout, MODEL, f"q{BOLD}")  # the title; the error examples
    literal(r.stderr, str(ann), CLOSE)  # "selected from <path>"; the invalid answer
    assert dry.returncode == 0, dry.stderr
    literal(dry.stdout, MODEL)
    literal(dry.stderr, str(ann))


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv", "json"])
def test_report_in_every_format(runs, fmt):
    _, _, out, _, _, _ = runs
    r = seedbench("report", out["a"], "--format", fmt)
    assert r.returncode == 0, r.stderr
    if fmt == "json":
        assert json.loads(r.stdout)["model"]["name"] == MODEL
    elif fmt == "csv":
        assert r.stdout.startswith("kind,id,name,status,accuracy")
    else:
        literal(r.stdout, MODEL, f"q{BOLD}")


def test_report_and_compare_pages_escape_and_keep_the_text(runs, tmp_path):
    _, _, out, _, _, _ = runs
    page = tmp_path / BOLD / "report.html"
    r = seedbench("report", out["a"], "--html", page, "--png", tmp_path / CLOSE / "png")
    assert r.returncode == 0, r.stderr
    literal(r.stderr, str(page))  # "wrote <path>"
    text = page.read_text()
    literal(text, html.escape(MODEL), html.escape(f"Draw {LINK} and {BOLD}."))  # gallery text
    assert (tmp_path / CLOSE / "png" / "heatmap.png").stat().st_size > 1000
    r = seedbench("compare", out["a"], out["b"], "--html", tmp_path / "c.html")
    assert r.returncode == 0, r.stderr
    label = f"{MODEL} · ppl [a]"  # the run label: model, method and the folder's name
    literal(r.stdout, label, str(out["a"]), f"q{BOLD}")
    literal((tmp_path / "c.html").read_text(), html.escape(label))


def test_a_bracketed_backend_and_model_from_the_run_record(runs, tmp_path):
    _, _, out, _, _, _ = runs
    run_dir = tmp_path / CLOSE
    shutil.copytree(out["a"], run_dir)
    store = Store(run_dir)
    record = store.meta("run")
    record["model"]["backend"] = LINK
    store.set_meta("run", record)
    store.close()
    r = seedbench("report", run_dir)
    literal(r.stdout, f"({LINK}, ")
    r = seedbench("compare", run_dir, out["b"])
    literal(r.stdout, LINK, str(run_dir))


def test_score_and_presets(runs, tmp_path):
    ann, _, out, _, _, _ = runs
    predictions = tmp_path / BOLD / f"pred{CLOSE}.jsonl"
    predictions.parent.mkdir(parents=True)
    shutil.copy(out["a"] / "submission.jsonl", predictions)
    r = seedbench("score", "--annotations", ann, "--predictions", predictions)
    assert r.returncode == 0, r.stderr
    literal(r.stdout, str(predictions))  # a predictions file's "model" is its path
    assert seedbench("presets").returncode == 0
