"""Reports people look at: intervals in summary.json, `seedbench compare`, published references,
the HTML pages opened in a real headless browser, PNG exports, `report --json` on a closed pipe.

The run directories are made by the real evaluator against served synthetic models (real gRPC on
loopback) with the tiny CLIP server for L3, once per module.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from evaluator import cli
from evaluator import compare as compare_runs
from evaluator.data import benchmarks as B
from evaluator.data import sample_data
from evaluator.reports import compare, numbers
from evaluator.reports import html as html_report
from serving.processes import ROOT, child_env
from tests.evaluator_runs import run, write_sample
from tests.procs import model_server

PER_DIM = 4
N = PER_DIM * 27


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_clip):
    """alpha (ppl), beta (letter), alpha again in another directory (identical answers), and
    alpha on dims 1-9 without CLIP (other filters, no CLIP model)."""
    root = tmp_path_factory.mktemp("reports")
    ann, roots = write_sample(root / "data", per_dim=PER_DIM)
    out = {k: root / f"run-{k}" for k in ("alpha", "beta", "alpha2", "alpha-part", "errors")}
    for name, method, dirs in (("alpha", "ppl", ("alpha", "alpha2")), ("beta", "letter", ("beta",))):
        with model_server(["--backend", "synthetic", "--model", name]) as (target, _):
            for d in dirs:
                assert not run(ann, roots, target, out[d], method=method, clip=tiny_clip).partial
            if name == "alpha":
                assert run(ann, roots, target, out["alpha-part"], dimensions=range(1, 10)).partial
    # a server that refuses two-image prompts: dims 17-18 end as errors
    with model_server(["--backend", "synthetic", "--model", "gamma", "--backend-arg",
                       "max_images=1"]) as (target, _):
        assert run(ann, roots, target, out["errors"], dimensions="1,17,18").summary.counts.errors
    return out


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def seedbench(*args: str, **kw) -> subprocess.CompletedProcess:
    # a wide terminal: rich would otherwise squeeze the many columns into 80
    return subprocess.run([sys.executable, "-m", "evaluator.cli", *args], env=child_env(COLUMNS="250"),
                          capture_output=True, text=True, timeout=120, cwd=ROOT, **kw)


# -- summary.json ---------------------------------------------------------------------------------

def test_summary_carries_an_interval_and_n_for_every_dimension_and_group(runs):
    s = _summary(runs["alpha"])
    assert s["intervals"]["level"] == 0.95 and s["intervals"]["resamples"] == 2000
    for d, v in s["dimensions"].items():
        assert v["n"] == v["total"] == PER_DIM, d
        assert v["ci_method"] == "wilson"
        assert v["ci95"][0] <= v["accuracy"] <= v["ci95"][1]
    for group in B.SEED_BENCH_2.groups:
        g = s["averages"][group.label]
        assert g["n"] == PER_DIM * len(group.dims), group.label
        assert g["ci_method"] == "bootstrap" and g["all_ci_method"] == "wilson"
        assert g["ci95"][0] <= g["task"] <= g["ci95"][1]
        assert g["all_ci95"][0] <= g["all"] <= g["all_ci95"][1]
    # Deterministic: the same answers give the same intervals in another directory.
    assert s["dimensions"] == _summary(runs["alpha2"])["dimensions"]
    assert s["averages"] == _summary(runs["alpha2"])["averages"]
    partial = _summary(runs["alpha-part"])
    assert partial["averages"]["L1"]["n"] == 9 * PER_DIM and partial["averages"]["L3"] is None
    assert partial["dimensions"]["12"]["ci95"] is None and partial["dimensions"]["12"]["n"] == 0


def test_report_table_shows_the_intervals(runs):
    r = seedbench("report", str(runs["alpha"]))
    assert r.returncode == 0, r.stderr
    assert "95% CI" in r.stdout and "Traceback" not in r.stderr
    lo, hi = _summary(runs["alpha"])["averages"]["L1"]["ci95"]
    assert f"{lo:.1f}-{hi:.1f}" in r.stdout


# -- report --json on a closed pipe -------------------------------------------------------------

def _to_closed_pipe(*args: str) -> subprocess.CompletedProcess:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        return subprocess.run([sys.executable, "-m", "evaluator.cli", *args], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, env=child_env(), cwd=ROOT,
                              timeout=60)
    finally:
        os.close(write_end)


def test_report_json_to_a_closed_pipe_ends_quietly(runs, tmp_path):
    p = _to_closed_pipe("report", str(runs["alpha"]), "--json")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    # the tables too (rich ends a broken pipe with exit 1), and the page asked for is written
    p = _to_closed_pipe("compare", str(runs["alpha"]), str(runs["beta"]), "--html",
                        str(tmp_path / "c.html"))
    assert p.returncode in (0, 1) and "Traceback" not in p.stderr and "Error" not in p.stderr
    assert (tmp_path / "c.html").exists()
    shell = subprocess.run(f"{sys.executable} -m evaluator.cli report {runs['alpha']} --json | head -1",
                           shell=True, capture_output=True, text=True, env=child_env(),
                           cwd=ROOT, timeout=60)
    assert shell.stdout == "{\n" and "Traceback" not in shell.stderr, shell.stderr
    full = seedbench("report", str(runs["alpha"]), "--json")
    assert json.loads(full.stdout) == _summary(runs["alpha"])


# -- compare ---------------------------------------------------------------------------------------

def _compare_json(*args: str) -> dict:
    r = seedbench("compare", *args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_compare_identical_runs_finds_no_significant_difference(runs):
    res = _compare_json(str(runs["alpha"]), str(runs["alpha2"]))
    assert res["warnings"] == []
    labels = [r["label"] for r in res["runs"]]
    assert labels == ["alpha · ppl [run-alpha]", "alpha · ppl [run-alpha2]"]
    (p,) = res["pairs"]
    assert p["shared"] == N
    assert len(p["dimensions"]) == 27
    for r in [*p["dimensions"].values(), *(g["all"] for g in p["groups"].values()),
              *(g["task"] for g in p["groups"].values())]:
        assert r["diff"] == 0 and r["p"] == 1 and r["significant"] is False


def test_compare_two_models_pairs_every_dimension_and_group(runs):
    res = _compare_json(str(runs["alpha"]), str(runs["beta"]))
    assert [r["method"] for r in res["runs"]] == ["ppl", "letter"]
    assert any("differ in method" in w for w in res["warnings"])
    (p,) = res["pairs"]
    a, b = _summary(runs["alpha"]), _summary(runs["beta"])
    for d, r in p["dimensions"].items():
        assert r["n"] == PER_DIM and r["test"] == "mcnemar-exact"
        assert r["a"] == a["dimensions"][d]["accuracy"] and r["b"] == b["dimensions"][d]["accuracy"]
        assert r["diff"] == pytest.approx(r["a"] - r["b"], abs=1e-3)
        # four questions per dimension can never make a significant difference
        assert r["significant"] is False
    l1 = p["groups"]["L1"]
    assert l1["all"]["n"] == 22 * PER_DIM and l1["task"]["test"] == "paired-bootstrap"
    assert l1["task"]["diff"] == pytest.approx(a["averages"]["L1"]["task"] - b["averages"]["L1"]["task"],
                                               abs=1e-3)
    assert l1["task"]["ci95"][0] <= l1["task"]["diff"] <= l1["task"]["ci95"][1]
    assert res["runs"][0]["coverage"] == 1.0 and res["runs"][0]["clip"].startswith("tiny (")


def test_compare_warns_about_filters_and_clip_and_pairs_shared_questions(runs):
    res = _compare_json(str(runs["alpha"]), str(runs["alpha-part"]))
    text = " | ".join(res["warnings"])
    assert "differ in filters" in text and "differ in CLIP model" in text
    assert "selected different questions" in text
    assert res["pairs"][0]["shared"] == 9 * PER_DIM
    assert sorted(map(int, res["pairs"][0]["dimensions"])) == list(range(1, 10))
    assert res["runs"][1]["averages"]["L3"] is None


def test_compare_against_a_published_reference(runs):
    res = _compare_json(str(runs["alpha"]), str(runs["beta"]), "--reference", "seed2-llava-1.5-7b")
    ref = res["reference"]
    assert ref["model"] == "LLaVA-1.5 (Vicuna-7B)" and ref["scores"]["L1"] == 47.3
    alpha, beta = ref["runs"]
    assert alpha["method"] == {"published": "PPL", "run": "PPL", "match": True}
    assert beta["method"]["run"] == "PPL for A/B/C/D" and beta["method"]["match"] is False
    assert alpha["preset"]["published"] == "llava-1.5" and alpha["preset"]["match"] is False
    s = _summary(runs["alpha"])
    rows = {x["group"]: x for x in alpha["rows"]}
    assert set(rows) == {"L1", "P2", "L2"}
    assert rows["L1"]["run"] == s["averages"]["L1"]["task"]
    assert rows["L1"]["diff"] == pytest.approx(s["averages"]["L1"]["task"] - 47.3, abs=1e-3)
    assert rows["L1"]["ci95"] == s["averages"]["L1"]["ci95"]
    # the terminal view shows the same
    r = seedbench("compare", str(runs["alpha"]), "--reference", "seed2-llava-1.5-7b")
    assert r.returncode == 0 and "47.3" in r.stdout and "llava-1.5" in r.stdout
    # a SEED-Bench-1 row beside a SEED-Bench-2 run: said so
    res1 = _compare_json(str(runs["alpha"]), "--reference", "seed1-instructblip-vicuna")
    assert any("SEED-Bench-1" in w for w in res1["warnings"])


def test_seed_bench_1_runs_compare_on_image_video_all(tmp_path):
    ann = sample_data.write_v1(tmp_path / "data", per_dim=3)
    roots = sample_data.media_roots(tmp_path / "data", v1=True)
    with model_server(["--backend", "synthetic", "--model", "one"]) as (target, _):
        # "ppl-sum": the summed-reduction variant, now a preset (raw prompt, end token, mean
        # for -hf; any preset but the published seed1-instructblip shows the mismatch)
        results = [run(ann, roots, target, tmp_path / out, preset=preset)
                   for out, preset in (("ppl", "chat-mean"), ("ppl-sum", "seed1-instructblip-hf"))]
    comparison = compare_runs(results, "seed1-instructblip-vicuna")
    res = comparison.to_dict()
    assert res["benchmark"] == B.SEED_BENCH_1.name and res["headline"] == ["Image", "Video", "All"]
    assert [d["id"] for d in res["dimensions"]] == list(range(1, 13))
    assert set(res["pairs"][0]["groups"]) == {"Image", "Video", "All"}
    assert res["pairs"][0]["shared"] == 36
    row = res["reference"]["runs"][1]
    assert row["method"]["match"] is True  # any ppl preset is the leaderboard's PPL
    assert row["preset"]["published"] == "seed1-instructblip" and row["preset"]["match"] is False
    s = _summary(tmp_path / "ppl-sum")
    got = {x["group"]: x for x in row["rows"]}
    assert got["All"]["run"] == s["averages"]["All"]["all"]  # question-weighted, as published
    assert got["All"]["ci95"] == s["averages"]["All"]["all_ci95"]
    assert not any("SEED-Bench" in w for w in res["warnings"])
    page = html_report.render(comparison)
    assert "<th>Image task</th><th>Image all</th>" in page and "Procedure Understanding" in page
    # names come from servers: the page escapes them
    first = comparison.runs[0]
    evil = "<script>alert(1)</script>"
    first.label = evil
    first.result = dataclasses.replace(first.result, summary=dataclasses.replace(
        first.summary, model=dataclasses.replace(first.summary.model, name=evil)))
    page = html_report.render(comparison)
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_errors_and_partial_coverage_are_shown(runs, chromium, tmp_path):
    res = _compare_json(str(runs["errors"]))
    (run,) = res["runs"]
    assert run["counts"]["errors"] == 2 * PER_DIM and run["counts"]["answered"] == PER_DIM
    (reason,) = run["error_reasons"]
    assert reason["count"] == 2 * PER_DIM and len(reason["examples"]) == 3
    assert all(q.startswith(("17_", "18_")) for q in reason["examples"])
    assert reason["status"] == "RESOURCE_EXHAUSTED" and "{n} images" in reason["reason"]
    assert "2 images" in reason["messages"][0]  # an example as it was, numbers and all
    r = seedbench("compare", str(runs["errors"]))
    assert f"{2 * PER_DIM} x RESOURCE_EXHAUSTED" in " ".join(r.stdout.split())
    page = tmp_path / "errors.html"
    assert seedbench("report", str(runs["errors"]), "--html", str(page)).returncode == 0
    dom = browse(chromium, page, tmp_path / "profile", "--dump-dom").stdout
    cov = dom[dom.index('id="coverage"'):]
    assert f'data-v="{2 * PER_DIM}"' in cov and f"17: {PER_DIM}, 18: {PER_DIM}" in cov
    assert "partial groups" in cov and "Most common errors" in cov
    assert reason["reason"][:30] in cov
    # The all-questions view beside the answered-only one: the 2 * PER_DIM errored
    # questions of dims 17-18 count as wrong there, so L1 reads lower than answered-only.
    s = _summary(runs["errors"])
    every, answered = s["all_questions"]["averages"]["L1"], s["averages"]["L1"]
    assert every["selected"] == 3 * PER_DIM and every["all"] < answered["all"]
    start = dom.index('id="leaderboard-all"')
    board_all = dom[start:dom.index("</table>", start)]
    board = dom[dom.index('id="leaderboard"'):dom.index('id="leaderboard-all"')]
    assert (f'<td data-v="{every["all"]}">{numbers.pct(every["all"], 1)} <small>partial</small>'
            "</td>") in board_all
    assert f'>{every["correct"]}/{3 * PER_DIM}</td>' in board_all
    assert f'data-v="{answered["all"]}"' in board and f'data-v="{every["all"]}"' not in board
    assert board_all.count(">n/a</td>") == 2 * 2  # L2 and L3: no answers, not zero
    assert "Leaderboard view (all selected questions" in dom


def test_every_reference_row_is_well_formed():
    refs = compare.references()
    assert {"seed2-llava-1.5-7b", "seed2-instructblip-flan-t5-xl", "seed2-emu",
            "seed1-instructblip-vicuna"} <= set(refs)
    for name, ref in refs.items():
        groups = {g.label for g in B.get(ref["benchmark"]).groups}
        assert ref["benchmark"] in (B.SEED_BENCH_1.name, B.SEED_BENCH_2.name), name
        assert set(ref["scores"]) <= groups, name
        assert ref["average"] in ("task", "all") and ref["source"], name
        assert ref["method"] in ("PPL", "PPL for A/B/C/D", "Generate", "NG"), name


def test_compare_bad_input_is_a_clear_error(runs, tmp_path):
    r = seedbench("compare", str(tmp_path))
    err = " ".join(r.stderr.split())  # rich wraps long lines
    assert r.returncode == 2 and "not a run directory" in err and "Traceback" not in err
    r = seedbench("compare", str(runs["alpha"]), "--reference", "nope")
    err = " ".join(r.stderr.split())
    assert r.returncode == 2 and "unknown reference 'nope'" in err and "seed2-llava-1.5-7b" in err


# -- PNG exports ----------------------------------------------------------------------------------

def test_png_exports(runs, tmp_path):
    assert cli.main(["compare", str(runs["alpha"]), str(runs["beta"]), "--png",
                     str(tmp_path / "png")]) == 0
    for name in ("heatmap.png", "bars.png"):
        with Image.open(tmp_path / "png" / name) as im:
            assert im.format == "PNG" and im.width > 600 and im.height > 150
            assert max(ImageStat.Stat(im.convert("L")).stddev) > 10  # not blank
    first = (tmp_path / "png" / "heatmap.png").read_bytes()
    assert cli.main(["report", str(runs["alpha"]), "--png", str(tmp_path / "one")]) == 0
    assert (tmp_path / "one" / "heatmap.png").read_bytes() != first  # one run, not two
    assert cli.main(["compare", str(runs["alpha"]), str(runs["beta"]), "--png",
                     str(tmp_path / "png")]) == 0
    assert (tmp_path / "png" / "heatmap.png").read_bytes() == first  # same input, same bytes


def test_without_matplotlib_png_export_says_how_to_install_and_the_rest_works(runs, tmp_path):
    body = ("import sys; sys.modules['matplotlib'] = None\n"
            "from evaluator import cli\n"
            f"rc = cli.main(['compare', {str(runs['alpha'])!r}, '--html', {str(tmp_path / 'p.html')!r},"
            f" '--png', {str(tmp_path / 'png')!r}])\n"
            "print('RC', rc)\n")
    r = subprocess.run([sys.executable, "-c", body], capture_output=True, text=True,
                       env=child_env(), cwd=ROOT, timeout=60)
    assert "RC 2" in r.stdout, r.stdout + r.stderr
    assert "pip install 'seedbench-platform[reports]'" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "p.html").exists()


def test_reports_import_neither_matplotlib_nor_torch(runs, tmp_path):
    body = ("import sys\nfrom evaluator import cli\n"
            f"rc = cli.main(['compare', {str(runs['alpha'])!r}, {str(runs['beta'])!r}, '--html', "
            f"{str(tmp_path / 'p.html')!r}])\n"
            "print('RC', rc, 'BAD', [m for m in ('matplotlib', 'torch', 'numpy') if m in sys.modules])\n")
    r = subprocess.run([sys.executable, "-c", body], capture_output=True, text=True,
                       env=child_env(), cwd=ROOT, timeout=60)
    assert "RC 0 BAD []" in r.stdout, r.stdout + r.stderr


# -- the HTML pages in a real headless browser ----------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  # no network: every host resolves to nothing and no proxy is reachable
                  "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9"]
WINDOW = (1400, 2000)


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    return None


@pytest.fixture(scope="module")
def chromium():
    path = chromium_path()
    if path is None:
        pytest.skip("chromium not found (Debian: apt-get install -y chromium; .ci/run installs it)")
    return path


def browse(chromium: str, page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Open a page in a fresh headless chromium profile; returns the finished process."""
    profile.mkdir(parents=True, exist_ok=False)  # a fresh profile every time
    r = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args,
                        page.as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def check_screenshot(chromium: str, page: Path, tmp_path: Path) -> None:
    shot = tmp_path / f"{page.stem}.png"
    browse(chromium, page, tmp_path / f"profile-shot-{page.stem}",
           f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={shot}")
    with Image.open(shot) as im:
        assert im.format == "PNG" and im.size == WINDOW
        rgb = im.convert("RGB")
        assert max(ImageStat.Stat(rgb).stddev) > 20  # not a blank page
        assert len(rgb.getcolors(maxcolors=1 << 20) or []) > 50  # heatmap colours, text, images


def test_report_page_in_headless_chromium(runs, chromium, tmp_path):
    page = tmp_path / "report.html"
    r = seedbench("report", str(runs["alpha"]), "--html", str(page))
    assert r.returncode == 0, r.stderr
    source = page.read_text()
    assert "http://" not in source and "https://" not in source  # nothing external
    assert not re.search(r'(?:src|href)="(?!data:|#)', source)
    dom = browse(chromium, page, tmp_path / "profile-dom", "--dump-dom").stdout
    for name in B.SEED_BENCH_2.dimensions.values():
        assert f'<td class="l dimname">{name}</td>' in dom, name
    assert dom.count('class="cell"') == 27
    assert '<td class="l method">ppl</td>' in dom
    # L3 gallery: generated and option images embedded as data URIs
    assert 'id="gallery"' in dom and dom.count('src="data:image/png;base64,') >= 5 * 4
    assert dom.count(">input 3</figcaption>") == 2  # dim 26 shows its three question images
    check_screenshot(chromium, page, tmp_path)


def test_compare_page_in_headless_chromium_sorts_and_shows_each_method(runs, chromium, tmp_path):
    page = tmp_path / "compare.html"
    dirs = [str(runs[k]) for k in ("alpha", "beta", "alpha-part")]
    r = seedbench("compare", *dirs, "--reference", "seed2-llava-1.5-7b", "--html", str(page))
    assert r.returncode == 0, r.stderr
    source = page.read_text()
    assert "http://" not in source and "https://" not in source
    dom = browse(chromium, page, tmp_path / "profile-dom", "--dump-dom").stdout
    leaderboard = dom[dom.index('id="leaderboard"'):dom.index("</table>", dom.index('id="leaderboard"'))]
    for method in ("ppl", "letter"):
        assert f'<td class="l method">{method}</td>' in leaderboard
    assert '<td class="l method">PPL</td>' in leaderboard  # the published row
    for name in B.SEED_BENCH_2.dimensions.values():
        assert f'<td class="l dimname">{name}</td>' in dom, name
    heat = dom[dom.index('id="heatmap-svg"'):dom.index("</svg>", dom.index('id="heatmap-svg"'))]
    assert heat.count('class="cell"') == 3 * 27
    assert heat.count(">n/a</text>") == 27 - 9  # alpha-part answered dims 1-9 only
    s = _summary(runs["beta"])
    acc = s["dimensions"]["5"]["accuracy"]
    assert re.search(rf'data-run="beta · letter" data-dim="5" data-tip="[^"]*{acc:.2f}%', heat)
    assert f">{acc:.1f}</text>" in heat  # and in the cell
    assert 'id="pairs"' in dom and "n.s." in dom and 'id="reference"' in dom
    assert "runs differ in method" in dom

    # Sorting really happens in the browser: click "L1 task" once (ascending), dump the DOM.
    clicked = tmp_path / "clicked.html"
    click = ("<script>Array.from(document.querySelectorAll('#leaderboard th'))"
             ".find(function(h){return h.textContent==='L1 task'}).click();</script>")
    clicked.write_text(source.replace("</body>", click + "</body>"))
    sorted_dom = browse(chromium, clicked, tmp_path / "profile-sort", "--dump-dom").stdout
    board = sorted_dom[sorted_dom.index('id="leaderboard"'):]
    board = board[:board.index("</table>")]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", board.split("<tbody>")[1])
    l1 = [float(re.findall(r'data-v="([-\d.]+)"', row)[2]) for row in rows
          if len(re.findall(r'data-v="([-\d.]+)"', row)) >= 3]
    assert len(l1) == 3 and l1 == sorted(l1)
    check_screenshot(chromium, page, tmp_path)
