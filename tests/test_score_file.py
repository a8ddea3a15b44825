"""`seedbench score`: a published-shape predictions file scored against official-shaped
annotations; every number recomputed here from the spec's definitions."""

import json

import pytest

from evaluator import cli
from tests.official_files import write_v1, write_v2


def published(path, rows: list[dict], extra_lines: tuple[str, ...] = ()) -> None:
    """The benchmark's published result shape: `},` line ends, a gt_answer key."""
    lines = [json.dumps(r) + "," for r in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n")


def score(capsys, *argv) -> tuple[int, dict, str]:
    rc = cli.main(["score", *argv, "--json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, (json.loads(out) if rc == 0 else {}), " ".join(err.split())


def test_published_file_with_gaps_and_oddities(tmp_path, capsys):
    ann, _ = write_v2(tmp_path / "data")
    questions = json.loads(ann.read_text())["questions"]
    rows, truth = [], {}
    for i, q in enumerate(questions):
        if q["question_type_id"] == 23 and q["question_id"].endswith("_0"):
            continue  # a gap: no prediction for 23_0
        pred = q["answer"] if i % 3 else "ABCD"[("ABCD".index(q["answer"]) + 1) % 4]
        if q["question_id"] == "5_1":
            pred = "E"  # not an option: wrong, never dropped
        if q["question_id"] == "2_0":
            pred = pred.lower()  # a letter in lower case is that letter
        rows.append({"question_id": q["question_id"], "prediction": pred,
                     "gt_answer": q["answer"]})
        truth[q["question_id"]] = pred.upper() == q["answer"]
    first = rows[0]
    rows.append({**first, "prediction": first["gt_answer"]})  # repeated id: the last wins
    truth[first["question_id"]] = True
    rows.append({"question_id": "99_0", "prediction": "A"})
    preds = tmp_path / "GPT-4V.json"
    published(preds, rows, ("not json",))

    rc, s, err = score(capsys, "--annotations", str(ann), "--predictions", str(preds))
    assert rc == 0
    p = s["predictions"]
    assert p["missing"] == 1 and p["not_a_letter"] == ["5_1"] and p["unknown_ids"] == ["99_0"]
    assert p["duplicates"] == [first["question_id"]] and p["bad_lines"] == [len(rows) + 1]
    assert "1 selected question(s) have no prediction" in err and "99_0" in err

    per_dim: dict[int, list[int]] = {}
    selected: dict[int, int] = {}
    for q in questions:
        d = q["question_type_id"]
        selected[d] = selected.get(d, 0) + 1
        if q["question_id"] in truth:
            c = per_dim.setdefault(d, [0, 0])
            c[0] += truth[q["question_id"]]
            c[1] += 1
    for d, (correct, total) in per_dim.items():
        assert (s["dimensions"][str(d)]["correct"], s["dimensions"][str(d)]["total"]) == \
            (correct, total)
    assert s["dimensions"]["5"]["unparsed"] == 1
    for label, dims in (("L1", range(1, 23)), ("L2", range(1, 25)), ("L3", range(1, 28))):
        task = sum(100 * per_dim[d][0] / per_dim[d][1] for d in dims) / len(dims)
        weighted = 100 * sum(per_dim[d][0] for d in dims) / sum(per_dim[d][1] for d in dims)
        assert s["averages"][label]["task"] == pytest.approx(task, abs=1e-3)
        assert s["averages"][label]["all"] == pytest.approx(weighted, abs=1e-3)
        # The leaderboard view: the question without a prediction is wrong, not left out.
        lead = s["all_questions"]["averages"][label]
        assert lead["selected"] == sum(selected[d] for d in dims)
        assert lead["correct"] == sum(per_dim[d][0] for d in dims)
    assert s["averages"]["L2"]["complete"] is False  # 23_0 has no prediction: partial
    assert s["averages"]["L1"]["complete"] is True


def test_seed_bench_1_file_and_filters(tmp_path, capsys):
    ann, _ = write_v1(tmp_path / "data")
    questions = json.loads(ann.read_text())["questions"]
    preds = tmp_path / "submission.jsonl"
    preds.write_text("".join(json.dumps({"question_id": q["question_id"], "prediction": "A"})
                             + "\n" for q in questions))
    rc, s, _ = score(capsys, "--annotations", str(ann), "--predictions", str(preds))
    assert rc == 0 and s["benchmark"] == "SEED-Bench-1"
    video = [q for q in questions if q["question_type_id"] >= 10]
    assert s["averages"]["Video"]["all"] == pytest.approx(
        100 * sum(q["answer"] == "A" for q in video) / len(video), abs=1e-3)
    rc, s, _ = score(capsys, "--annotations", str(ann), "--predictions", str(preds),
                     "--dimensions", "10,11,12")
    assert rc == 0 and s["averages"]["Image"] is None
    assert s["predictions"]["unknown_ids"] == []  # filtered out is not unknown
    rc, _, err = score(capsys, "--annotations", str(ann), "--predictions", str(preds),
                       "--level", "L1")
    assert rc == 2 and "apply to SEED-Bench-2 only" in err


@pytest.mark.parametrize("problem", ["missing", "folder", "not-utf8"])
def test_unreadable_predictions_are_one_line(tmp_path, capsys, problem):
    ann, _ = write_v1(tmp_path / "data")
    preds = tmp_path / "p.jsonl"
    if problem == "folder":
        preds.mkdir()
    elif problem == "not-utf8":
        preds.write_bytes(b"\xff\xfe\x00{")
    rc, _, err = score(capsys, "--annotations", str(ann), "--predictions", str(preds))
    assert rc == 2 and f"--predictions {preds}: cannot read it" in err


def test_predictions_for_none_of_the_questions_is_an_error(tmp_path, capsys):
    ann, _ = write_v1(tmp_path / "data")
    preds = tmp_path / "other-benchmark.jsonl"
    preds.write_text('{"question_id": "5_0", "prediction": "A"}\n')  # a SEED-Bench-2 id
    rc, _, err = score(capsys, "--annotations", str(ann), "--predictions", str(preds))
    assert rc == 2
    assert f"{preds}: none of its 1 prediction(s) is for a selected question of {ann}" in err
    assert "5_0" in err  # the unknown id is shown


@pytest.mark.parametrize("option, message", [
    (["--subpart", "Image Gen"], "is not a SEED-Bench-2 subpart"),
    (["--dimensions", "1,x"], "--dimensions expects comma-separated integers"),
    (["--dimensions", "28"], "28 is not a dimension of SEED-Bench-2"),
])
def test_bad_filters_are_one_line(tmp_path, capsys, option, message):
    ann, _ = write_v2(tmp_path / "data")
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"question_id": "1_0", "prediction": "A"}\n')
    rc, _, err = score(capsys, "--annotations", str(ann), "--predictions", str(preds), *option)
    assert rc == 2 and message in err
