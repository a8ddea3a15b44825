"""A gRPC reflection client for tests, in either protocol version (v1 or v1alpha), built on
the generated stubs of each, as a client that speaks only that version would be."""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2
from grpc_reflection.v1alpha import reflection_pb2_grpc as v1alpha_grpc

from protos import reflection_v1_pb2 as v1_pb2
from protos import reflection_v1_pb2_grpc as v1_grpc

VERSIONS = {"v1": (v1_pb2, v1_grpc), "v1alpha": (v1alpha_pb2, v1alpha_grpc)}


def ask(target: str, version: str, **request) -> list:
    """One ServerReflectionInfo stream per request; its responses."""
    pb2, grpc_mod = VERSIONS[version]
    with grpc.insecure_channel(target) as ch:
        stub = grpc_mod.ServerReflectionStub(ch)
        return list(stub.ServerReflectionInfo(iter([pb2.ServerReflectionRequest(**request)]),
                                              timeout=10))


def services(target: str, version: str) -> set[str]:
    (response,) = ask(target, version, list_services="")
    return {s.name for s in response.list_services_response.service}


def file_containing(target: str, version: str, symbol: str) -> list[descriptor_pb2.FileDescriptorProto]:
    """The file defining `symbol` and the files it imports; [] when the server answers NOT_FOUND."""
    (response,) = ask(target, version, file_containing_symbol=symbol)
    if response.HasField("error_response"):
        assert response.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
        return []
    return [descriptor_pb2.FileDescriptorProto.FromString(raw)
            for raw in response.file_descriptor_response.file_descriptor_proto]


def service_methods(files: list[descriptor_pb2.FileDescriptorProto], service: str) -> list[str]:
    """The methods of `service` (full name) as the returned descriptors declare them."""
    package, _, name = service.rpartition(".")
    return [m.name for f in files if f.package == package for s in f.service if s.name == name
            for m in s.method]
