"""Memory of 20 deployments of a ~100 MB model with 2 workers: in-process vs runner processes.

    .venv/bin/python benchmarks/serving/runner_memory.py [--deployments 20] [--workers 2]
        [--modes in_process process]

Builds one ONNX model of about 100 MB of weights (30→5000→5000→2, float32),
starts ``aimass server --workers N`` (auth and jobs off, SQLite) for each mode,
uploads the model once, creates the deployments with ``resources.runner`` set to
the mode, waits until every worker reports every deployment ready and answers one
request for each, then sums RSS and PSS (``/proc/PID/smaps_rollup``: shared pages
divided between the processes sharing them) over the server's processes and the
runner processes serving its models. Prints a table; RSS does not depend on the
machine's load, so the figures hold on a busy machine too.
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

BIN = Path(sys.executable).parent


def build(path: Path) -> int:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        rng.standard_normal((30, 5000), dtype=np.float32) * 0.01,
        rng.standard_normal((5000, 5000), dtype=np.float32) * 0.01,
        rng.standard_normal((5000, 2), dtype=np.float32) * 0.01,
    ]
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


def upload(base: str, path: Path) -> None:
    boundary = "----aimassmem"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(base + "/api/v1/models/big/versions", data=body, method="POST")
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    with urllib.request.urlopen(request, timeout=300) as answer:
        assert answer.status == 201


def memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes of one process."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def runners(home: Path) -> list[int]:
    """Runner processes (Python, not bubblewrap) serving files of this server's home."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if (
            "bwrap" not in words[0]
            and "aimass.flavors._host" in words
            and any(str(home) in w for w in words)
        ):
            found.append(int(entry.name))
    return found


def measure(mode: str, model: Path, deployments: int, workers: int) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix=f"aimass-mem-{mode}-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIMASS_")}
    env.update(
        AIMASS_HOME=str(home), AIMASS_AUTH="false", AIMASS_JOBS="false",
        AIMASS_DATABASE_URL=f"sqlite:///{home / 'aimass.db'}", OMP_NUM_THREADS="1",
    )  # fmt: skip
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
        upload(base, model)
        for i in range(deployments):
            status, answer = call("POST", base + "/api/v1/deployments", {
                "name": f"big-{i}", "model": "big", "version": 1,
                "resources": {"runner": mode},
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
            for _ in range(workers * 2):
                status, answer = call("POST", f"{base}/v2/models/big-{i}/infer", body)
                assert status == 200, answer
        time.sleep(2)
        server_pids = [proc.pid, *descendants(proc.pid)]
        runner_pids = [p for p in runners(home) if p not in server_pids]
        server = [memory(p) for p in server_pids]
        runner = [memory(p) for p in runner_pids]
        return {
            "server_processes": len(server_pids),
            "runner_processes": len(runner_pids),
            "idle_rss": idle,
            "server_rss": sum(m[0] for m in server),
            "server_pss": sum(m[1] for m in server),
            "runner_rss": sum(m[0] for m in runner),
            "runner_pss": sum(m[1] for m in runner),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployments", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--modes", nargs="+", default=["in_process", "process"])
    args = parser.parse_args()
    gib = 2**30
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "big.onnx"
        weights = build(model)
        print(f"model: {weights / 2**20:.0f} MB of weights; {args.deployments} deployments, "
              f"{args.workers} workers")  # fmt: skip
        print("| runner | server procs | runner procs | RSS server | RSS runners | RSS total | "
              "PSS total | RSS before deploying |")  # fmt: skip
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for mode in args.modes:
            m = measure(mode, model, args.deployments, args.workers)
            print(
                f"| {mode} | {m['server_processes']} | {m['runner_processes']} | "
                f"{m['server_rss'] / gib:.2f} GiB | {m['runner_rss'] / gib:.2f} GiB | "
                f"{(m['server_rss'] + m['runner_rss']) / gib:.2f} GiB | "
                f"{(m['server_pss'] + m['runner_pss']) / gib:.2f} GiB | "
                f"{m['idle_rss'] / gib:.2f} GiB |",
                flush=True,
            )


if __name__ == "__main__":
    main()
