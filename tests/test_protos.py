"""The committed generated code matches the .proto files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from serving.processes import ROOT


def test_generated_code_is_fresh(tmp_path: Path):
    (tmp_path / "protos").mkdir()
    for proto in ("seedbench.proto", "clip.proto"):
        shutil.copy(ROOT / "protos" / proto, tmp_path / "protos" / proto)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", ".", "--python_out=.",
                    "--pyi_out=.", "--grpc_python_out=.", "protos/seedbench.proto",
                    "protos/clip.proto"], cwd=tmp_path, check=True)
    stale = [f.name for f in sorted((tmp_path / "protos").glob("*_pb2*.py*"))
             if f.read_bytes() != (ROOT / "protos" / f.name).read_bytes()]
    assert not stale, f"run `make protos`: stale generated files {stale}"
