"""The committed generated code matches the .proto files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from grpc_reflection.v1alpha import reflection_pb2 as reflection_v1alpha

from protos import reflection_v1_pb2 as reflection_v1
from serving.processes import ROOT

PROTOS = ("seedbench.proto", "clip.proto", "reflection_v1.proto")


def test_generated_code_is_fresh(tmp_path: Path):
    (tmp_path / "protos").mkdir()
    for proto in PROTOS:
        shutil.copy(ROOT / "protos" / proto, tmp_path / "protos" / proto)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", ".", "--python_out=.",
                    "--pyi_out=.", "--grpc_python_out=.", *(f"protos/{p}" for p in PROTOS)],
                   cwd=tmp_path, check=True)
    stale = [f.name for f in sorted((tmp_path / "protos").glob("*_pb2*.py*"))
             if f.read_bytes() != (ROOT / "protos" / f.name).read_bytes()]
    assert not stale, f"run `make protos`: stale generated files {stale}"


def _shape(file) -> dict:
    """Every message's fields (name, number, type, repeated, message type, oneof), and the
    service's methods with their streaming: what decides the bytes on the wire."""
    def field(f):
        return (f.name, f.number, f.type, f.is_repeated, f.message_type.name if f.message_type else "",
                f.containing_oneof.name if f.containing_oneof else "")

    messages = {m.name: [field(f) for f in m.fields] for m in file.message_types_by_name.values()}
    methods = {m.name: (m.input_type.name, m.output_type.name, m.client_streaming, m.server_streaming)
               for s in file.services_by_name.values() for m in s.methods}
    return {"messages": messages, "methods": methods}


def test_reflection_v1_is_v1alpha_under_the_v1_package():
    """serving.reflection answers v1 with the v1alpha implementation, re-reading the bytes: sound
    only while the two protocols' messages match field for field."""
    assert reflection_v1.DESCRIPTOR.package == "grpc.reflection.v1"
    assert _shape(reflection_v1.DESCRIPTOR) == _shape(reflection_v1alpha.DESCRIPTOR)
