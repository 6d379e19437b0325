"""CPU per tiny /v2 infer request through the HTTP protocol and the app, no sockets: aimass
against the frameworkless yardstick on the same uvicorn protocol code, in one process.

    .venv/bin/python benchmarks/serving/protocol_cpu.py [-c 64] [--requests 6400] [--rounds 6]

Each of ``-c`` in-memory connections feeds the server's protocol object (aimass's
``GuardedHttpToolsProtocol`` with its fast path, the yardstick's plain uvicorn
``HttpToolsProtocol``) the bytes of one keep-alive request, and the next one as soon as
the answer is written, on uvloop: the closed loop of ``wrk -c N``, minus the kernel (no
sockets, no syscalls, no polling). What is left is the Python a request costs each
server: httptools' callbacks, the ASGI cycle or the fast path, the app, the batcher.
Rounds alternate between the two in the same process; the figure is CPU time per request
(the process's, runner threads included), so a busy machine slows both alike. The
demo's ``breast-cancer-onnx`` model, one row of 30, auth on (a bearer token), metrics on.
``http_ceiling.py`` measures the same point over real sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODEL = "breast-cancer-onnx"


class MemoryTransport(asyncio.Transport):
    """A transport that hands what the server writes to ``on_write``."""

    def __init__(self, on_write: Any) -> None:
        super().__init__()
        self._on_write = on_write
        self._closing = False

    def write(self, data: Any) -> None:
        self._on_write(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(
            name, default
        )

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: Any) -> None:
        pass


class Client:
    """One keep-alive connection: sends the request again as soon as an answer is whole."""

    def __init__(self, make_protocol: Any, request: bytes, counts: dict[int, int]) -> None:
        self.request = request
        self.counts = counts
        self.left = 0
        self.done: asyncio.Future[None] | None = None
        self.buffer = b""
        self.loop = asyncio.get_running_loop()
        self.protocol = make_protocol()
        self.protocol.connection_made(MemoryTransport(self._written))

    def _written(self, data: bytes) -> None:
        self.buffer += data
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        if len(rest) < length:
            return
        status = int(head[9:12])
        self.counts[status] = self.counts.get(status, 0) + 1
        self.buffer = rest[length:]
        self.left -= 1
        if self.left > 0:
            self.loop.call_soon(self.protocol.data_received, self.request)
        elif self.done is not None and not self.done.done():
            self.done.set_result(None)

    async def run(self, count: int) -> None:
        self.left = count
        self.done = self.loop.create_future()
        self.protocol.data_received(self.request)
        await self.done


def request_bytes(token: str, body: bytes) -> bytes:
    return (
        f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def start_lifespan(app: Any) -> tuple[asyncio.Event, asyncio.Task[Any]]:
    started, stop = asyncio.Event(), asyncio.Event()
    messages = [{"type": "lifespan.startup"}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await stop.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    task = asyncio.create_task(app({"type": "lifespan"}, receive, send))
    await started.wait()
    return stop, task


async def measure(args: argparse.Namespace, onnx_path: Path) -> None:
    import uvicorn
    from sklearn.datasets import load_breast_cancer
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    from aimass.api.app import create_app
    from aimass.api.connections import GuardedHttpToolsProtocol
    from aimass.api.server import prepare, server_config, tune_gc
    from aimass.config import Settings
    from aimass.demo import seed_demo
    from aimass.platform import Platform

    settings = Settings()
    prepare(settings)
    for _ in seed_demo(settings):
        pass
    token = settings.token_file.read_text().strip()
    app = create_app(Platform.from_settings(settings))
    stop, life = await start_lifespan(app)
    tune_gc()  # as ``aimass server`` does once started
    loop = asyncio.get_running_loop()

    os.environ["YARDSTICK_MODEL"] = str(onnx_path)
    os.environ["YARDSTICK_TOKEN"] = token
    sys.path.insert(0, str(HERE / "servers"))
    import yardstick

    row = load_breast_cancer().data[:1].astype("float32")[0].tolist()
    counts: dict[int, int] = {}
    aimass_config = server_config(settings, app, lifespan="off")
    aimass_config.load()
    yard_config = uvicorn.Config(
        yardstick.app, lifespan="off", access_log=False, loop="uvloop", http="httptools"
    )
    yard_config.load()
    state = ServerState()
    name = await input_name(app, token)
    body = json.dumps(
        {"inputs": [{"name": name, "shape": [1, 30], "datatype": "FP32", "data": row}]}
    ).encode()
    request = request_bytes(token, body)

    def make(config: Any, cls: Any) -> Any:
        return lambda: cls(config=config, server_state=state, app_state={}, _loop=loop)

    servers = {
        "aimass (fast path)": make(aimass_config, GuardedHttpToolsProtocol),
        "yardstick": make(yard_config, HttpToolsProtocol),
    }
    if args.only:
        servers = {k: v for k, v in servers.items() if k.startswith(args.only)}
    clients = {
        label: [Client(factory, request, counts) for _ in range(args.connections)]
        for label, factory in servers.items()
    }
    each = max(1, args.requests // args.connections)

    async def round_of(label: str) -> float:
        cpu = time.process_time()
        await asyncio.gather(*(c.run(each) for c in clients[label]))
        return (time.process_time() - cpu) / (each * args.connections) * 1e6

    for label in servers:  # warm-up (the model loads, JIT caches fill)
        await wait_ok(label, round_of, counts)
    figures: dict[str, list[float]] = {label: [] for label in servers}
    counts.clear()
    for _ in range(args.rounds):
        for label in servers:
            figures[label].append(await round_of(label))
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"c={args.connections}, {each * args.connections} requests a round, load {load}")
    for label, values in figures.items():
        print(
            f"{label:20s} us CPU per request: median {statistics.median(values):6.1f}  "
            f"rounds " + ", ".join(f"{v:.1f}" for v in values)
        )
    if len(figures) == 2:
        ratios = [
            y / a for a, y in zip(figures["aimass (fast path)"], figures["yardstick"], strict=True)
        ]
        print(
            "aimass / yardstick, requests per CPU-second, per round: "
            + ", ".join(f"{r:.2f}" for r in ratios)
            + f"  (median {statistics.median(ratios):.2f})"
        )
    print(f"answers by status: {counts}")
    print("threads by CPU seconds: " + ", ".join(f"{n} {t:.2f}" for n, t in thread_times()))
    fast = aimass_config.fast_path
    print(f"fast path took {fast.taken if fast else 0} requests")
    deployment = app.inference.repository.get(MODEL, "default")
    for version in deployment.versions if deployment else []:
        stats = getattr(version.runner, "stats", None)
        if stats is not None:
            print(
                f"aimass's runner: {stats.requests} requests in {stats.batches} batches, "
                f"{stats.inline} calls inline"
            )
    stop.set()
    await life


def thread_times() -> list[tuple[str, float]]:
    """Each thread of this process and its CPU seconds so far, busiest first."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = []
    for task in Path("/proc/self/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found.append((f"{name}/{task.name}", (int(fields[11]) + int(fields[12])) / ticks))
    return sorted(found, key=lambda item: -item[1])[:8]


async def input_name(app: Any, token: str) -> str:
    """The model's input name, from its v2 metadata (once it is loaded)."""
    answer: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        else:
            answer["body"] = message.get("body", b"")

    path = f"/v2/models/{MODEL}"
    headers = [(b"host", b"127.0.0.1:8080"), (b"authorization", f"Bearer {token}".encode())]
    for _ in range(240):
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8080),
        }  # fmt: skip
        await app(scope, receive, send)
        if answer.get("status") == 200:
            return str(json.loads(answer["body"])["inputs"][0]["name"])
        await asyncio.sleep(0.5)
    raise RuntimeError("the demo model did not load")


async def wait_ok(label: str, round_of: Any, counts: dict[int, int]) -> None:
    for _ in range(3):
        counts.clear()
        await round_of(label)
        if set(counts) == {200}:
            return
    raise RuntimeError(f"{label} answered {counts}, not only 200s")


def export_onnx(folder: Path) -> Path:
    """The demo's model as an ONNX file for the yardstick (a LogisticRegression pipeline)."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer()
    x = data.data.astype("float32")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, data.target)
    path = folder / "yardstick.onnx"
    path.write_bytes(to_onnx(model, x[:1], options={"zipmap": False}).SerializeToString())
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--connections", type=int, default=64)
    parser.add_argument("--requests", type=int, default=6400, help="per round and server")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument(
        "--only", choices=["aimass", "yardstick"], help="measure one server (for a profiler)"
    )
    args = parser.parse_args()
    os.environ.setdefault("AIMASS_JOBS", "false")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    import uvloop

    with tempfile.TemporaryDirectory(prefix="protocol-cpu.") as home:
        os.environ["AIMASS_HOME"] = home
        onnx_path = export_onnx(Path(home))
        uvloop.run(measure(args, onnx_path))


if __name__ == "__main__":
    main()
