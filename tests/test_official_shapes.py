"""The benchmark's own file shapes, end to end: the DATASET.md example questions of
SEED-Bench-1 and SEED-Bench-2 (extensionless CC3M ids, lists of frames, `<img>`
interleaving, L3 option images, raw-video ids with the shipped 8-frame folders keyed
by question id), run through `seedbench run` against a synthetic model server, and
every score recomputed here from submission.jsonl and the spec's definitions.
"""

import json

import pytest
from PIL import Image

from evaluator import cli, dataset
from evaluator import dimensions as D
from tests.procs import model_server

# The `question_type` maps exactly as the benchmark's DATASET.md prints them.
V2_QUESTION_TYPE = {
    "Scene Understanding": 1, "Instance Identity": 2, "Instance Attributes": 3,
    "Instance Location": 4, "Instances Counting": 5, "Spatial Relation": 6,
    "Instance Interaction": 7, "Visual Reasoning": 8, "Text Understanding": 9,
    "Celebrity Recognition": 10, "Landmark Recognition": 11, "Chart Understanding": 12,
    "Visual Referring Expression": 13, "Science Knowledge": 14, "Emotion Recognition": 15,
    "Visual Mathematics": 16, "Difference Spotting": 17, "Meme Comprehension": 18,
    "Global Video Understanding": 19, "Action Recognition": 20, "Action Prediction": 21,
    "Procedure Understanding": 22, "In-Context Captioning": 23,
    "Interleaved Image-Text Analysis": 24, "Text-to-Image Generation": 25,
    "Next Image Prediction": 26, "Text-Image Creation": 27,
}
V1_QUESTION_TYPE = {**{n: d for n, d in V2_QUESTION_TYPE.items() if d <= 9},
                    "Action Recognition": 10, "Action Prediction": 11,
                    "Procedure Understanding": 12}

SUBPART = {1: "Single-Image & Text Comprehension", 17: "Multiple-Images & Text Comprehension",
           19: "Video & Text Comprehension", 23: "Interleaved Image & Text Comprehension",
           25: "Image Generation", 27: "Image & Text Generation"}
DATA_TYPE = {1: "Single Image", 17: "Multiple Images", 19: "Video", 23: "Interleaved Image",
             25: "Image Generation", 27: "Image & Text Generation"}
LETTERS = "ABCD"


def image(path, colour, fmt="PNG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 24), colour).save(path, format=fmt)


def part_start(dim: int) -> int:
    return max(k for k in SUBPART if k <= dim)


def v2_question(dim: int, k: int, data_id, source: str, question: str, choices) -> dict:
    level = "L1" if dim <= 22 else "L2" if dim <= 24 else "L3"
    return {"answer": LETTERS[(dim + k) % 4], "choice_a": choices[0], "choice_b": choices[1],
            "choice_c": choices[2], "choice_d": choices[3], "data_id": data_id,
            "data_source": source, "data_type": DATA_TYPE[part_start(dim)], "level": level,
            "question": question, "question_id": f"{dim}_{k}", "question_type_id": dim,
            "subpart": SUBPART[part_start(dim)], "version": "v1" if dim <= 9 else "v2"}


def write_v2(root):
    """Every SEED-Bench-2 dimension, shaped as DATASET.md shows it, 1-3 questions each
    (unequal counts, so task and question-weighted averages differ)."""
    cc3m, v2 = root / "cc3m", root / "seed_bench_v2"
    questions = []
    for dim in range(1, 28):
        for k in range(1 + dim % 3):
            colour = (dim * 9 % 256, k * 80, 120)
            if dim <= 9:  # a CC3M image named without extension
                data_id = f"{1454426 + dim}_{2591111986 + k}"
                image(cc3m / data_id, colour, "JPEG")
                q = v2_question(dim, k, data_id, "cc3m", "How many towels are in the image?",
                                ("One", "Two", "Three", "Four"))
            elif dim <= 16:
                data_id = f"task{dim}/images/{k}.png"
                image(v2 / data_id, colour)
                q = v2_question(dim, k, data_id, "SEED-Bench v2", f"Question {dim}?",
                                ("w", "x", "y", "z"))
            elif dim <= 18:
                data_id = [f"task17/SD_image/SD_IMG_{dim}{k}_{i}.png" for i in (1, 2)]
                q = v2_question(dim, k, data_id, "SEED-Bench v2",
                                "What are the differences between the two images?",
                                ("red car", "no person", "extra tree", "other shirt"))
            elif dim <= 22:
                data_id = [f"task{dim}/Charades_test_frame/WRQ{k}/{i}.png" for i in range(1, 9)]
                q = v2_question(dim, k, data_id, "SEED-Bench v2", "What did the person do?",
                                ("hung a robe", "cut", "placed a can", "hung a shirt"))
            elif dim <= 24:
                data_id = [f"task23/ICL_images/in_context_{dim}_{k}/{i}.jpg" for i in (1, 2, 3)]
                q = v2_question(dim, k, data_id, "SEED-Bench v2",
                                "<img>: The uniforms are blue. <img>: The outfit is orange. <img>:",
                                ("both look away", "black hair", "a dog", "two people"))
            elif dim == 25:
                data_id = [f"task25/image/{k}/{i}.jpg" for i in (1, 2, 3, 4)]
                q = v2_question(dim, k, data_id, "SEED-Bench v2",
                                "Which picture below better fits the description: a purse.",
                                ("1.jpg", "2.jpg", "3.jpg", "4.jpg"))
            elif dim == 26:
                frames = [f"v{k}{i}/1.png" for i in range(7)]
                data_id = [f"task26/kitchen_start_end_frame/{f}" for f in frames]
                q = v2_question(dim, k, data_id, "SEED-Bench v2", "What will happen next?",
                                frames[3:])
            else:
                data_id = [f"task27/original/{k}_{i}.jpg" for i in range(4)]
                q = v2_question(dim, k, data_id, "SEED-Bench v2",
                                "What does the Sydney Opera House look like?",
                                ("white shells", "a skyscraper", "a stadium", "a bridge"))
            for i, rel in enumerate([data_id] if isinstance(data_id, str) else data_id):
                if not (cc3m / rel).exists() and not (v2 / rel).exists():
                    image(v2 / rel, (i * 30, dim * 9 % 256, k * 60),
                          "JPEG" if rel.endswith(".jpg") else "PNG")
            questions.append(q)
    ann = root / "SEED-Bench_v2_level1_2_3.json"
    ann.write_text(json.dumps({"questions": questions, "question_type": V2_QUESTION_TYPE},
                              indent=1))
    return ann, {"cc3m": cc3m, "SEED-Bench v2": v2}


V1_VIDEOS = {10: ("94328.webm", None, "ssv2_8_frame"),
             11: ("P03/P03_24.MP4", [648.0, 658.0], "kitchen_8_frame"),
             12: ("P06/cam01/P06_cereals.avi", [18, 166], "breakfast_8_frame")}


def write_v1(root):
    """SEED-Bench-1 as DATASET.md shows it; video questions name raw videos, and their
    frames lie in the shipped layout task1N/<sub>/<question_id>/1.png..8.png."""
    questions = []
    for dim in range(1, 13):
        for k in range(1 + dim % 3):
            q = {"answer": LETTERS[(dim + k) % 4], "choice_a": "One", "choice_b": "Two",
                 "choice_c": "Three", "choice_d": "Four", "question_type_id": dim}
            if dim <= 9:
                data_id = f"{1454426 + dim}_{2591111986 + k}"
                image(root / "image" / data_id, (dim * 20, k * 70, 50), "JPEG")
                q.update(data_id=data_id, data_type="image", question_id=str(101669 + 10 * dim + k),
                         question="How many towels are in the image?")
            else:
                video, segment, sub = V1_VIDEOS[dim]
                qid = f"v{1738 + 10 * dim + k}"
                for i in range(1, 9):
                    image(root / "v1_video" / f"task{dim}" / sub / qid / f"{i}.png",
                          (i * 25, dim * 10, k * 60))
                q.update(data_id=video, data_type="video", question_id=qid,
                         question="What is the action being carried out in the video?")
                if segment is not None:
                    q["segment"] = segment
            questions.append(q)
    ann = root / "SEED-Bench.json"
    ann.write_text(json.dumps({"questions": questions, "question_type": V1_QUESTION_TYPE}))
    return ann, {"image": root / "image", "frames": root / "v1_video"}


def roots_args(roots: dict) -> list[str]:
    return [a for key, path in roots.items() for a in ("--media-root", f"{key}={path}")]


@pytest.fixture(scope="module")
def server():
    with model_server(["--backend", "synthetic", "--model", "m", "--log-level", "WARNING"]) \
            as (target, _):
        yield target


def test_dimension_names_are_the_files_question_type_maps():
    assert {n: d for d, n in D.V2_NAMES.items()} == V2_QUESTION_TYPE
    assert {n: d for d, n in D.V1_NAMES.items()} == V1_QUESTION_TYPE
    assert [D.v2_level(d) for d in (1, 22, 23, 24, 25, 27)] == ["L1", "L1", "L2", "L2", "L3",
                                                                 "L3"]
    assert {D.v2_subpart(d) for d in range(1, 28)} == set(SUBPART.values())


def test_official_files_load_whole_and_filter_cumulatively(tmp_path):
    ann, roots = write_v2(tmp_path / "v2")
    ds = dataset.load(ann, roots)
    assert ds.benchmark == D.V2 and not ds.invalid and not ds.warnings
    n = {d: 1 + d % 3 for d in range(1, 28)}

    def count(**kw):
        return len(dataset.load(ann, roots, dataset.Filters(**kw)).questions)

    assert count() == sum(n.values())
    assert count(level="L1") == sum(n[d] for d in range(1, 23))
    assert count(level="L2") == sum(n[d] for d in range(1, 25))
    assert count(level="L3") == sum(n.values())
    assert count(version="v1") == sum(n[d] for d in range(1, 10))
    assert count(version="v2") == sum(n.values())
    assert count(subpart="Image Generation") == n[25] + n[26]
    assert count(subpart="Image & Text Generation") == n[27]
    assert count(level="L2", version="v1") == sum(n[d] for d in range(1, 10))

    v1, v1_roots = write_v1(tmp_path / "v1")
    ds1 = dataset.load(v1, v1_roots)
    assert ds1.benchmark == D.V1 and not ds1.invalid and not ds1.warnings
    for q in ds1.questions:
        if q.dimension >= 10:  # the folder named by the QUESTION id, not the video's name
            assert [p.name for p in q.image_paths] == [f"{i}.png" for i in range(1, 9)]
            assert q.image_paths[0].parent.name == q.question_id


def test_a_question_type_map_that_differs_is_reported(tmp_path):
    ann, roots = write_v2(tmp_path)
    doc = json.loads(ann.read_text())
    qt = doc["question_type"]
    qt["Visual Mathmatics"] = qt.pop("Visual Mathematics")
    qt["Video Captioning"] = 28
    ann.write_text(json.dumps(doc))
    ds = dataset.load(ann, roots)
    assert len(ds.questions) == len(doc["questions"])  # the ids decide: nothing is dropped
    [warning] = ds.warnings
    assert "question_type" in warning
    assert "dimension 16 is named 'Visual Mathmatics' there, 'Visual Mathematics' here" in warning
    assert "'Video Captioning' has id 28, not a SEED-Bench-2 dimension" in warning


def scores_from_submission(ann, out) -> tuple[dict, dict]:
    """(per-dimension [correct, answered], the summary) recomputed from the written files."""
    answers = {q["question_id"]: q for q in json.loads(ann.read_text())["questions"]}
    per_dim: dict[int, list[int]] = {}
    for line in (out / "submission.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert list(row) == ["question_id", "prediction"] and row["prediction"] in LETTERS
        q = answers[row["question_id"]]
        c = per_dim.setdefault(q["question_type_id"], [0, 0])
        c[0] += row["prediction"] == q["answer"]
        c[1] += 1
    return per_dim, json.loads((out / "summary.json").read_text())


def task_and_weighted(per_dim, dims):
    have = [d for d in dims if d in per_dim]
    task = sum(100 * per_dim[d][0] / per_dim[d][1] for d in have) / len(have)
    weighted = 100 * sum(per_dim[d][0] for d in have) / sum(per_dim[d][1] for d in have)
    return pytest.approx(task, abs=1e-3), pytest.approx(weighted, abs=1e-3)


def test_seed_bench_2_scores_are_the_spec_averages(tmp_path, server):
    ann, roots = write_v2(tmp_path / "data")
    out = tmp_path / "out"
    assert cli.main(["run", "--annotations", str(ann), *roots_args(roots), "--model", server,
                     "--out", str(out), "--level", "L3"]) == 0
    per_dim, s = scores_from_submission(ann, out)
    assert sorted(per_dim) == list(range(1, 25))  # no image generation: dims 25-27 not run
    assert s["benchmark"] == "SEED-Bench-2"
    for d, (correct, total) in per_dim.items():
        assert s["dimensions"][str(d)]["name"] == D.V2_NAMES[d]
        assert (s["dimensions"][str(d)]["correct"], s["dimensions"][str(d)]["total"]) == \
            (correct, total)
    groups = {"L1": range(1, 23), "L2": range(1, 25), "P1": range(1, 23), "P2": (23, 24),
              "Single": range(1, 17), "Multi": (17, 18), "Video": range(19, 23)}
    for label, dims in groups.items():
        task, weighted = task_and_weighted(per_dim, dims)
        assert s["averages"][label]["task"] == task, label
        assert s["averages"][label]["all"] == weighted, label
    assert s["averages"]["L1"]["task"] != s["averages"]["L1"]["all"]  # the two really differ
    assert s["averages"]["L3"] is None and s["averages"]["P3"] is None  # n/a, never 0
    # The leaderboard view counts the 3 unrun L3 dims' questions nowhere (L3 stays n/a) but
    # every selected question of dims 1-24 (all answered here): the same numbers.
    assert s["all_questions"]["averages"]["L2"]["all"] == s["averages"]["L2"]["all"]
    assert s["all_questions"]["averages"]["L3"] is None


def test_seed_bench_1_image_video_all_are_question_weighted(tmp_path, server):
    ann, roots = write_v1(tmp_path / "data")
    out = tmp_path / "out"
    assert cli.main(["run", "--annotations", str(ann), *roots_args(roots), "--model", server,
                     "--out", str(out)]) == 0
    per_dim, s = scores_from_submission(ann, out)
    assert sorted(per_dim) == list(range(1, 13)) and s["benchmark"] == "SEED-Bench-1"
    for label, dims in (("Image", range(1, 10)), ("Video", range(10, 13)),
                        ("All", range(1, 13))):
        _, weighted = task_and_weighted(per_dim, dims)
        assert s["averages"][label]["all"] == weighted, label
    assert json.loads((out / "run.json").read_text())["video_sources"] == {
        str(d): f"8-frame folders, frames={roots['frames']}" for d in (10, 11, 12)}

