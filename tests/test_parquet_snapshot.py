"""Hugging Face parquet snapshots as annotations: shards, embedded images, hub variants.

Every snapshot here is written inside the test with the hub's schemas (nested
image structs in list columns, int16 question_type_id, list data_id) from the
sample data, so the embedded bytes are known and the server's view of them can
be checked: the scripted backend logs the sha256 of every image it received,
which the server verified against the bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evaluator import cli
from evaluator.data import dataset, embedded_images, parquet_snapshot, sample_data, sample_video
from evaluator.data.image_source import locate, read_image
from evaluator.data.media import MediaError
from tests.hub_parquet import IMAGE, v2_table, write_shards
from tests.images import png, sha
from tests.procs import model_server

QUIET = ["--log-level", "WARNING"]
V2_ROOTS = {"cc3m": "cc3m", "SEED-Bench v2": "seed_bench_v2"}


def v2_rows_and_images(root: Path) -> tuple[list[dict], list[list[bytes]]]:
    """The sample SEED-Bench-2 questions and each one's image bytes, in data_id order."""
    ann = sample_data.write_v2(root, seed=3, per_dim=2)
    rows = json.loads(ann.read_text())["questions"]
    images = []
    for q in rows:
        ids = q["data_id"] if isinstance(q["data_id"], list) else [q["data_id"]]
        images.append([(root / V2_ROOTS[q["data_source"]] / i).read_bytes() for i in ids])
    return rows, images


@pytest.fixture(scope="module")
def v2_snapshot(tmp_path_factory):
    root = tmp_path_factory.mktemp("v2-snapshot")
    rows, images = v2_rows_and_images(root / "src")
    files = write_shards(v2_table(rows, images), root / "data", shards=3)
    return root / "data", rows, images, files


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    d = tmp_path_factory.mktemp("scripted-hub")
    (d / "script.json").write_text(json.dumps({"name": "scripted-hub", "generate_image": False,
                                               "default_score": 0, "log": "calls.jsonl"}))
    with model_server(["--backend", "scripted", "--model", str(d / "script.json"), *QUIET]) as (t, _):
        yield t, d / "calls.jsonl"


def received(log: Path) -> dict[str, list[str]]:
    """request id -> sha256 of each image the server received (last call wins)."""
    return {c["request_id"]: c["image_sha256"]
            for c in map(json.loads, log.read_text().splitlines()) if c["call"] == "Score"}


def test_a_three_shard_snapshot_runs_over_grpc_and_the_server_gets_the_embedded_bytes(
        v2_snapshot, scripted, tmp_path, capsys):
    folder, rows, images, files = v2_snapshot
    target, log = scripted
    embedded_images.CACHE.clear()
    read_before = embedded_images.CACHE.groups_read
    assert cli.main(["run", "--annotations", str(folder), "--model", target, "--out",
                     str(tmp_path), "--connect-timeout-s", "5", "--in-flight", "2"]) == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    scored = [q for q in rows if q["question_type_id"] <= 24]
    assert s["benchmark"] == "SEED-Bench-2"
    assert s["counts"]["answered"] == len(scored) and s["counts"]["errors"] == 0
    got = received(log)
    for q, imgs in zip(rows, images, strict=True):
        if q["question_type_id"] <= 24:
            assert got[q["question_id"]] == [sha(b) for b in imgs], q["question_id"]
    # Each row group's image column was read once, however many questions it holds (two in
    # flight span at most two row groups, so none is dropped from the cache before its use).
    groups = sum(pq.ParquetFile(f).num_row_groups for f in files)
    assert embedded_images.CACHE.groups_read - read_before <= groups
    # The snapshot is the annotation's provenance: every shard named, sized and hashed.
    provenance = s["provenance"]["annotations"]
    source = provenance["source"]
    assert provenance["sha256"] == parquet_snapshot.digest(source)
    assert source["format"] == "parquet" and source["rows"] == len(rows)
    assert [x["name"] for x in source["shards"]] == [f.name for f in files]
    assert [x["bytes"] for x in source["shards"]] == [f.stat().st_size for f in files]
    assert [x["footer_sha256"] for x in source["shards"]] == [
        parquet_snapshot.footer_sha256(f) for f in files]
    # A rerun over the unchanged snapshot keys its stored answers from the remembered digests
    # (each embedded image by its locator and its shard's stat): nothing is asked or read.
    read_after = embedded_images.CACHE.groups_read
    assert cli.main(["run", "--annotations", str(folder), "--model", target, "--out",
                     str(tmp_path), "--connect-timeout-s", "5"]) == 0
    rerun = json.loads((tmp_path / "run.json").read_text())
    assert rerun["todo"] == 0 and rerun["media_hashed"] == 0
    assert embedded_images.CACHE.groups_read == read_after
    # The same questions, one shard given on its own, load the same way.
    one, per = dataset.load(files[1], {}), -(-len(rows) // 3)
    assert [q.question_id for q in one.questions] == [r["question_id"] for r in rows[per:2 * per]]
    assert "Traceback" not in capsys.readouterr().err


def test_loading_reads_no_image_and_the_cache_stays_within_its_budget(v2_snapshot):
    folder, rows, images, files = v2_snapshot
    cache = embedded_images.CACHE
    cache.clear()
    before = cache.groups_read
    ds = dataset.load(folder, {})
    assert cache.groups_read == before  # the question columns only
    assert len(ds.questions) == len(rows) and not ds.invalid
    budget = cache.budget
    try:
        cache.budget = 1  # keep only the row group in use
        for q, imgs in zip(ds.questions, images, strict=True):
            assert [read_image(s).data for s in q.images] == imgs
            assert len(cache._groups) == 1
    finally:
        cache.budget = budget
    assert cache.groups_read - before == sum(pq.ParquetFile(f).num_row_groups for f in files)
    # A recorded source (the L3 gallery keeps option images as text) reads back the same bytes.
    last = ds.questions[-1].images[-1]
    assert locate(str(last)) == last and locate(str(last)).read_bytes() == images[-1][-1]
    assert locate(str(files[0])) == files[0]


def test_a_seed_bench_1_snapshot_sends_its_embedded_frames(tmp_path, scripted):
    target, log = scripted
    ann = sample_data.write_v1(tmp_path / "src", seed=2, per_dim=2)
    rows = json.loads(ann.read_text())["questions"]
    images = []
    for q in rows:
        if q["question_type_id"] >= 10:  # the 8-frame folders, keyed by question id
            task = next((tmp_path / "src" / sample_video.FRAMES_ROOT).glob(
                f"task{q['question_type_id']}/*"))
            frames = sorted((task / q["question_id"]).iterdir(), key=lambda p: int(p.stem))
            images.append([p.read_bytes() for p in frames])
        else:
            images.append([(tmp_path / "src" / "image" / q["data_id"]).read_bytes()])
    table = v2_table(rows, images, data_id_list=False)
    write_shards(table, tmp_path / "snap", shards=2)
    ds = dataset.load(tmp_path / "snap", {})
    video = [q for q in ds.questions if q.dimension >= 10]
    assert ds.benchmark == "SEED-Bench-1" and not ds.invalid and len(video) == 6
    assert all(len(q.images) == 8 and q.video is None for q in video)
    assert ds.video_sources == {d: dataset.EMBEDDED_FRAMES for d in (10, 11, 12)}
    out = tmp_path / "out"
    assert cli.main(["run", "--annotations", str(tmp_path / "snap"), "--model", target,
                     "--out", str(out), "--connect-timeout-s", "5"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["video_sources"] == {str(d): "frames embedded in the snapshot" for d in (10, 11, 12)}
    assert run["videos_decoded"] == 0
    got = received(log)
    for q, imgs in zip(rows, images, strict=True):
        assert got[q["question_id"]] == [sha(b) for b in imgs], q["question_id"]


def test_a_hub_cache_link_to_an_extensionless_blob_is_a_shard(v2_snapshot, tmp_path):
    folder, rows, _, files = v2_snapshot
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    data = tmp_path / "snapshots" / "rev" / "data"
    data.mkdir(parents=True)
    for f in files:
        blob = blobs / sha(f.read_bytes())
        blob.write_bytes(f.read_bytes())
        os.symlink(blob, data / f.name)
    ds = dataset.load(data.parent, {})  # the snapshot folder: its data/ holds the shards
    assert len(ds.questions) == len(rows) and not ds.invalid
    assert [s["blob"] for s in ds.source["shards"]] == [sha(f.read_bytes()) for f in files]
    one = dataset.load(blobs / sha(files[0].read_bytes()), {})  # the blob itself: by PAR1
    assert one.source["format"] == "parquet" and one.questions
    assert [read_image(s).data for s in ds.questions[0].images] == [
        read_image(s).data for s in one.questions[0].images]


def test_hub_variants_are_read_and_reported(tmp_path):
    """int16 or text question_type_id, list or string data_id, choice_a or choice_A."""
    rows = [{"question_id": f"q{k}", "question": "What colour?", "choice_a": "red",
             "choice_b": "green", "choice_c": "blue", "choice_d": "grey", "answer": "ABCD"[k % 4],
             "question_type_id": 1 + k % 9, "data_id": f"{k}.png", "data_source": "cc3m",
             "data_type": "Single Image", "level": "L1", "version": "v1",
             "subpart": "Single-Image & Text Comprehension"} for k in range(6)]
    images = [[png(k)] for k in range(6)]
    folder = tmp_path / "snap"
    folder.mkdir()
    pq.write_table(v2_table(rows[:2], images[:2]), folder / "a.parquet")
    pq.write_table(v2_table(rows[2:4], images[2:4], dim_type=pa.string(), data_id_list=False),
                   folder / "b.parquet")
    pq.write_table(v2_table(rows[4:], images[4:], choice_keys=("choice_A", "choice_B", "choice_C",
                                                               "choice_D")), folder / "c.parquet")
    ds = dataset.load(folder, {})
    assert ds.benchmark == "SEED-Bench-2" and not ds.invalid
    assert [(q.question_id, q.dimension, q.choices, q.data_ids) for q in ds.questions] == [
        (r["question_id"], r["question_type_id"], ("red", "green", "blue", "grey"),
         (r["data_id"],)) for r in rows]
    warning = next(w for w in ds.warnings if "variants" in w)
    assert "question_type_id as text in 2 question(s) (e.g. q2, q3)" in warning
    assert "data_id as a one-element list in 4 question(s)" in warning
    assert "choice keys choice_A..choice_D (published: choice_a..choice_d) in 2" in warning


def test_bad_snapshots_are_one_line_errors_and_bad_images_one_question(tmp_path, capsys):
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"PAR1 but nothing else")
    no_images = tmp_path / "no_images.parquet"
    pq.write_table(pa.table({"question_id": ["1"], "question": ["q"]}), no_images)
    for path, message in ((junk, "cannot read it as parquet"), (no_images, "no 'image' column")):
        rc = cli.main(["run", "--annotations", str(path), "--model", "127.0.0.1:1", "--out",
                       str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert rc == 2 and message in " ".join(err.split()) and "Traceback" not in err
    rows = [{"question_id": f"q{k}", "question": "<img> and <img>?" if k == 2 else "Which?",
             "choice_a": "a", "choice_b": "b", "choice_c": "c", "choice_d": "d", "answer": "A",
             "question_type_id": 1, "data_id": [f"{k}.png"]} for k in range(4)]
    table = pa.table({**{f: pa.array([r[f] for r in rows], pa.string())
                         for f in ("question_id", "question", "choice_a", "choice_b", "choice_c",
                                   "choice_d", "answer")},
                      "question_type_id": pa.array([1] * 4, pa.int16()),
                      "data_id": pa.array([r["data_id"] for r in rows], pa.list_(pa.string())),
                      "image": pa.array([[{"bytes": png(0), "path": "0.png"}], [],
                                         [{"bytes": png(2), "path": "2.png"}],
                                         [{"bytes": b"not an image", "path": "3.png"}]],
                                        pa.list_(IMAGE))})
    pq.write_table(table, tmp_path / "mixed.parquet")
    ds = dataset.load(tmp_path / "mixed.parquet", {})
    assert [q.question_id for q in ds.questions] == ["q0", "q3"]
    assert {(x.question_id, x.field) for x in ds.invalid} == {("q1", "image"), ("q2", "question")}
    with pytest.raises(MediaError, match="corrupt, truncated or not an image"):
        read_image(ds.questions[1].images[0])
