"""Two 1-CPU runner processes side by side: rows/s with and without the thread limit.

    .venv/bin/python benchmarks/serving/runner_threads.py [--seconds 10] [--rounds 2]

Starts two runner processes of one ONNX MLP (256 -> 1024 -> 1024 -> 16, batch 64),
as two replicas with ``cpu: 1`` each, and keeps both busy at once (one client thread
each) for ``--seconds``: once sized to the replica's share (``threads=1``, what a
runner gets now) and once with onnxruntime's default (a pool as wide as the node,
as before), alternating for ``--rounds``. Prints rows/s of the pair, the runners'
CPU seconds, and rows per runner CPU-second (the figure a loaded machine moves least),
with the load average beside each.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from aimass.flavors.sandboxed import SandboxedPredictor, runner_folder, shared_runner, start_host

BATCH = 64


def _model(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    sizes = [256, 1024, 1024, 16]
    nodes, inits, last = [], [], "x"
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        inits.append(
            numpy_helper.from_array(rng.standard_normal((a, b)).astype(np.float32), f"w{i}")
        )
        nodes.append(helper.make_node("MatMul", [last, f"w{i}"], [f"m{i}"]))
        last = f"m{i}"
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [last], [f"r{i}"]))
            last = f"r{i}"
    nodes.append(helper.make_node("Identity", [last], ["y"]))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 16])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _runner_pid(socket_path: Path) -> int:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"bwrap" not in words[0] and str(socket_path).encode() in words:
            return int(entry.name)
    raise RuntimeError(f"no runner process for {socket_path}")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _round(path: Path, threads: int | None, seconds: float) -> dict[str, float]:
    predictors: list[SandboxedPredictor] = []
    for _ in range(2):
        with shared_runner(runner_folder(), f"bench-{uuid.uuid4().hex}", threads):
            predictors.append(start_host("onnx", path, False))
    pids = [_runner_pid(p.host.socket_path) for p in predictors]  # type: ignore[union-attr]
    x = np.random.default_rng(1).standard_normal((BATCH, 256)).astype(np.float32)
    for p in predictors:
        p.predict(x)  # warm
    rows = [0, 0]
    stop = time.monotonic() + seconds

    def drive(i: int) -> None:
        while time.monotonic() < stop:
            predictors[i].predict(x)
            rows[i] += BATCH

    cpu0 = sum(_cpu_s(pid) for pid in pids)
    started = time.monotonic()
    workers = [threading.Thread(target=drive, args=(i,)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.monotonic() - started
    cpu = sum(_cpu_s(pid) for pid in pids) - cpu0
    for p in predictors:
        p.close()
    return {"rows_s": sum(rows) / wall, "cpu_s": cpu, "wall_s": wall, "rows": sum(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mlp.onnx"
        _model(path)
        print(f"cores: {os.cpu_count()}; two runners (cpu: 1 each), batch {BATCH}")
        print(
            "| round | pools | rows/s (pair) | runner CPU s / wall s | rows per CPU-s | load 1m |"
        )
        print("| ---: | --- | ---: | ---: | ---: | ---: |")
        totals: dict[str, list[float]] = {"1 thread": [], "default": []}
        for r in range(args.rounds):
            for label, threads in (("1 thread", 1), ("default", None)):
                got = _round(path, threads, args.seconds)
                load = os.getloadavg()[0]
                per_cpu = got["rows"] / got["cpu_s"] if got["cpu_s"] else float("nan")
                totals[label].append(got["rows_s"])
                print(
                    f"| {r + 1} | {label} | {got['rows_s']:,.0f} | "
                    f"{got['cpu_s'] / got['wall_s']:.2f} | {per_cpu:,.0f} | {load:.1f} |"
                )
        mean = {k: sum(v) / len(v) for k, v in totals.items()}
        print(f"\nrows/s, 1 thread / default: {mean['1 thread'] / mean['default']:.2f}x")


if __name__ == "__main__":
    main()
