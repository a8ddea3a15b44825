"""The one atomic-write helper: whole file or the old one, never half; temp files never left."""

from __future__ import annotations

import pytest

from serving.atomic_files import atomic_open, write_atomic


def test_a_write_replaces_the_file_whole_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("old")
    write_atomic(target, '{"new": 1}\n')
    assert target.read_text() == '{"new": 1}\n'
    write_atomic(target, b"\x89PNG bytes")
    assert target.read_bytes() == b"\x89PNG bytes"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "submission.jsonl"
    target.write_text("line 1\n")
    with pytest.raises(RuntimeError), atomic_open(target) as f:
        f.write("half of the new ")
        raise RuntimeError("the writer died")
    assert target.read_text() == "line 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["submission.jsonl"]


def test_parents_are_made_only_when_asked(tmp_path):
    deep = tmp_path / "generated" / "q1.png"
    with pytest.raises(FileNotFoundError):
        write_atomic(deep, b"x")
    write_atomic(deep, b"x", make_parents=True)
    assert deep.read_bytes() == b"x"


def test_only_write_modes(tmp_path):
    with pytest.raises(ValueError, match="writes only"), atomic_open(tmp_path / "x", "a"):
        pass
