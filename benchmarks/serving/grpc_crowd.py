"""A gRPC load generator for the OIP ``ModelInfer`` call: one grpc.aio channel, N callers.

    taskset -c 1 .venv/bin/python benchmarks/serving/grpc_crowd.py \
        --target 127.0.0.1:8081 --model breast-cancer-onnx --token $TOKEN -c 64 --seconds 8

Each of the ``-c`` coroutines sends ``ModelInfer`` (one FP32 row of 30 in
``raw_input_contents``, as tritonclient sends it) and waits for the answer, in a loop,
for ``--seconds`` after a 1 s warm-up. Prints one ``GRPC_JSON {...}`` line: requests,
req/s, errors by code, p50/p99 ms. ``ghz`` is not installed here; this client is Python,
so it has its own ceiling: ``--echo PORT`` serves a constant answer (no model, no auth)
to measure it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc


def infer_request(model: str, features: int) -> service_pb2.ModelInferRequest:
    """One row of ``features`` FP32 values, binary, as tritonclient sends it."""
    request = service_pb2.ModelInferRequest(model_name=model)
    tensor = request.inputs.add()
    tensor.name = "X"
    tensor.datatype = "FP32"
    tensor.shape.extend([1, features])
    request.raw_input_contents.append(np.linspace(0, 1, features, dtype=np.float32).tobytes())
    return request


async def crowd(args: argparse.Namespace) -> dict[str, object]:
    """Run the callers; their counts and latencies."""
    metadata = (("authorization", f"Bearer {args.token}"),) if args.token else None
    request = infer_request(args.model, args.features)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    async with grpc.aio.insecure_channel(args.target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        await stub.ModelInfer(request, metadata=metadata, timeout=30)
        state = {"measure": False, "stop": False}

        async def caller() -> None:
            perf = time.perf_counter
            while not state["stop"]:
                start = perf()
                try:
                    await stub.ModelInfer(request, metadata=metadata, timeout=30)
                except grpc.aio.AioRpcError as exc:
                    if state["measure"]:
                        errors[exc.code().name] += 1
                    continue
                if state["measure"]:
                    latencies.append(perf() - start)

        tasks = [asyncio.create_task(caller()) for _ in range(args.concurrency)]
        await asyncio.sleep(args.warmup)
        state["measure"] = True
        started = time.perf_counter()
        await asyncio.sleep(args.seconds)
        state["measure"] = False
        elapsed = time.perf_counter() - started
        state["stop"] = True
        await asyncio.gather(*tasks)
    ms = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    return {
        "requests": len(latencies),
        "req_per_s": round(len(latencies) / elapsed, 1),
        "errors": dict(errors),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "concurrency": args.concurrency,
    }


class Echo(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    """A constant ``ModelInfer`` answer: the client's own ceiling, with no model behind it."""

    def __init__(self) -> None:
        self.reply = service_pb2.ModelInferResponse(model_name="echo", model_version="1")
        out = self.reply.outputs.add()
        out.name, out.datatype = "label", "INT64"
        out.shape.extend([1])
        self.reply.raw_output_contents.append(np.zeros(1, np.int64).tobytes())

    async def ModelInfer(self, request: object, context: object) -> object:
        return self.reply


async def echo(port: int) -> None:
    server = grpc.aio.server()
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Echo(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"echo serving on {port}", flush=True)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="127.0.0.1:8081")
    parser.add_argument("--model", default="breast-cancer-onnx")
    parser.add_argument("--token", default="")
    parser.add_argument("-c", "--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--echo", type=int, default=None, help="serve the constant answer here")
    args = parser.parse_args()
    if args.echo is not None:
        asyncio.run(echo(args.echo))
        return
    print("GRPC_JSON " + json.dumps(asyncio.run(crowd(args))), flush=True)


if __name__ == "__main__":
    main()
