"""The user-facing edges of `seedbench`: a wrong path or value is one clear line, exit 2.

Inputs are official-shaped (the benchmark's DATASET.md examples: an extensionless
CC3M image id, SEED-Bench-1 video questions naming raw videos); none of these
cases may print a Python traceback.
"""

import json

import pytest
from PIL import Image

from evaluator import cli
from tests.procs import model_server


def v2_question(qid: str, dim: int) -> dict:
    return {"answer": "A", "choice_a": "One", "choice_b": "Two", "choice_c": "Three",
            "choice_d": "Four", "data_id": "1454426_2591111986", "data_source": "cc3m",
            "data_type": "Single Image", "level": "L1",
            "question": "How many towels are in the image?", "question_id": qid,
            "question_type_id": dim, "subpart": "Single-Image & Text Comprehension",
            "version": "v1"}


def v1_question(qid: str, dim: int) -> dict:
    return {"answer": "A", "choice_a": "One", "choice_b": "Two", "choice_c": "Three",
            "choice_d": "Four", "data_id": "1454426_2591111986", "data_type": "image",
            "question": "How many towels are in the image?", "question_id": qid,
            "question_type_id": dim}


@pytest.fixture
def v2(tmp_path):
    """A SEED-Bench-2 file of dims 1 and 5 and its CC3M root (the image has no extension)."""
    cc3m = tmp_path / "cc3m"
    cc3m.mkdir()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(cc3m / "1454426_2591111986", format="JPEG")
    ann = tmp_path / "SEED-Bench_v2_level1_2_3.json"
    ann.write_text(json.dumps({"questions": [v2_question("1_0", 1), v2_question("5_0", 5)],
                               "question_type": {"Scene Understanding": 1,
                                                 "Instances Counting": 5}}))
    return ann, ["--media-root", f"cc3m={cc3m}"]


def run(capsys, *argv) -> tuple[int, str]:
    rc = cli.main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, " ".join(err.split())


def run_v2(capsys, v2, out, *extra, model="127.0.0.1:1"):
    ann, roots = v2
    return run(capsys, "run", "--annotations", str(ann), *roots, "--model", model,
               "--out", str(out), "--connect-timeout-s", "2", *extra)


def test_out_that_is_a_file_is_one_line(v2, tmp_path, capsys):
    out = tmp_path / "results"
    out.write_text("not a folder")
    rc, err = run_v2(capsys, v2, out)
    assert rc == 2 and f"--out {out}: exists and is not a folder" in err


def test_out_that_cannot_be_created_is_one_line(v2, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "results"  # its parent is a file
    rc, err = run_v2(capsys, v2, out)
    assert rc == 2 and f"--out {out}: cannot write the output folder" in err


@pytest.mark.parametrize("dims, named", [("1,28", "28 is not a dimension"),
                                         ("0,5,99", "0, 99 are not dimensions")])
def test_unknown_dimension_of_seed_bench_2_names_it(v2, tmp_path, capsys, dims, named):
    rc, err = run_v2(capsys, v2, tmp_path / "out", "--dimensions", dims)
    assert rc == 2
    assert f"--dimensions: {named} of SEED-Bench-2 (its dimensions are 1-27" in err


def test_unknown_dimension_of_seed_bench_1_names_it(v2, tmp_path, capsys):
    _, roots = v2
    ann = tmp_path / "SEED-Bench.json"
    ann.write_text(json.dumps({"questions": [v1_question("101669", 5)]}))
    # 13-27 exist only in SEED-Bench-2: for a SEED-Bench-1 file they are unknown.
    rc, err = run(capsys, "run", "--annotations", str(ann),
                  "--media-root", roots[1].replace("cc3m=", "image="), "--model", "127.0.0.1:1",
                  "--out", str(tmp_path / "out"), "--dimensions", "5,13")
    assert rc == 2 and "--dimensions: 13 is not a dimension of SEED-Bench-1" in err
    assert "1-12" in err


def corrupt_store(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.sqlite").write_bytes(b"this is not an SQLite database" * 100)
    return folder


def test_report_and_compare_of_a_corrupt_store_are_one_line(tmp_path, capsys):
    bad = corrupt_store(tmp_path / "bad")
    rc, err = run(capsys, "report", str(bad))
    assert rc == 2 and f"{bad / 'results.sqlite'}: not a seedbench results store" in err
    rc, err = run(capsys, "compare", str(bad), str(bad))
    assert rc == 2 and "not a seedbench results store" in err


def test_run_into_a_corrupt_store_is_one_line_and_keeps_it(v2, tmp_path, capsys):
    bad = corrupt_store(tmp_path / "bad")
    before = (bad / "results.sqlite").read_bytes()
    with model_server(["--backend", "synthetic", "--model", "m", "--log-level", "WARNING"]) \
            as (target, _):
        rc, err = run_v2(capsys, v2, bad, model=target)
    assert rc == 2 and "not a seedbench results store" in err
    assert (bad / "results.sqlite").read_bytes() == before  # never overwritten


def test_report_pages_to_unwritable_paths_are_one_line(v2, tmp_path, capsys):
    with model_server(["--backend", "synthetic", "--model", "m", "--log-level", "WARNING"]) \
            as (target, _):
        rc, _ = run_v2(capsys, v2, tmp_path / "out", model=target)
    assert rc == 0
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    rc, err = run(capsys, "report", str(tmp_path / "out"), "--png", str(blocker))
    assert rc == 2 and f"--png {blocker}: cannot write the figures" in err
    html = blocker / "page.html"
    rc, err = run(capsys, "report", str(tmp_path / "out"), "--html", str(html))
    assert rc == 2 and f"--html {html}: cannot write it" in err


def test_sample_data_into_a_file_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    rc, err = run(capsys, "sample-data", "--out", str(blocker))
    assert rc == 2 and f"--out {blocker}: cannot write the sample data" in err


@pytest.mark.parametrize("extra, named", [
    (["--format", "v1", "--full"], "apply to --format v2 only"),
    (["--format", "v1", "--mix", "30"], "apply to --format v2 only"),
    (["--full", "--mix", "30"], "give one"),
])
def test_sample_data_options_that_would_be_ignored_are_refused(tmp_path, capsys, extra, named):
    rc, err = run(capsys, "sample-data", "--out", str(tmp_path / "s"), *extra)
    assert rc == 2 and named in err and not (tmp_path / "s").exists()


@pytest.mark.parametrize("spec", ["cc3m=", "SEED-Bench v2=  ", ""])
def test_media_root_without_a_folder_is_refused(v2, tmp_path, capsys, spec):
    ann, _ = v2
    # an empty path would otherwise mean the current folder, silently
    rc, err = run(capsys, "run", "--annotations", str(ann), "--media-root", spec,
                  "--model", "127.0.0.1:1", "--out", str(tmp_path / "out"))
    assert rc == 2 and "no folder given" in err


def test_media_root_given_twice_is_refused(v2, tmp_path, capsys):
    ann, roots = v2
    rc, err = run(capsys, "run", "--annotations", str(ann), *roots, *roots,
                  "--model", "127.0.0.1:1", "--out", str(tmp_path / "out"))
    assert rc == 2 and "--media-root given twice for 'cc3m'" in err
