"""Model identity: the fingerprint covers every weight byte, its cache never vouches for a
changed file, and a rerun against a changed checkpoint never reuses an answer."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import grpc
import numpy as np
import pytest

from evaluator.results.runkey import RunKey
from evaluator.results.store import Store
from model_server import fingerprint as F
from protos import seedbench_pb2 as pb
from protos import seedbench_pb2_grpc as pb_grpc
from serving.processes import ROOT
from tests.evaluator_runs import run, write_sample
from tests.procs import model_server

DEMO = ROOT / "models" / "demo-llava"
MIB = 1 << 20


def middle_tensor(path: Path) -> tuple[str, int, int]:
    """(name, first byte, end byte) in the file of a float32 tensor lying wholly outside the
    first and last MiB: what a first-and-last-MiB hash never read."""
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    size = path.stat().st_size
    for name, meta in sorted(header.items()):
        if name == "__metadata__" or meta["dtype"] != "F32":
            continue
        start, end = (8 + n + o for o in meta["data_offsets"])
        if start >= MIB and end <= size - MIB:
            return name, start, end
    raise AssertionError("no tensor in the middle of the file")


def change_middle_tensor(path: Path) -> str:
    """Scale one middle tensor in place: every other byte of the file stays as it was."""
    name, start, end = middle_tensor(path)
    with path.open("r+b") as f:
        f.seek(start)
        values = np.frombuffer(f.read(end - start), dtype="<f4") * 1.5 + 0.01
        f.seek(start)
        f.write(values.astype("<f4").tobytes())
    return name


def copy_model(dest: Path) -> Path:
    """The demo model's files (not a fingerprint cache another test run left beside it)."""
    shutil.copytree(DEMO, dest, ignore=shutil.ignore_patterns(F.CACHE_NAME))
    return dest


@pytest.fixture
def two_models(tmp_path):
    a, b = copy_model(tmp_path / "a"), copy_model(tmp_path / "b")
    change_middle_tensor(b / "model.safetensors")
    return a, b


def test_one_changed_middle_tensor_changes_the_fingerprint(two_models):
    a, b = two_models
    wa, wb = (p / "model.safetensors" for p in (a, b))
    assert wa.stat().st_size == wb.stat().st_size
    differ = [i for i, (x, y) in enumerate(zip(wa.read_bytes(), wb.read_bytes(), strict=True)) if x != y]
    assert differ and MIB <= differ[0] and differ[-1] < wa.stat().st_size - MIB
    assert F.fingerprint_dir(a) != F.fingerprint_dir(b)
    assert F.fingerprint_dir(a) == F.fingerprint_dir(a)
    assert F.fingerprint_dir(a, extra="float32") != F.fingerprint_dir(a, extra="bfloat16")
    # The chat template and processor files count too; hidden files (the cache itself) do not.
    (a / "chat_template.jinja").write_text((a / "chat_template.jinja").read_text() + " ")
    assert F.fingerprint_dir(a) != F.fingerprint_dir(b)


def count_hashes(monkeypatch) -> list[str]:
    hashed: list[str] = []
    real = F.sha256_file

    def spy(path):
        hashed.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(F, "sha256_file", spy)
    return hashed


def test_the_cache_spares_a_restart_and_never_vouches_for_a_changed_file(two_models, monkeypatch):
    a, _ = two_models
    hashed = count_hashes(monkeypatch)
    first = F.fingerprint_model_dir(a)
    assert first.hashed == first.files == len(hashed) and "model.safetensors" in hashed
    assert (a / F.CACHE_NAME).is_file() and first.cache == str(a / F.CACHE_NAME)
    hashed.clear()
    again = F.fingerprint_model_dir(a)  # a restart: nothing read again
    assert hashed == [] and again.digest == first.digest and again.cached == again.files
    # Touched (same bytes, new mtime): hashed again, same digest.
    w = a / "model.safetensors"
    st = w.stat()
    os.utime(w, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert F.fingerprint_model_dir(a).digest == first.digest and hashed == ["model.safetensors"]
    hashed.clear()
    # Rewritten in place with the size kept and the old mtime put back: the change of
    # ctime (which no user can set) still sends it to be hashed; the digest changes.
    st = w.stat()
    change_middle_tensor(w)
    os.utime(w, ns=(st.st_atime_ns, st.st_mtime_ns))
    changed = F.fingerprint_model_dir(a)
    assert hashed == ["model.safetensors"] and changed.digest != first.digest
    # A forged cache entry (right stat, wrong digest) for a file replaced by a new inode is
    # ignored: the inode is part of the key.
    entries = json.loads((a / F.CACHE_NAME).read_text())
    shutil.copy2(w, a / "copy.tmp")
    os.replace(a / "copy.tmp", w)
    (a / F.CACHE_NAME).write_text(json.dumps(entries))
    hashed.clear()
    assert F.fingerprint_model_dir(a).digest == changed.digest and hashed == ["model.safetensors"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_model_folder_caches_per_user(two_models, monkeypatch, tmp_path):
    a, _ = two_models
    monkeypatch.setenv(F.ENV_CACHE_DIR, str(tmp_path / "cache"))
    hashed = count_hashes(monkeypatch)
    a.chmod(0o555)
    try:
        first = F.fingerprint_model_dir(a)
        assert first.cache.startswith(str(tmp_path / "cache")) and not (a / F.CACHE_NAME).exists()
        hashed.clear()
        assert F.fingerprint_model_dir(a).digest == first.digest and hashed == []
    finally:
        a.chmod(0o755)


def test_the_per_user_cache_when_the_folder_cache_cannot_be_written(two_models, monkeypatch,
                                                                   tmp_path):
    """Stands in for a read-only folder where the tests run as root: the beside-the-model
    write fails, the per-user cache takes the digests, and a restart reads them from there."""
    a, _ = two_models
    monkeypatch.setenv(F.ENV_CACHE_DIR, str(tmp_path / "cache"))
    (a / F.CACHE_NAME).mkdir()  # a folder where the cache file would go: cannot be written
    hashed = count_hashes(monkeypatch)
    first = F.fingerprint_model_dir(a)
    assert first.cache.startswith(str(tmp_path / "cache"))
    hashed.clear()
    assert F.fingerprint_model_dir(a).digest == first.digest and hashed == []


# -- over gRPC: the same path, another model --------------------------------------------------


def info(target: str) -> pb.InfoResponse:
    with grpc.insecure_channel(target) as ch:
        return pb_grpc.ModelServiceStub(ch).Info(pb.InfoRequest(), timeout=30)


def answers(out: Path, fingerprints: list[str]) -> dict[str, dict]:
    """fingerprint -> {question id: stored option scores}, through the store's own API."""
    store = Store(out)
    try:
        by_fp = {}
        for fp in fingerprints:
            key = RunKey(fp, "ppl", False)
            by_fp[fp] = store.scores(key, store.answered_ids(key))
        return by_fp
    finally:
        store.close()


DIMS = "1,2,3,4,5,6"


def test_a_changed_checkpoint_at_the_same_path_reuses_no_answer(tmp_path):
    model = copy_model(tmp_path / "model")
    ann, roots = write_sample(tmp_path / "data", per_dim=1)
    out = tmp_path / "out"
    args = ["--backend", "hf", "--model", str(model), "--log-level", "WARNING"]
    with model_server(args) as (target, _):
        before = info(target)
        assert not run(ann, roots, target, out, dimensions=DIMS).all_failed
    files = len(F.hashed_files(model))
    assert f"{files} files: {files} hashed" in before.details["fingerprint"]  # reads every file
    change_middle_tensor(model / "model.safetensors")
    with model_server(args) as (target, _):
        after = info(target)
        assert not run(ann, roots, target, out, dimensions=DIMS).all_failed
    # The restarted server read only the changed file: its cache answered for the others
    # (a restart with nothing changed reads nothing: test_the_cache_spares_a_restart_... above).
    assert f"{files} files: 1 hashed" in after.details["fingerprint"]
    assert after.fingerprint != before.fingerprint
    stored = answers(out, [before.fingerprint, after.fingerprint])
    assert len(stored[before.fingerprint]) == 6
    assert set(stored[before.fingerprint]) == set(stored[after.fingerprint])
    assert len(stored[after.fingerprint]) == 6  # every question asked again
    assert any(stored[before.fingerprint][q] != stored[after.fingerprint][q]
               for q in stored[after.fingerprint])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["fingerprint"] == after.fingerprint
