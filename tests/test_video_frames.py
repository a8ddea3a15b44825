"""SEED-Bench-1 video: the benchmark's 8-frame sampling on real webm/mp4/avi files, both layouts.

Videos are written here with PyAV, each frame painted with its own index, so a
decoded frame proves which source frame was taken. The expected indices are
computed independently from the spec's formula with numpy (as the reference did).
"""

import asyncio
import hashlib
import json

import numpy as np
import pytest

from evaluator.data import dataset
from evaluator.data.media import parse_media_roots
from evaluator.data.video_frames import FrameCache, VideoClip, VideoError, decode_clip
from tests.videos import index_of, indices_of, write_indexed_video, write_painted_png


def reference_offsets(num_frames: int, num_segments: int = 8) -> list[int]:
    if num_segments > num_frames:
        return list(np.arange(max(num_frames, 0)))
    seg_size = float(num_frames - 1) / num_segments
    start = int(seg_size / 2)
    return [start + int(np.round(seg_size * idx)) for idx in range(num_segments)]


def expected(rule: str, length: int, fps: float, segment) -> list[int]:
    """The spec: dim 10 whole clip, dim 11 seconds x fps clamped, dim 12 frames, end clamped."""
    if rule == "whole":
        return [int(i) for i in reference_offsets(length - 1)]
    if rule == "seconds":
        s = int(min(max(segment[0] * fps, 0), length - 1))
        e = int(min(max(segment[1] * fps, 0), length - 1))
        return [s + int(i) for i in reference_offsets(e - s)]
    e = min(segment[1], length)
    return [segment[0] + int(i) for i in reference_offsets(e - segment[0])]


# (file, frames, fps, rule, segment)
CASES = [
    ("ssv2/94328.webm", 37, 12, "whole", None),
    ("ssv2/short.webm", 5, 12, "whole", None),  # fewer than 8 frames: all of them but the last
    ("P03/P03_24.MP4", 60, 10, "seconds", (1.25, 4.5)),
    ("P03/P03_24.MP4", 60, 10, "seconds", (3.0, 9.0)),  # runs past the end: clamped
    ("P03/P03_24.MP4", 60, 10, "seconds", (0.0, 0.5)),  # 5 frames
    ("P06/cam01/P06_cereals.avi", 50, 15, "frames", (5, 30)),
    ("P06/cam01/P06_cereals.avi", 50, 15, "frames", (20, 80)),  # past the end: clamped
    ("P06/cam01/P06_cereals.avi", 50, 15, "frames", (44, 49)),  # 5 frames at the end
]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    for rel, frames, fps, _, _ in CASES:
        if not (root / rel).exists():
            write_indexed_video(root / rel, frames, fps)
    return root


@pytest.mark.parametrize("rel,frames,fps,rule,segment", CASES)
def test_sampled_frames_are_the_benchmarks(videos, rel, frames, fps, rule, segment):
    want = expected(rule, frames, fps, segment)
    assert 0 < len(want) <= 8
    clip = VideoClip(videos / rel, rel, rule, segment)
    for use_timestamps in (True, False):  # seek by timestamp, and decode-and-count
        got = decode_clip(clip, use_timestamps=use_timestamps)
        assert got.mode == ("timestamps" if use_timestamps else "sequential")
        assert got.frame_count == frames and got.indices == want
        assert [index_of(png) for png in got.frames] == want


def test_expected_indices_spot_checks():
    # hand-derived from the spec: N = 36, seg 4.375, start 2; 4.375 * 4 = 17.5 rounds to 18
    assert expected("whole", 37, 12, None) == [2, 6, 11, 15, 20, 24, 28, 33]
    # N = 13, seg 1.5: 4.5 -> 4 and 10.5 -> 10 (half to even), 1.5 -> 2 and 7.5 -> 8
    assert reference_offsets(13) == [0, 2, 3, 4, 6, 8, 9, 10]
    assert expected("seconds", 60, 10, (3.0, 9.0)) == [30 + o for o in reference_offsets(29)]


@pytest.mark.parametrize("rel,rule,segment", [
    ("P03/P03_24.MP4", "seconds", (7.0, 9.0)),  # starts after the last frame
    ("P06/cam01/P06_cereals.avi", "frames", (60, 70)),
])
def test_segment_wholly_past_the_end_is_a_clear_error(videos, rel, rule, segment):
    with pytest.raises(VideoError, match="selects no frames") as exc:
        decode_clip(VideoClip(videos / rel, rel, rule, segment))
    assert rel in str(exc.value) and exc.value.field == "segment"


def test_undecodable_video_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.webm"
    bad.write_bytes(b"\x1a\x45\xdf\xa3 not really a video")
    with pytest.raises(VideoError, match="broken.webm"):
        decode_clip(VideoClip(bad, "broken.webm", "whole"))


def test_cache_decodes_once_and_survives_a_new_process(videos, tmp_path):
    clip = VideoClip(videos / CASES[2][0], CASES[2][0], "seconds", (1.25, 4.5))
    other = VideoClip(videos / CASES[2][0], CASES[2][0], "seconds", (3.0, 9.0))
    cache = FrameCache(tmp_path / "cache")

    async def many():
        return await asyncio.gather(*(cache.paths(c) for c in [clip] * 5 + [other] * 3))

    try:
        results = asyncio.run(many())
    finally:
        cache.close()
    assert cache.decoded == 2  # concurrent asks for one clip share one decode
    assert all(r == results[0] for r in results[:5]) and results[5] != results[0]
    assert indices_of(results[0]) == expected("seconds", 60, 10, (1.25, 4.5))
    assert all(p.name == hashlib.sha256(p.read_bytes()).hexdigest() + ".png"
               for p in results[0])  # frames named by their content
    record = json.loads(next((tmp_path / "cache" / "clips").glob("*.json")).read_text())
    assert record["frame_count"] == 60 and len(record["indices"]) == 8
    again = FrameCache(tmp_path / "cache")  # a rerun: nothing decoded
    assert again.frames(clip) == results[0] and again.decoded == 0


def v1_question(qid: str, dim: int, data_id: str, segment=None) -> dict:
    q = {"question_id": qid, "question": "What happens?", "choice_a": "a", "choice_b": "b",
         "choice_c": "c", "choice_d": "d", "answer": "A", "question_type_id": dim,
         "data_id": data_id, "data_type": "video"}
    if segment is not None:
        q["segment"] = list(segment)
    return q


def test_frames_layout_and_raw_layout_give_the_same_frames(videos, tmp_path):
    """Frame folders (painted with the spec's indices, odd <sub> names) vs the raw videos."""
    questions = [v1_question("v1", 10, "ssv2/94328.webm"),
                 v1_question("v2", 11, "P03/P03_24.MP4", (1.25, 4.5)),
                 v1_question("3003", 11, "P03/P03_24.MP4", (3.0, 9.0)),
                 v1_question("v4", 12, "P06/cam01/P06_cereals.avi", (20, 80))]
    subs = {10: "ssv2_8_frame", 11: "kitchen_8_frame_copy", 12: "breakfast_8_frame"}
    lengths = {10: (37, 12, "whole"), 11: (60, 10, "seconds"), 12: (50, 15, "frames")}
    frames_root = tmp_path / "v1_video"
    for q in questions:
        dim = q["question_type_id"]
        n, fps, rule = lengths[dim]
        want = expected(rule, n, fps, q.get("segment"))
        for k, idx in enumerate(want, start=1):
            write_painted_png(frames_root / f"task{dim}" / subs[dim] / q["question_id"]
                              / f"{k}.png", idx)
    ann = tmp_path / "SEED-Bench.json"
    ann.write_text(json.dumps({"questions": questions}))
    by_frames = dataset.load(ann, parse_media_roots([f"frames={frames_root}"]))
    by_raw = dataset.load(ann, parse_media_roots(
        [f"ssv2={videos}", f"epic-kitchens={videos}", f"breakfast={videos}"]))
    assert not by_frames.invalid and not by_raw.invalid
    cache = FrameCache(tmp_path / "cache")
    for qf, qr in zip(by_frames.questions, by_raw.questions, strict=True):
        assert qf.question_id == qr.question_id and qr.video is not None and qf.video is None
        assert indices_of(qf.images) == indices_of(cache.frames(qr.video))
        assert len(qf.images) == 8
    # Both roots given: the frames win.
    both = dataset.load(ann, parse_media_roots([f"frames={frames_root}", f"ssv2={videos}"]))
    assert all(q.video is None for q in both.questions)
    assert "8-frame folders" in both.video_sources[10]


def test_missing_video_or_frame_folder_is_that_questions_error(videos, tmp_path):
    frames_root = tmp_path / "v1_video"
    for k in range(1, 9):
        write_painted_png(frames_root / "task10" / "ssv2_8_frame" / "ok" / f"{k}.png", k)
    questions = [v1_question("ok", 10, "ssv2/94328.webm"),
                 v1_question("gone", 10, "ssv2/404.webm"),
                 v1_question("seg", 11, "P03/P03_24.MP4", (1.0, 2.0))]
    ann = tmp_path / "SEED-Bench.json"
    ann.write_text(json.dumps({"questions": questions}))
    by_frames = dataset.load(ann, parse_media_roots([f"frames={frames_root}"]))
    assert [q.question_id for q in by_frames.questions] == ["ok"]
    bad = {b.question_id: str(b) for b in by_frames.invalid}
    assert "no frame folder for question gone" in bad["gone"]
    assert "task11" in bad["seg"] and "does not exist" in bad["seg"]
    by_raw = dataset.load(ann, parse_media_roots([f"ssv2={videos}", f"epic-kitchens={videos}"]))
    assert [q.question_id for q in by_raw.questions] == ["ok", "seg"]
    assert [b.question_id for b in by_raw.invalid] == ["gone"]
    assert "video file" in by_raw.invalid[0].reason and "404.webm" in by_raw.invalid[0].reason


def test_raw_video_needs_a_valid_segment(videos, tmp_path):
    questions = [v1_question("noseg", 11, "P03/P03_24.MP4"),
                 v1_question("backwards", 12, "P06/cam01/P06_cereals.avi", (30, 10)),
                 v1_question("fractional", 12, "P06/cam01/P06_cereals.avi", (1.5, 10)),
                 v1_question("escape", 10, "../videos/ssv2/94328.webm")]
    questions.append({**v1_question("shape", 11, "P03/P03_24.MP4"), "segment": "1-2"})
    ann = tmp_path / "SEED-Bench.json"
    ann.write_text(json.dumps({"questions": questions}))
    ds = dataset.load(ann, parse_media_roots(
        [f"ssv2={videos}", f"epic-kitchens={videos}", f"breakfast={videos}"]))
    assert not ds.questions
    fields = {b.question_id: b.field for b in ds.invalid}
    assert fields == {"noseg": "segment", "backwards": "segment", "fractional": "segment",
                      "escape": "data_id", "shape": "segment"}


def test_no_video_source_names_the_keys(tmp_path):
    ann = tmp_path / "SEED-Bench.json"
    ann.write_text(json.dumps([v1_question("v1", 12, "P06/cam01/P06_cereals.avi", (0, 10))]))
    ds = dataset.load(ann, parse_media_roots([f"image={tmp_path}"]))
    assert "frames=DIR" in ds.invalid[0].reason and "breakfast=DIR" in ds.invalid[0].reason


def test_bare_root_is_read_as_the_layout_it_holds(videos, tmp_path):
    """A bare --media-root DIR: frames when DIR/taskNN/ exists (even without <sub>), else raw."""
    frames_root = tmp_path / "unzipped"
    for k in range(1, 9):  # no <sub> level at all
        write_painted_png(frames_root / "task10" / "v1" / f"{k}.png", k)
    ann = tmp_path / "SEED-Bench.json"
    ann.write_text(json.dumps([v1_question("v1", 10, "ssv2/94328.webm")]))
    as_frames = dataset.load(ann, parse_media_roots([str(frames_root)]))
    assert indices_of(as_frames.questions[0].images) == list(range(1, 9))
    as_raw = dataset.load(ann, parse_media_roots([str(videos)]))
    assert as_raw.questions[0].video.path == videos / "ssv2" / "94328.webm"
    assert "raw videos, bare --media-root" in as_raw.video_sources[10]


def test_question_found_in_two_frame_folders_is_its_error(tmp_path):
    root = tmp_path / "v1_video"
    for sub in ("ssv2_8_frame", "ssv2_8_frame_old"):
        for k in range(1, 9):
            write_painted_png(root / "task10" / sub / "v7" / f"{k}.png", k)
    for k in range(1, 9):
        write_painted_png(root / "task10" / "ssv2_8_frame" / "v8" / f"{k}.png", k)
    ann = tmp_path / "SEED-Bench.json"
    ann.write_text(json.dumps([v1_question("v7", 10, "1.webm"), v1_question("v8", 10, "2.webm")]))
    ds = dataset.load(ann, parse_media_roots([f"frames={root}"]))
    assert [q.question_id for q in ds.questions] == ["v8"]
    assert "several frame folders for question v7" in ds.invalid[0].reason
    assert "ssv2_8_frame_old" in ds.invalid[0].reason
