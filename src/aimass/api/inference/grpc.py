"""The Open Inference Protocol over gRPC, beside /v2 on HTTP (the ``grpc`` extra).

KServe's ``grpc_predict_v2.proto`` service (``inference.GRPCInferenceService``),
with the message classes that ``tritonclient[grpc]`` ships: Triton's proto is a
superset of KServe's with the same names and field numbers, so KServe and Triton
clients both work. It is served on its own port (``Settings.grpc_port``) in the
server's event loop, and runs every request through the HTTP inference path's
own steps (``InferenceApp``): the same auth (``authorization: Bearer ...``
metadata), project check, version pick, batching, metrics and prediction log.
HTTP statuses map to gRPC codes; messages carry no traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

from aimass.api.edge import HTTPError
from aimass.api.inference.app import check_given, find_version
from aimass.errors import AimassError
from aimass.serving.input_checks import check_missing
from aimass.serving.protocol import (
    NUMPY_DTYPES,
    ProtocolError,
    conform_inputs,
    datatype_of,
    tensor_from_bytes,
    tensor_from_values,
    tensor_to_bytes,
)

if TYPE_CHECKING:
    from aimass.api.inference.app import InferenceApp
    from aimass.auth.entities import Principal
    from aimass.serving.protocol import Array
    from aimass.serving.repository import ServedVersion

log = logging.getLogger("aimass.serving")

#: HTTP status of an inference error → the gRPC code a client sees.
STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}

#: Which ``InferTensorContents`` field holds each datatype's typed values.
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}  # fmt: skip


class OipGrpcService(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    """The gRPC servicer: health, metadata and infer, through ``inference``'s steps."""

    def __init__(self, inference: InferenceApp) -> None:
        self.inference = inference

    async def ServerLive(self, request: Any, context: Any) -> Any:
        """Always live while the process answers (no token, like /v2/health/live)."""
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        """Ready once serving (no token, like /v2/health/ready)."""
        return service_pb2.ServerReadyResponse(ready=True)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        """The server's name, version and extensions."""
        await self._guard(context, self._principal(context))
        return service_pb2.ServerMetadataResponse(
            name="aimass", version=self.inference.server_version, extensions=[]
        )

    async def ModelReady(self, request: Any, context: Any) -> Any:
        """True when the deployment (and the named version) is serving."""

        async def ready() -> bool:
            project = await self._project(context)
            deployment = self.inference.repository.get(request.name, project)
            if deployment is None:
                raise HTTPError(404, f"unknown model {request.name[:128]!r}")
            if not deployment.serving:
                return False
            return not request.version or find_version(deployment, request.version) is not None

        return service_pb2.ModelReadyResponse(ready=await self._guard(context, ready()))

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        """The deployment's versions, platform (flavor) and tensor specs."""

        async def metadata() -> Any:
            project = await self._project(context)
            app = self.inference
            deployment = app.deployment(request.name, project)
            served = app.serving(deployment, request.version or None)
            versions = (
                [str(request.version)]
                if request.version
                else [str(v.version) for v in deployment.versions]
            )
            signature = served.signature
            tensor = service_pb2.ModelMetadataResponse.TensorMetadata
            return service_pb2.ModelMetadataResponse(
                name=deployment.name,
                versions=versions,
                platform=served.flavor,
                inputs=[
                    tensor(name=s.name, datatype=s.datatype, shape=s.shape)
                    for s in (signature.inputs if signature else [])
                ],
                outputs=[
                    tensor(name=s.name, datatype=s.datatype, shape=s.shape)
                    for s in served.runner.output_specs
                ],
            )

        return await self._guard(context, metadata())

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        """Run one infer request (typed contents or ``raw_input_contents``) through batching."""
        started = time.perf_counter()
        app = self.inference
        request_id = app.request_ids.assign(None)

        async def infer() -> Any:
            project = await self._project(context)
            wanted = [out.name for out in request.outputs] or None

            async def call(served: ServedVersion) -> tuple[dict[str, Array], dict[str, Array]]:
                inputs = decode_inputs(request, served, app.max_tensor_elements)
                outputs = await served.runner.infer(inputs, wanted)
                check_given(outputs, wanted)
                return inputs, outputs

            deployment, served, metrics, (inputs, outputs) = await app.run_model(
                request.model_name, project, request.model_version or None, request_id, call
            )
            names = wanted or list(outputs)
            response = service_pb2.ModelInferResponse(
                model_name=deployment.name, model_version=str(served.version), id=request.id
            )
            for name in names:
                array = np.asarray(outputs[name])
                datatype = datatype_of(array)
                response.outputs.add(name=name, datatype=datatype, shape=list(array.shape))
                response.raw_output_contents.append(tensor_to_bytes(array, datatype))
            metrics.request(200, time.perf_counter() - started)
            app.log_answer(deployment, served, request_id, inputs, outputs, started)
            return response

        return await self._guard(context, infer())

    async def _principal(self, context: Any) -> Principal:
        metadata = dict(context.invocation_metadata() or ())
        header = metadata.get("authorization")
        raw = header.encode("latin-1") if isinstance(header, str) else None
        return await self.inference.principal(raw)

    async def _project(self, context: Any) -> str:
        principal = await self._principal(context)
        metadata = dict(context.invocation_metadata() or ())
        project = metadata.get("project") or "default"
        if not principal.can("viewer", project):
            raise HTTPError(403, f"this token may not use project {project[:128]!r}")
        return str(project)

    async def _guard(self, context: Any, step: Any) -> Any:
        """Await ``step``; map an error to the gRPC status of its HTTP answer."""
        try:
            return await step
        except HTTPError as exc:
            await context.abort(STATUS_CODES.get(exc.status, grpc.StatusCode.INTERNAL), exc.message)
        except AimassError as exc:
            code = STATUS_CODES.get(exc.status, grpc.StatusCode.INTERNAL)
            message = exc.message if exc.status < 500 else "internal error"
            await context.abort(code, message)
        except Exception:
            log.exception("gRPC inference request failed")
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")


def decode_inputs(request: Any, served: ServedVersion, max_elements: int) -> dict[str, Array]:
    """The request's tensors as arrays conformed to the served version's signature."""
    if not request.inputs:
        raise ProtocolError("the request needs at least one input")
    raw: Sequence[bytes] = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise ProtocolError(
            f"raw_input_contents holds {len(raw)} tensors for {len(request.inputs)} inputs"
        )
    arrays: dict[str, tuple[Array, str]] = {}
    for index, tensor in enumerate(request.inputs):
        name, datatype, shape = tensor.name[:256], tensor.datatype, list(tensor.shape)
        if datatype not in NUMPY_DTYPES:
            raise ProtocolError(f"input {name!r}: datatype {datatype[:32]!r} is not known")
        if raw:
            array = tensor_from_bytes(name, datatype, shape, raw[index], max_elements)
        else:
            values = getattr(tensor.contents, _CONTENTS[datatype])
            array = tensor_from_values(name, datatype, shape, list(values), max_elements)
        if name in arrays:
            raise ProtocolError(f"input {name!r} is given twice")
        arrays[name] = (array, datatype)
    inputs = conform_inputs(arrays, served.signature)
    check_missing(inputs, served.signature)
    return inputs


class GrpcEndpoint:
    """A ``grpc.aio`` server for ``OipGrpcService`` on ``host:port``; start and stop it."""

    def __init__(self, inference: InferenceApp, host: str, port: int, max_message_bytes: int):
        self.inference = inference
        self.address = f"{host}:{port}"
        self.max_message_bytes = max_message_bytes
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        """Bind and serve (several workers share the port: SO_REUSEPORT is gRPC's default)."""
        limit = self.max_message_bytes
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
            ]
        )
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            OipGrpcService(self.inference), server
        )
        if server.add_insecure_port(self.address) == 0:
            raise OSError(f"could not listen for gRPC on {self.address}")
        await server.start()
        self._server = server
        log.info("aimass OIP gRPC on %s", self.address)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Finish requests in flight (up to ``grace_s``), then close."""
        if self._server is not None:
            await self._server.stop(grace_s)
            self._server = None
