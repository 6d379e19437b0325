"""Memory of 20 deployments of a ~100 MB model with 2 workers: mapped, heap, runner processes.

    .venv/bin/python benchmarks/serving/runner_memory.py [--deployments 20] [--workers 2]
        [--modes mapped heap process] [--same-model] [--quick]
    .venv/bin/python benchmarks/serving/runner_memory.py --latency

Builds ONNX models of about 100 MB of weights each (30→5000→5000→2, float32; one
per deployment, differing in their last layer, so no two share a file: pass
``--same-model`` for one model behind every deployment), starts ``aimass server
--workers N`` (auth and jobs off, SQLite) for each mode, uploads the models,
creates the deployments, waits until every worker reports every deployment ready
and answers requests for each on every worker, then sums RSS, PSS
(``/proc/PID/smaps_rollup``: shared pages divided between the processes sharing
them) and anonymous (private heap) memory over the server's processes and the
runner processes serving its models, and the machine's MemAvailable drop since
before the server started. Modes: ``mapped`` (in-process, weights memory-mapped
from one file per node: the default), ``heap`` (in-process with
``AIMASS_ONNX_SHARED_WEIGHTS=false``: each worker its own copy, as before),
``process`` (``resources.runner: process``: one runner process per model and node).
RSS does not depend on the machine's load; MemAvailable moves with what other
processes do, so read it as a rough figure on a shared machine. ``--latency`` only
times one model's calls in three forms (the file on the heap, the mapped form with
its saved prepacked weights, the mapped form with prepacking off).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from procs import descendants, runner_pids

BIN = Path(sys.executable).parent


def weights(hidden: int = 5000) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        rng.standard_normal((30, hidden), dtype=np.float32) * 0.01,
        rng.standard_normal((hidden, hidden), dtype=np.float32) * 0.01,
        rng.standard_normal((hidden, 2), dtype=np.float32) * 0.01,
    ]


def build(path: Path, weights: list[np.ndarray], seed: int) -> int:
    """Save the model with its last layer drawn from ``seed`` (distinct bytes per seed)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed + 1)
    weights = [*weights[:2], rng.standard_normal(weights[2].shape, dtype=np.float32) * 0.01]
    inits = [numpy_helper.from_array(w, f"w{i}") for i, w in enumerate(weights)]
    nodes = [
        helper.make_node("MatMul", ["input", "w0"], ["h0"]),
        helper.make_node("Relu", ["h0"], ["r0"]),
        helper.make_node("MatMul", ["r0", "w1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["r1"]),
        helper.make_node("MatMul", ["r1", "w2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "big",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 30])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(path))
    return sum(w.nbytes for w in weights)


def call(method: str, url: str, body: object | None = None) -> tuple[int, object]:
    """One request; a dropped connection (a worker restarted on a busy machine) is retried."""
    data = None if body is None else json.dumps(body).encode()
    for attempt in range(10):
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()[:300]
        except OSError:
            if attempt == 9:
                raise
            time.sleep(2)
    raise AssertionError("unreachable")


def upload(base: str, path: Path, name: str) -> None:
    boundary = "----aimassmem"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        base + f"/api/v1/models/{name}/versions", data=body, method="POST"
    )
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    with urllib.request.urlopen(request, timeout=300) as answer:
        assert answer.status == 201


def memory(pid: int) -> tuple[int, int, int]:
    """(RSS, PSS, anonymous) in bytes of one process."""
    found = {"Rss": 0, "Pss": 0, "Anonymous": 0}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key = line.split(":")[0]
            if key in found:
                found[key] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return found["Rss"], found["Pss"], found["Anonymous"]


def available() -> int:
    """The machine's MemAvailable in bytes."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def measure(
    mode: str, w: list[np.ndarray], deployments: int, workers: int, same: bool
) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix=f"aimass-mem-{mode}-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIMASS_")}
    env.update(
        AIMASS_HOME=str(home), AIMASS_AUTH="false", AIMASS_JOBS="false",
        AIMASS_DATABASE_URL=f"sqlite:///{home / 'aimass.db'}", OMP_NUM_THREADS="1",
        AIMASS_ONNX_SHARED_WEIGHTS="false" if mode == "heap" else "true",
    )  # fmt: skip
    runner = "process" if mode == "process" else "in_process"
    before = available()
    argv = [str(BIN / "aimass"), "server", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", str(workers), "--no-demo"]
    log = open(home / "server.log", "wb")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    log.close()
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if urllib.request.urlopen(base + "/v2/health/live", timeout=5).status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((home / "server.log").read_text()[-2000:])
            time.sleep(0.2)
        idle = sum(memory(p)[0] for p in [proc.pid, *descendants(proc.pid)])
        models = 1 if same else deployments
        for i in range(models):
            path = home / f"big-{i}.onnx"
            build(path, w, i)
            upload(base, path, f"big-{i}")
            path.unlink()
        for i in range(deployments):
            status, answer = call("POST", base + "/api/v1/deployments", {
                "name": f"big-{i}", "model": f"big-{0 if same else i}", "version": 1,
                "resources": {"runner": runner},
            })  # fmt: skip
            assert status == 201, answer
        deadline = time.monotonic() + 900
        while True:
            status, listed = call("GET", base + "/api/v1/deployments")
            items = listed if isinstance(listed, list) else listed.get("items", [])  # type: ignore[union-attr]
            ready = sum(
                1
                for d in items
                if len(d.get("replica_status", [])) == workers
                and all(r["state"] == "ready" for r in d["replica_status"])
            )
            if ready == deployments:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {ready} deployments ready")
            time.sleep(1)
        body = {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32",
                            "data": [0.1] * 30}]}  # fmt: skip
        for i in range(deployments):
            # New connections: the kernel spreads them over the workers (each touches its pages).
            for _ in range(workers * 3):
                status, answer = call("POST", f"{base}/v2/models/big-{i}/infer", body)
                assert status == 200, answer
        time.sleep(2)
        server_pids = [proc.pid, *descendants(proc.pid)]
        runners = [p for p in runner_pids(home) if p not in server_pids]
        server = [memory(p) for p in server_pids]
        runner = [memory(p) for p in runners]
        return {
            "server_processes": len(server_pids),
            "runner_processes": len(runners),
            "idle_rss": idle,
            "server_rss": sum(m[0] for m in server),
            "server_pss": sum(m[1] for m in server),
            "runner_rss": sum(m[0] for m in runner),
            "runner_pss": sum(m[1] for m in runner),
            "anonymous": sum(m[2] for m in server + runner),
            "available_drop": before - available(),
        }
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        log_tail = (home / "server.log").read_text(errors="replace")[-1500:]
        if "Traceback" in log_tail or "died" in log_tail.lower():
            print(f"server log ({mode}):\n{log_tail}", file=sys.stderr)
        shutil.rmtree(home, ignore_errors=True)


def latency(w: list[np.ndarray], rounds: int = 5) -> None:
    """CPU ms per call of one model: on the heap, mapped with its prepacked weights, and
    mapped with prepacking off; one thread, the three alternating, median of the rounds."""
    import onnxruntime as ort

    from aimass.flavors._onnx_mapped import mapped_copy

    def session(path: Path, prepack: bool = True) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        if not prepack:
            options.add_session_config_entry("session.disable_prepacking", "1")
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "big.onnx"
        build(source, w, 0)
        mapped = mapped_copy(source)
        assert mapped is not None
        sessions = {
            "heap (the file, prepacked)": session(source),
            "mapped (saved prepacked form)": session(mapped),
            "mapped, prepacking off": session(mapped, prepack=False),
        }
        times: dict[str, dict[int, list[float]]] = {k: {1: [], 64: []} for k in sessions}
        for _ in range(rounds):
            for batch, calls in ((1, 10), (64, 4)):
                feed = {"input": np.random.rand(batch, 30).astype(np.float32)}
                for name, s in sessions.items():
                    s.run(None, feed)
                    start = time.thread_time()
                    for _ in range(calls):
                        s.run(None, feed)
                    times[name][batch].append((time.thread_time() - start) / calls * 1000)
    print(f"CPU ms per call, one thread, median of {rounds} alternating rounds "
          f"(load average {os.getloadavg()[0]:.1f}):")  # fmt: skip
    print("| form | batch 1 | batch 64 |\n| --- | ---: | ---: |")
    for name, by_batch in times.items():
        print(f"| {name} | {np.median(by_batch[1]):.1f} | {np.median(by_batch[64]):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployments", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--modes", nargs="+", default=["mapped", "heap", "process"],
                        choices=["mapped", "heap", "process"])  # fmt: skip
    parser.add_argument("--same-model", action="store_true",
                        help="one model behind every deployment (default: one each)")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="4 deployments of ~25 MB models, mapped and heap")  # fmt: skip
    parser.add_argument("--latency", action="store_true",
                        help="only time one model's calls in its three forms")  # fmt: skip
    args = parser.parse_args()
    if args.latency:
        latency(weights())
        return
    hidden = 5000
    if args.quick:
        hidden, args.deployments = 2500, 4
        args.modes = [m for m in args.modes if m != "process"]
    w = weights(hidden)
    gib = 2**30
    print(f"model: {sum(a.nbytes for a in w) / 2**20:.0f} MB of weights; {args.deployments} "
          f"deployments of {'one model' if args.same_model else 'a model each'}, "
          f"{args.workers} workers; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| mode | server procs | runner procs | RSS server | RSS runners | RSS total | "
          "PSS total | anonymous | MemAvailable drop | RSS before deploying |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mode in args.modes:
        m = measure(mode, w, args.deployments, args.workers, args.same_model)
        print(
            f"| {mode} | {m['server_processes']} | {m['runner_processes']} | "
            f"{m['server_rss'] / gib:.2f} GiB | {m['runner_rss'] / gib:.2f} GiB | "
            f"{(m['server_rss'] + m['runner_rss']) / gib:.2f} GiB | "
            f"{(m['server_pss'] + m['runner_pss']) / gib:.2f} GiB | "
            f"{m['anonymous'] / gib:.2f} GiB | {m['available_drop'] / gib:.2f} GiB | "
            f"{m['idle_rss'] / gib:.2f} GiB |",
            flush=True,
        )
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
