"""The heavy MLP under load: served rows/s against its in-process batch-64 rows/s.

    .venv/bin/python benchmarks/serving/heavy_batching.py [--seconds 15] [--clients 64]
        [--rounds N] [--layouts own shared] [--baseline-src DIR]

Runs from the repository's .venv only (torch, no peers): builds the compute-heavy
MLP of bench.py (30→2048→2048→2048→2, TorchScript with its signature; random
weights, which cost the same as trained ones), measures the in-process ceiling
on core 0 (aimass's flavor, one thread, batch 64, best of three windows), then
serves it with one worker pinned to core 0 (batching 64 / 2 ms) and loads it
with ``wrk -t1 -c{clients}`` pinned to core 1, one-row v2 requests. The model runs
in the node's runner process (TorchScript is code-bearing): with ``--layouts own``
(the default) the server runs with ``AIMASS_RUNNER_OWN_CORES=true``, so the runner
takes a core the server does not use (core 1, beside wrk); with ``shared`` it stays on
core 0 with the server (as older code does); ``--layouts own shared`` alternates both.
Prints the served rows/s, its share of the ceiling, the mean batch and what closed
the batches from /metrics, the runner's cores, and each side's CPU time per answered
row. With ``--baseline-src`` (a copy of another commit's ``src``, e.g. ``git archive BASE src
| tar -x -C /tmp/base``) the same is run against that code too, in the same run, so
the ratio holds on a loaded machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from procs import descendants, runner_pids

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BIN = Path(sys.executable).parent
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "TORCH_NUM_THREADS": "1",
}
SIGNATURE = {
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 30]}],
    "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 2]}],
}


def build(folder: Path) -> Path:
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers: list[nn.Module] = []
    width = 30
    for h in (2048, 2048, 2048):
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, 2))
    path = folder / "heavy_mlp.pt"
    torch.jit.save(
        torch.jit.script(nn.Sequential(*layers).eval()),
        str(path),
        _extra_files={"aimass_signature.json": json.dumps(SIGNATURE)},
    )
    return path


CEILING = """
import json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
from pathlib import Path
from aimass.flavors.torchscript import TorchScriptFlavor
predict = TorchScriptFlavor().load(Path(sys.argv[1]), trusted=False).predict
compute = TorchScriptFlavor().load_in_process(Path(sys.argv[1]), trusted=False).predict
x = np.random.default_rng(0).standard_normal((64, 30)).astype(np.float32)
for _ in range(3):
    predict(x)
    compute(x)
best = 0.0
for _ in range(3):
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < float(sys.argv[2]):
        predict(x)
        calls += 1
    best = max(best, 64 * calls / (time.perf_counter() - start))
# The model alone, per CPU second of this thread: what a row costs the core, whatever the load.
calls, cpu = 0, time.thread_time()
while time.thread_time() - cpu < float(sys.argv[2]):
    compute(x)
    calls += 1
print(json.dumps({"rows_per_s": best, "rows_per_cpu_s": 64 * calls / (time.thread_time() - cpu)}))
"""


def ceiling(path: Path, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        ["taskset", "-c", "0", str(BIN / "python"), "-c", CEILING, str(path), str(seconds / 3)],
        env={**os.environ, **ONE_THREAD},
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the ceiling run failed: {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each process (children not included)."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / tick
    return found


def wait_live(base: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    """Return once the server answers /v2/health/live; its log's tail if it exits or hangs."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if urllib.request.urlopen(base + "/v2/health/live", timeout=2).status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(log.read_text()[-2000:])
        time.sleep(0.05)


def http(method: str, url: str, token: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if body is not None and not body.startswith(b"--"):
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def metric_sums(base: str, token: str) -> dict[str, float]:
    sums: dict[str, float] = {}
    for line in http("GET", base + "/metrics", token)[1].decode().splitlines():
        if line.startswith("#") or '"heavy_mlp"' not in line:
            continue
        name = line.split("{", 1)[0]
        if name in ("aimass_inference_batch_size_sum", "aimass_inference_batch_size_count"):
            sums[name] = sums.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        elif name == "aimass_inference_batches_closed_total":
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            sums[f"closed:{reason}"] = float(line.rsplit(" ", 1)[1])
    return sums


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_and_load(
    label: str, src: Path | None, model: Path, clients: int, seconds: float, own_cores: bool
) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="aimass-heavy-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIMASS_")}
    env.update(ONE_THREAD, AIMASS_HOME=str(home), AIMASS_JOBS="false")
    env["AIMASS_RUNNER_OWN_CORES"] = "true" if own_cores else "false"
    if src is not None:
        env["PYTHONPATH"] = str(src)
    log = open(home / "server.log", "wb")  # noqa: SIM115 - the child keeps it
    argv = [str(BIN / "aimass"), "server", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", "1", "--home", str(home), "--no-demo"]
    proc = subprocess.Popen(
        ["taskset", "-c", "0", *argv], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    log.close()
    try:
        wait_live(base, proc, home / "server.log")
        token = (home / "token").read_text().strip()
        boundary = "----aimassbench"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{model.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + model.read_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        request = urllib.request.Request(
            base + "/api/v1/models/heavy_mlp/versions", data=body, method="POST"
        )
        request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
        with urllib.request.urlopen(request, timeout=60) as answer:
            version = json.loads(answer.read())["version"]
        deploy = {
            "model": "heavy_mlp",
            "version": version,
            "batching": {"max_batch_size": 64, "max_delay_ms": 2},
        }
        status, raw = http("POST", base + "/api/v1/deployments", token, json.dumps(deploy).encode())
        if status != 201:
            raise RuntimeError(f"deploy answered {status}: {raw[:300]!r}")
        deadline = time.monotonic() + 120
        while http("GET", base + "/v2/models/heavy_mlp/ready", token)[0] != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the deployment did not become ready")
            time.sleep(0.05)
        row = np.random.default_rng(1).standard_normal(30).round(4).tolist()
        load_body = home / "load.json"
        load_body.write_text(
            json.dumps({"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32",
                                    "data": row}]})
        )  # fmt: skip
        url = base + "/v2/models/heavy_mlp/infer"

        def wrk(c: int, secs: float) -> dict[str, Any]:
            out = subprocess.run(
                ["taskset", "-c", "1", "wrk", "-t1", f"-c{c}", f"-d{max(1, round(secs))}s",
                 "--timeout", "10s", "-s", str(HERE / "loadgen.lua"), url],
                env={**os.environ, "BENCH_BODY": str(load_body), "BENCH_TOKEN": token},
                capture_output=True, text=True, timeout=secs + 60, check=True,
            )  # fmt: skip
            line = next(x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON "))
            return dict(json.loads(line[len("BENCH_JSON ") :]))

        wrk(clients, 3)  # warm-up, discarded
        runners = runner_pids(home)
        servers = [p for p in [proc.pid, *descendants(proc.pid)] if p not in runners]
        before = metric_sums(base, token)
        cpu_before = cpu_seconds(servers + runners)
        run = wrk(clients, seconds)
        cpu_after = cpu_seconds(servers + runners)
        after = metric_sums(base, token)
        delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
        errors = sum(run["errors"].values())
        batches = delta.get("aimass_inference_batch_size_count", 0.0)
        rows = run["requests"] - errors
        cores: list[int] = []
        for pid in runners:
            with contextlib.suppress(OSError):
                cores += sorted(os.sched_getaffinity(pid))

        def cpu(pids: list[int]) -> float:
            return sum(cpu_after.get(p, 0.0) - cpu_before.get(p, 0.0) for p in pids)

        return {
            "label": label,
            "rows": rows,
            "runner_cores": cores,
            # CPU µs per answered row: the server's processes (HTTP, batching) and the runner's.
            "server_cpu_us_per_row": 1e6 * cpu(servers) / rows if rows else None,
            "runner_cpu_us_per_row": 1e6 * cpu(runners) / rows if rows else None,
            "rows_per_s": rows / (run["duration_us"] / 1e6),
            "errors": errors,
            "p50_ms": run["latency_us"]["p50"] / 1000,
            "p99_ms": run["latency_us"]["p99"] / 1000,
            "mean_batch": delta.get("aimass_inference_batch_size_sum", 0.0) / batches
            if batches
            else None,
            "closed": {k[7:]: int(v) for k, v in delta.items() if k.startswith("closed:") and v},
        }
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the codes this often")
    parser.add_argument("--baseline-src", type=Path, help="another commit's src/ to compare")
    parser.add_argument(
        "--layouts", nargs="+", choices=("own", "shared"), default=["own"],
        help="own: the runner on a core of its own (AIMASS_RUNNER_OWN_CORES, core 1 beside "
        "wrk); shared: on core 0 with the server; several alternate in each round",
    )  # fmt: skip
    args = parser.parse_args()
    codes: list[tuple[str, Path | None, bool]] = [
        (f"this checkout, runner {layout}", None, layout == "own") for layout in args.layouts
    ]
    if args.baseline_src is not None:
        if not (args.baseline_src / "aimass" / "__init__.py").is_file():
            parser.error(f"{args.baseline_src} holds no aimass package (a copy of a src/)")
        codes.append(("baseline", args.baseline_src.resolve(), False))
    with tempfile.TemporaryDirectory() as tmp:
        model = build(Path(tmp))
        load = os.getloadavg()
        runs = []
        for _ in range(args.rounds):
            for label, src, own_cores in codes:
                # The ceiling right before each served run: on a shared machine it moves.
                ceil = ceiling(model, 3.0)
                run = serve_and_load(label, src, model, args.clients, args.seconds, own_cores)
                run["ceiling"] = ceil["rows_per_s"]
                run["model_us_per_row"] = 1e6 / ceil["rows_per_cpu_s"]
                runs.append(run)
                print(json.dumps(run), flush=True)
        print(f"load average (1 min) before / after: {load[0]:.2f} / {os.getloadavg()[0]:.2f} "
              f"({os.cpu_count()} cores)")  # fmt: skip
        print("| code | c | rows/s | in-process batch-64 rows/s just before | share | "
              "p50 ms | p99 ms | mean batch | closed by |")  # fmt: skip
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for r in runs:
            mean = f"{r['mean_batch']:.1f}" if r["mean_batch"] else "?"
            closed = ", ".join(f"{k} {v}" for k, v in sorted(r["closed"].items())) or "-"
            print(
                f"| {r['label']} | {args.clients} | {r['rows_per_s']:,.0f} | {r['ceiling']:,.0f} | "
                f"{100 * r['rows_per_s'] / r['ceiling']:.0f} % | {r['p50_ms']:.1f} | "
                f"{r['p99_ms']:.1f} | {mean} | {closed} |"
                + (f" errors {r['errors']}" if r["errors"] else "")
            )
        # Where core 0's time goes per answered row, in CPU time (which the machine's load
        # inflates far less than wall time): the model alone in-process at batch 64, the
        # runner process (the model at the served batch size, plus its end of the hop) and
        # the server (HTTP, JSON, batching, its end of the hop). With core 0 saturated, the
        # share a quiet machine reaches is about model / (runner + server).
        print()
        # With the runner on a core of its own, server and runner work side by side (one
        # half of the clients' batch computes while the server answers the other half): the
        # bound is then the busier side, model / max(runner, server).
        print("| code | runner cores | model alone µs/row (batch 64) | runner µs/row | "
              "server µs/row | CPU share, one core (model / (runner + server)) | "
              "CPU share, own cores (model / max(runner, server)) |")  # fmt: skip
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        for r in runs:
            runner, server = r["runner_cpu_us_per_row"], r["server_cpu_us_per_row"]
            if runner is None or server is None:
                continue
            model = r["model_us_per_row"]
            print(
                f"| {r['label']} | {','.join(map(str, r['runner_cores'])) or '?'} | "
                f"{model:.0f} | {runner:.0f} | {server:.0f} | "
                f"{100 * model / (runner + server):.0f} % | "
                f"{100 * model / max(runner, server):.0f} % |"
            )


if __name__ == "__main__":
    main()
