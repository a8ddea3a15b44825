"""gRPC server reflection, served as both grpc.reflection.v1 and grpc.reflection.v1alpha.

grpcio-reflection serves only v1alpha; clients that speak only v1 (newer grpcurl,
grpcui, Postman and others) then find no reflection at all. The two protocols share
every message and field number, so v1 is answered by grpcio-reflection's own v1alpha
servicer over the same descriptor pool: each v1 request is re-read as its v1alpha
twin and each answer re-read as the v1 message (protos/reflection_v1.proto).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable

import grpc
from grpc_reflection.v1alpha import reflection as v1alpha
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2

from protos import reflection_v1_pb2 as v1_pb2
from protos import reflection_v1_pb2_grpc as v1_grpc

V1_SERVICE_NAME = v1_pb2.DESCRIPTOR.services_by_name["ServerReflection"].full_name
V1ALPHA_SERVICE_NAME = v1alpha.SERVICE_NAME


class V1ReflectionServicer(v1_grpc.ServerReflectionServicer):
    """grpc.reflection.v1.ServerReflection, answered by the v1alpha implementation."""

    def __init__(self, service_names: Iterable[str]):
        self._v1alpha = v1alpha.aio.ReflectionServicer(service_names)

    async def ServerReflectionInfo(
            self, request_iterator: AsyncIterable[v1_pb2.ServerReflectionRequest],
            context: grpc.aio.ServicerContext) -> AsyncIterator[v1_pb2.ServerReflectionResponse]:
        async def as_v1alpha() -> AsyncIterator[v1alpha_pb2.ServerReflectionRequest]:
            async for request in request_iterator:
                yield v1alpha_pb2.ServerReflectionRequest.FromString(request.SerializeToString())

        async for response in self._v1alpha.ServerReflectionInfo(as_v1alpha(), context):
            yield v1_pb2.ServerReflectionResponse.FromString(response.SerializeToString())


def enable(server: grpc.aio.Server, service_names: Iterable[str]) -> list[str]:
    """Serve reflection (v1 and v1alpha) on `server`, listing `service_names` and both
    reflection services; returns the names listed."""
    names = sorted({*service_names, V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME})
    v1alpha.enable_server_reflection(names, server)
    v1_grpc.add_ServerReflectionServicer_to_server(V1ReflectionServicer(names), server)
    return names
