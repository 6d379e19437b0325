"""The serving benchmark: aimass against MLflow, BentoML and a bare FastAPI app.

Run through run.sh (which installs everything and trains the models first):

    bash benchmarks/serving/run.sh [--duration 15] [--quick]

For each model x server: start the server with one worker process pinned to
core 0 (``taskset -c 0``, one math thread), wait until it is up, check that it
answers the in-process prediction for 3 rows (a server that answers wrong is
reported and not timed), warm up, then run ``wrk -t1 -c{1,16,64}`` pinned to
core 1 with a one-row POST (loadgen.lua) and record requests/s, p50, p99 and
errors; stop the server. Also: the in-process predict ceiling per model (core
0), and the time from process start to the first correct answer. Writes
RESULTS.md beside this file and prints the same.

Runs from .venv-peers (needs numpy only itself); aimass runs from the
repository's .venv.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata as md
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PEERS_BIN = Path(sys.executable).parent
AIMASS_BIN = ROOT / ".venv" / "bin"
MODELS = ("lr", "small_mlp", "heavy_mlp")
MODEL_TITLES = {
    "lr": "LogisticRegression (breast_cancer, 30 features)",
    "small_mlp": "Small MLP (PyTorch, 30→256→256→2)",
    "heavy_mlp": "Compute-heavy MLP (PyTorch, 30→2048→2048→2048→2)",
}
SERVERS = ("aimass", "aimass-nobatch", "mlflow", "bentoml-batch", "bentoml", "fastapi")
SERVER_TITLES = {
    "aimass": "aimass (batching 64 / 2 ms)",
    "aimass-nobatch": "aimass (no batching)",
    "mlflow": "mlflow models serve",
    "bentoml-batch": "BentoML (adaptive batching)",
    "bentoml": "BentoML (no batching)",
    "fastapi": "bare FastAPI + uvicorn",
}
SERVER_CPU = "0"
LOAD_CPU = "1"
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "TORCH_NUM_THREADS": "1",
}


# ----------------------------------------------------------------------------- HTTP


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """One request; returns (status, body), with status 0 when nothing answered."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, b""


def post_json(
    url: str, payload: bytes, token: str | None = None, timeout: float = 10.0
) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return http("POST", url, payload, headers, timeout)


def multipart(fields: dict[str, tuple[str | None, bytes, str]]) -> tuple[bytes, str]:
    """Encode multipart/form-data: name -> (filename or None, bytes, content type)."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, (filename, data, ctype) in fields.items():
        disp = f'form-data; name="{name}"'
        if filename:
            disp += f'; filename="{filename}"'
        parts.append(
            f"--{boundary}\r\nContent-Disposition: {disp}\r\nContent-Type: {ctype}\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(interval)
    return False


# ----------------------------------------------------------------------------- servers


class ServerError(Exception):
    """A server did not start, deploy or answer."""


@dataclass
class Server:
    """One running server process (its process group), and how to call it."""

    kind: str
    model: str
    work: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    token: str | None = None
    infer_path: str = ""
    started_at: float = 0.0
    home: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base + self.infer_path

    @property
    def body_prefix(self) -> str:
        return {"aimass-nobatch": "aimass", "bentoml-batch": "bentoml"}.get(self.kind, self.kind)

    def body(self, tag: str) -> Path:
        return self.work / "bodies" / f"{self.body_prefix}.{tag}.json"

    def spawn(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        logs = self.work / "logs"
        logs.mkdir(exist_ok=True)
        self.log_path = logs / f"{self.kind}-{self.model}-{self.port}.log"
        # No AIMASS_* from the caller's shell (a database URL, auth off) leaks into a server.
        clean = {k: v for k, v in os.environ.items() if not k.startswith("AIMASS_")}
        full_env = {**clean, **ONE_THREAD, **env}
        # mlflow models serve starts `uvicorn` by name: the peers' bin comes first.
        full_env["PATH"] = f"{PEERS_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
        log = open(self.log_path, "wb")  # noqa: SIM115 - kept open for the child
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *argv],
            env=full_env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_http(self, path: str, timeout: float, interval: float = 0.01) -> None:
        def up() -> bool:
            if not self.alive():
                raise ServerError(
                    f"{self.kind} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            return http("GET", self.base + path, timeout=2)[0] == 200

        if not wait_until(up, timeout, interval):
            raise ServerError(f"{self.kind} not up after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the server's process group, then SIGKILL what is left of it."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group is ours alone
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.proc = None
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)

    # -- per kind ---------------------------------------------------------------

    def start(self) -> None:
        """Start the server and bring it to the point where the model answers."""
        if self.kind.startswith("aimass"):
            self._start_aimass()
        elif self.kind == "mlflow":
            self.infer_path = "/invocations"
            self.spawn(
                [
                    str(PEERS_BIN / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    str(self.work / "mlflow" / self.model),
                    "--env-manager",
                    "local",
                    "-w",
                    "1",
                    "-p",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                ],
                {"MLFLOW_TRACKING_URI": f"file://{self.work / 'mlruns'}"},
                HERE,
            )
            self.wait_http("/ping", 120, 0.02)
        elif self.kind.startswith("bentoml"):
            self.infer_path = "/predict"
            self.spawn(
                [
                    str(PEERS_BIN / "bentoml"),
                    "serve",
                    "servers.bentoml_service:Predictor",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                {
                    "BENTOML_HOME": str(self.work / "bentoml"),
                    "BENTOML_DO_NOT_TRACK": "true",
                    "BENCH_MODEL": self.model,
                    "BENCH_BATCHING": "1" if self.kind == "bentoml-batch" else "0",
                },
                HERE,
            )
            self.wait_http("/readyz", 120, 0.02)
        elif self.kind == "fastapi":
            self.infer_path = "/predict"
            self.spawn(
                [
                    str(PEERS_BIN / "uvicorn"),
                    "servers.fastapi_app:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    "1",
                ],
                {"BENCH_MODEL": self.model, "BENCH_WORK": str(self.work)},
                HERE,
            )
            self.wait_http("/health", 120)
        else:
            raise ValueError(self.kind)

    def _start_aimass(self) -> None:
        self.home = Path(
            tempfile.mkdtemp(prefix=f"aimass-bench-{self.model}-", dir=self.work / "homes")
        )
        self.spawn(
            [
                str(AIMASS_BIN / "aimass"),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
                "--home",
                str(self.home),
                "--no-demo",
            ],
            {"AIMASS_HOME": str(self.home)},
            ROOT,
        )
        self.wait_http("/v2/health/live", 120, 0.005)
        token_file = self.home / "token"
        if not wait_until(token_file.is_file, 10):
            raise ServerError(f"aimass wrote no token to {token_file}:\n{self.log_tail()}")
        self.token = token_file.read_text().strip()
        auth = {"Authorization": f"Bearer {self.token}"}
        path = self.work / "aimass" / ("lr.onnx" if self.model == "lr" else f"{self.model}.pt")
        body, ctype = multipart(
            {"file": (path.name, path.read_bytes(), "application/octet-stream")}
        )
        status, raw = http(
            "POST",
            f"{self.base}/api/v1/models/{self.model}/versions",
            body,
            {**auth, "Content-Type": ctype},
            timeout=60,
        )
        if status != 201:
            raise ServerError(f"aimass upload answered {status}: {raw[:500]!r}")
        version = json.loads(raw)["version"]
        batching = (
            {"max_batch_size": 1, "max_delay_ms": 0}
            if self.kind == "aimass-nobatch"
            else {"max_batch_size": 64, "max_delay_ms": 2}
        )
        deploy = json.dumps(
            {"model": self.model, "version": version, "batching": batching}
        ).encode()
        status, raw = http(
            "POST",
            f"{self.base}/api/v1/deployments",
            deploy,
            {**auth, "Content-Type": "application/json"},
        )
        if status != 201:
            raise ServerError(f"aimass deploy answered {status}: {raw[:500]!r}")
        state: dict[str, Any] = {}

        def ready() -> bool:
            code, answer = http("GET", f"{self.base}/api/v1/deployments/{self.model}", headers=auth)
            if code == 200:
                state.update(json.loads(answer))
                if state.get("state") == "failed":
                    raise ServerError(f"aimass deployment failed: {state.get('replica_status')}")
            return state.get("state") == "ready"

        if not wait_until(ready, 120, 0.005):
            raise ServerError(f"aimass deployment not ready: {state}\n{self.log_tail()}")
        self.infer_path = f"/v2/models/{self.model}/infer"

    def metric_sums(self) -> dict[str, float] | None:
        """For aimass: this model's counters from /metrics (requests, batch sizes, queue time)."""
        code, raw = http(
            "GET", self.base + "/metrics", headers={"Authorization": f"Bearer {self.token}"}
        )
        if code != 200:
            return None
        sums = dict.fromkeys(
            ("requests", "batch_sum", "batch_count", "queue_sum", "queue_count"), 0.0
        )
        names = {
            "aimass_inference_requests_total": "requests",
            "aimass_inference_batch_size_sum": "batch_sum",
            "aimass_inference_batch_size_count": "batch_count",
            "aimass_inference_queue_seconds_sum": "queue_sum",
            "aimass_inference_queue_seconds_count": "queue_count",
        }
        for line in raw.decode(errors="replace").splitlines():
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name in names and f'"{self.model}"' in line:
                with contextlib.suppress(ValueError):
                    sums[names[name]] += float(line.rsplit(" ", 1)[1])
        return sums


def metrics_delta(before: dict | None, after: dict | None) -> dict | None:
    """What aimass's /metrics saw during one wrk run: requests, mean batch, mean queue wait."""
    if before is None or after is None:
        return None
    d = {k: after[k] - before[k] for k in after}
    return {
        "requests": int(d["requests"]),
        "mean_batch": round(d["batch_sum"] / d["batch_count"], 2) if d["batch_count"] else None,
        "mean_queue_ms": round(1000 * d["queue_sum"] / d["queue_count"], 3)
        if d["queue_count"]
        else None,
    }


def parse_answer(kind: str, model: str, raw: bytes) -> np.ndarray:
    """Each server's answer as an array: labels for lr, logits for the MLPs."""
    answer = json.loads(raw)
    if kind.startswith("aimass"):
        outputs = {o["name"]: o for o in answer["outputs"]}
        want = "label" if model == "lr" else "logits"
        out = outputs.get(want) or answer["outputs"][0]
        return np.asarray(out["data"]).reshape(out["shape"])
    if kind == "mlflow":
        return np.asarray(answer["predictions"] if isinstance(answer, dict) else answer)
    if kind.startswith("bentoml"):
        return np.asarray(answer)
    return np.asarray(answer["predictions"])


def check_answer(server: Server, expected: dict) -> str | None:
    """None when the server's prediction for the check rows matches in-process; else why not."""
    payload = server.body("check").read_bytes()
    status, raw = post_json(server.url, payload, server.token, timeout=60)
    if status != 200:
        return f"answered {status}: {raw[:300]!r}"
    try:
        got = parse_answer(server.kind, server.model, raw)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        return f"unreadable answer ({exc}): {raw[:300]!r}"
    want = np.asarray(expected["output"])
    if expected["kind"] == "labels":
        ok = got.size == want.size and np.array_equal(got.reshape(-1).astype(np.int64), want)
    else:
        ok = got.shape == want.shape and np.allclose(got, want, rtol=1e-3, atol=1e-3)
    return None if ok else f"wrong answer: got {got.tolist()}, expected {want.tolist()}"


# ----------------------------------------------------------------------------- wrk


def run_wrk(server: Server, connections: int, seconds: float, latency: bool = True) -> dict:
    argv = [
        "taskset",
        "-c",
        LOAD_CPU,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(HERE / "loadgen.lua"),
    ]
    if latency:
        argv.append("--latency")
    argv.append(server.url)
    env = {**os.environ, "BENCH_BODY": str(server.body("load")), "BENCH_TOKEN": server.token or ""}
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            raw = json.loads(line[len("BENCH_JSON ") :])
            break
    else:
        raise ServerError(
            f"wrk printed no result ({' '.join(argv)}): "
            f"{(out.stdout + out.stderr).strip()[-500:]!r}"
        )
    errors = raw["errors"]
    secs = raw["duration_us"] / 1e6
    socket_errors = errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
    ok = raw["requests"] - errors["status"]
    lat = raw["latency_us"]
    return {
        "connections": connections,
        "seconds": round(secs, 3),
        "requests": raw["requests"],
        "ok_rps": round(ok / secs, 1),
        "non2xx": errors["status"],
        "socket_errors": socket_errors,
        "errors_detail": errors,
        "p50_ms": lat["p50"] / 1000,
        "p90_ms": lat["p90"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "max_ms": lat["max"] / 1000,
        "mean_ms": round(lat["mean"] / 1000, 3),
    }


# ----------------------------------------------------------------------------- phases


def bench_server(kind: str, model: str, args: argparse.Namespace, expected: dict) -> dict:
    server = Server(kind, model, args.work)
    result: dict[str, Any] = {"server": kind, "model": model, "runs": []}
    try:
        server.start()
        problem = check_answer(server, expected[model])
        result["start_to_answer_s"] = round(time.perf_counter() - server.started_at, 3)
        if problem:
            result["status"] = f"check failed, not timed: {problem}"
            return result
        run_wrk(server, 16, args.warmup, latency=False)  # warm-up, discarded
        for c in args.concurrency:
            time.sleep(0.5)
            before = server.metric_sums() if server.token else None
            run = run_wrk(server, c, args.duration)
            if server.token:
                run["aimass_metrics"] = metrics_delta(before, server.metric_sums())
            result["runs"].append(run)
            print(
                f"    {kind:15s} c={c:<3d} {run['ok_rps']:>9.1f} req/s  "
                f"p50 {run['p50_ms']:8.2f} ms  p99 {run['p99_ms']:8.2f} ms  "
                f"errors {run['non2xx']}+{run['socket_errors']}",
                flush=True,
            )
        if not server.alive():
            result["status"] = f"died during the run:\n{server.log_tail()}"
            return result
        problem = check_answer(server, expected[model])
        result["status"] = "ok" if problem is None else f"answers wrong after the load: {problem}"
    except ServerError as exc:
        result["status"] = f"failed: {exc}"
    except subprocess.TimeoutExpired as exc:
        result["status"] = f"failed: timed out ({exc})"
    finally:
        server.stop()
    return result


def start_time(kind: str, args: argparse.Namespace, expected: dict) -> dict:
    """Process start → model deployed → first correct answer, for the LogisticRegression."""
    times, problems = [], []
    for _ in range(args.start_reps):
        server = Server(kind, "lr", args.work)
        try:
            server.start()
            payload = server.body("check").read_bytes()

            # Count the first 200, not just health: poll the predict route itself.
            def answers(server: Server = server, payload: bytes = payload) -> bool:
                return post_json(server.url, payload, server.token)[0] == 200

            if not wait_until(answers, 60, 0.005):
                raise ServerError("never answered 200")
            times.append(time.perf_counter() - server.started_at)
            problem = check_answer(server, expected["lr"])
            if problem:
                problems.append(problem)
        except ServerError as exc:
            problems.append(str(exc).splitlines()[0])
        finally:
            server.stop()
        time.sleep(0.5)
    return {
        "server": kind,
        "times_s": [round(t, 3) for t in times],
        "median_s": round(statistics.median(times), 3) if times else None,
        "problems": problems,
    }


def ceiling(model: str, impl: str, seconds: float, work: Path) -> dict:
    python = PEERS_BIN / "python" if impl == "native" else AIMASS_BIN / "python"
    argv = [
        "taskset",
        "-c",
        SERVER_CPU,
        str(python),
        str(HERE / "ceiling.py"),
        "--model",
        model,
        "--impl",
        impl,
        "--seconds",
        str(seconds),
        "--work",
        str(work),
    ]
    out = subprocess.run(
        argv, env={**os.environ, **ONE_THREAD}, capture_output=True, text=True, timeout=300
    )
    if out.returncode != 0:
        return {"model": model, "impl": impl, "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- report


def machine() -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "memory": mem,
        "loadavg": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "python": platform.python_version(),
    }


def versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in (
        "mlflow",
        "bentoml",
        "fastapi",
        "uvicorn",
        "starlette",
        "pydantic",
        "uvloop",
        "httptools",
        "scikit-learn",
        "torch",
        "onnx",
        "skl2onnx",
        "numpy",
        "pandas",
    ):
        with contextlib.suppress(md.PackageNotFoundError):
            found[f"{name} (peers)"] = md.version(name)
    script = (
        "import importlib.metadata as m, json; out = {}\n"
        "for n in ['aimass', 'uvicorn', 'starlette', 'orjson', 'uvloop', 'httptools', "
        "'onnxruntime', 'torch', 'scikit-learn', 'numpy']:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    with contextlib.suppress(Exception):
        out = subprocess.run(
            [str(AIMASS_BIN / "python"), "-c", script], capture_output=True, text=True, timeout=60
        )
        for name, version in json.loads(out.stdout).items():
            found[f"{name} (aimass venv)"] = version
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        found["aimass commit"] = commit + (" (+ uncommitted changes in src/)" if dirty else "")
    with contextlib.suppress(Exception):
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
        found["wrk"] = (out.stdout + out.stderr).split()[1]
    return found


def find(results: list[dict], model: str, server: str, c: int) -> dict | None:
    for r in results:
        if r["model"] == model and r["server"] == server and r.get("status") == "ok":
            for run in r["runs"]:
                if run["connections"] == c:
                    return run
    return None


def ratio_line(
    label: str, num: float | None, den: float | None, target: float | None, unit: str = "×"
) -> str:
    if num is None or den is None or den == 0:
        return f"- {label}: n/a (a run is missing or failed)"
    value = num / den
    shown = f"{value * 100:.0f} %" if unit == "%" else f"{value:.1f}×"
    if target is None:
        return f"- {label}: {shown}"
    met = value >= target
    want = f"{target * 100:.0f} %" if unit == "%" else f"{target:g}×"
    return f"- {label}: **{shown}** (target ≥ {want}: {'met' if met else 'NOT met'})"


def limit_line(label: str, value: float | None, limit: float, unit: str) -> str:
    if value is None:
        return f"- {label}: n/a (a run is missing or failed)"
    return (
        f"- {label}: **{value:.2f} {unit}** (target < {limit:g} {unit}: "
        f"{'met' if value < limit else 'NOT met'})"
    )


def report(
    args: argparse.Namespace,
    info: dict,
    results: list[dict],
    ceilings: list[dict],
    starts: list[dict],
    started: dt.datetime,
    wall: float,
) -> str:
    lines = ["# Serving benchmark results", ""]
    quick = " — QUICK smoke run, not a measurement" if args.quick else ""
    lines += [
        f"Produced by `{args.command_line}` on {started:%Y-%m-%d %H:%M} UTC "
        f"(took {wall / 60:.1f} min){quick}.",
        "",
    ]
    m = info["machine"]
    conc = ",".join(map(str, args.concurrency))
    conc = f"{{{conc}}}" if len(args.concurrency) > 1 else conc
    lines += [
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, nproc {m['nproc']}, memory {m['memory']}",
        f"- kernel {m['kernel']}, Python {m['python']}",
        f"- load average when the benchmark started: {m['loadavg']}",
        f"- servers pinned to core {SERVER_CPU} (`taskset -c {SERVER_CPU}`, one worker "
        f"process, OMP/MKL/OpenBLAS/torch threads 1); wrk pinned to core {LOAD_CPU} "
        f"(`wrk -t1 -c{conc} -d{args.duration}s "
        f"--latency`), after a {args.warmup} s warm-up at c=16; one row per request",
        "",
    ]
    lines += ["## Versions", "", "| package | version |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in info["versions"].items()]
    lines += [
        "",
        "What each server runs: aimass serves the LogisticRegression as ONNX "
        "(skl2onnx, ONNX Runtime) and the MLPs as TorchScript; MLflow, BentoML and FastAPI "
        "serve the scikit-learn estimator and the eager torch module (MLflow 3's default "
        "torch format, `pt2`). Every server keeps its default logging.",
        "",
    ]

    lines += [
        "## In-process predict ceiling (core 0, one thread, no HTTP)",
        "",
        "| model | what | batch 1: calls/s | batch 1: ms | batch 64: rows/s | batch 64: ms |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for c in ceilings:
        what = (
            "scikit-learn / eager torch"
            if c["impl"] == "native"
            else "aimass's flavor (ONNX Runtime / TorchScript)"
        )
        if "error" in c:
            lines.append(f"| {c['model']} | {what} | failed: {c['error']} | | | |")
            continue
        lines.append(
            f"| {c['model']} | {what} | {c['batch1_calls_per_s']:,.0f} | "
            f"{c['batch1_ms']:.3f} | {c['batch64_rows_per_s']:,.0f} | "
            f"{c['batch64_ms']:.3f} |"
        )
    lines.append("")

    for model in args.models:
        lines += [
            f"## {MODEL_TITLES[model]}",
            "",
            "| server | c | req/s (2xx) | p50 ms | p99 ms | errors (non-2xx + socket) |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        notes = []
        for r in results:
            if r["model"] != model:
                continue
            title = SERVER_TITLES[r["server"]]
            for run in r["runs"]:
                lines.append(
                    f"| {title} | {run['connections']} | {run['ok_rps']:,.0f} | "
                    f"{run['p50_ms']:.2f} | {run['p99_ms']:.2f} | "
                    f"{run['non2xx']} + {run['socket_errors']} |"
                )
            if r.get("status") != "ok":
                first = r.get("status", "?").splitlines()[0][:300]
                lines.append(f"| {title} | – | – | – | – | {first.split(':')[0]} |")
                notes.append(f"- {title}: {first}")
            for run in r["runs"]:
                seen = run.get("aimass_metrics")
                if seen is None and r["server"].startswith("aimass"):
                    notes.append(f"- {title}, c={run['connections']}: /metrics unreadable")
                elif seen is not None:
                    notes.append(
                        f"- {title}, c={run['connections']}: /metrics counted "
                        f"{seen['requests']:,} requests (wrk sent {run['requests']:,}), "
                        f"mean batch {seen['mean_batch']} requests, "
                        f"mean queue wait {seen['mean_queue_ms']} ms"
                    )
        lines += [""] + notes + ([""] if notes else [])

    lines += [
        "## Start to first answer (LogisticRegression)",
        "",
        "Process start → (aimass: upload, deploy, ready) → first correct 200 from the "
        "predict route, polled every 5 ms.",
        "",
        "| server | median s | runs (s) | problems |",
        "| --- | ---: | --- | --- |",
    ]
    for s in starts:
        med = f"{s['median_s']:.2f}" if s["median_s"] is not None else "–"
        lines.append(
            f"| {SERVER_TITLES[s['server']]} | {med} | "
            f"{', '.join(f'{t:.2f}' for t in s['times_s'])} | "
            f"{'; '.join(s['problems'])[:200]} |"
        )
    lines.append("")

    # Targets from the issue.
    rps = lambda model, server, c: (find(results, model, server, c) or {}).get("ok_rps")  # noqa: E731
    lat = lambda model, server, c, k: (find(results, model, server, c) or {}).get(k)  # noqa: E731
    ceil = {(c["model"], c["impl"]): c for c in ceilings if "error" not in c}
    # The heavy MLP's ceiling: the better of eager torch and aimass's TorchScript at batch 64.
    heavy_ceiling = (
        max(
            (c.get("batch64_rows_per_s") or 0 for (m, _), c in ceil.items() if m == "heavy_mlp"),
            default=None,
        )
        or None
    )
    aimass_start = next((s["median_s"] for s in starts if s["server"] == "aimass"), None)
    lines += ["## Targets", ""]
    if "lr" in args.models:
        if 64 in args.concurrency:
            lines += [
                ratio_line(
                    "LogisticRegression c=64: aimass vs `mlflow models serve`",
                    rps("lr", "aimass", 64),
                    rps("lr", "mlflow", 64),
                    10,
                ),
                ratio_line(
                    "LogisticRegression c=64: aimass vs bare FastAPI",
                    rps("lr", "aimass", 64),
                    rps("lr", "fastapi", 64),
                    4,
                ),
                ratio_line(
                    "LogisticRegression c=64: aimass vs BentoML (adaptive batching)",
                    rps("lr", "aimass", 64),
                    rps("lr", "bentoml-batch", 64),
                    None,
                ),
                limit_line(
                    "LogisticRegression c=64: aimass p99",
                    lat("lr", "aimass", 64, "p99_ms"),
                    20,
                    "ms",
                ),
            ]
        if 1 in args.concurrency:
            lines.append(
                limit_line(
                    "LogisticRegression c=1: aimass p50",
                    lat("lr", "aimass", 1, "p50_ms"),
                    0.5,
                    "ms",
                )
            )
    if "heavy_mlp" in args.models and 64 in args.concurrency:
        lines += [
            ratio_line(
                "Heavy MLP c=64: aimass (batching) share of the in-process ceiling "
                f"({heavy_ceiling:,.0f} rows/s at batch 64)"
                if heavy_ceiling
                else "Heavy MLP c=64: aimass (batching) share of the in-process ceiling",
                rps("heavy_mlp", "aimass", 64),
                heavy_ceiling,
                0.7,
                "%",
            ),
            ratio_line(
                "Heavy MLP c=64: aimass batching vs aimass without batching",
                rps("heavy_mlp", "aimass", 64),
                rps("heavy_mlp", "aimass-nobatch", 64),
                5,
            ),
            ratio_line(
                "Heavy MLP c=64: aimass batching vs BentoML adaptive batching",
                rps("heavy_mlp", "aimass", 64),
                rps("heavy_mlp", "bentoml-batch", 64),
                5,
            ),
        ]
    lines.append(limit_line("Start to first ready answer, aimass (median)", aimass_start, 2, "s"))
    mlflow_start = next((s["median_s"] for s in starts if s["server"] == "mlflow"), None)
    if mlflow_start is not None:
        lines.append(f"- Start to first answer, MLflow (median): {mlflow_start:.2f} s")
    if "lr" in args.models and 64 in args.concurrency:
        lr_ceiling = ceil.get(("lr", "native"), {}).get("batch1_calls_per_s")
        lr_aimass = rps("lr", "aimass", 64)
        if lr_ceiling and lr_aimass:
            lines.append(
                f"- LogisticRegression c=64: aimass answers {lr_aimass:,.0f} req/s = "
                f"{lr_aimass / lr_ceiling:.2f}× the scikit-learn batch-1 predict rate "
                f"({lr_ceiling:,.0f} calls/s)"
            )
    top = max(args.concurrency)
    lines += [
        "",
        f"Where the core's time goes for aimass at c={top} (batching): core time per "
        "request = 1 / (req/s); the model's share = its in-process time per row at "
        "batch 64 through aimass's flavor; the rest is HTTP, parsing, auth, routing, "
        "batching, serializing and metrics.",
        "",
        "| model | req/s | µs of core per request | model µs per row (batch 64) | "
        "rest µs per request |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for model in args.models:
        r = rps(model, "aimass", top)
        c = ceil.get((model, "aimass"))
        if r and c:
            per_req = 1e6 / r
            per_row = c["batch64_ms"] * 1000 / 64
            lines.append(
                f"| {model} | {r:,.0f} | {per_req:.0f} | {per_row:.1f} | {per_req - per_row:.0f} |"
            )
    lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description="aimass serving benchmark")
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per server")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 3 s runs at c=64 only, 1 s warm-up, one start-time run",
    )
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--start-reps", type=int, default=3)
    parser.add_argument("--work", type=Path, default=HERE / "work")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--command-line", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup, args.concurrency, args.start_reps = 3, 1, "64", 1
    args.models = [m for m in args.models.split(",") if m]
    args.servers = [s for s in args.servers.split(",") if s]
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.command_line = args.command_line or " ".join(
        shlex.quote(a) for a in ["python", "bench.py", *sys.argv[1:]]
    )
    for name in args.models:
        if name not in MODELS:
            parser.error(f"unknown model {name}; choose from {', '.join(MODELS)}")
    for name in args.servers:
        if name not in SERVERS:
            parser.error(f"unknown server {name}; choose from {', '.join(SERVERS)}")
    if (os.cpu_count() or 1) < 2:
        sys.exit("the benchmark needs 2 cores: the server on core 0, wrk on core 1")
    expected_file = args.work / "expected.json"
    if not expected_file.exists():
        sys.exit(f"{expected_file} is missing: run models.py first (run.sh does)")
    expected = json.loads(expected_file.read_text())
    (args.work / "homes").mkdir(parents=True, exist_ok=True)

    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    info = {"machine": machine(), "versions": versions()}

    print("== in-process ceiling", flush=True)
    ceilings = []
    for model in args.models:
        for impl in ("native", "aimass"):
            c = ceiling(model, impl, 0.5 if args.quick else 2.0, args.work)
            ceilings.append(c)
            print(f"  {json.dumps(c)}", flush=True)

    results = []
    for model in args.models:
        print(f"== {model}", flush=True)
        for kind in args.servers:
            r = bench_server(kind, model, args, expected)
            if r.get("status") != "ok":
                print(f"    {kind:15s} {r.get('status', '?').splitlines()[0][:200]}", flush=True)
            results.append(r)

    print("== start to first answer", flush=True)
    starts = []
    for kind in ("aimass", "mlflow", "bentoml", "fastapi"):
        if kind in args.servers or (kind == "aimass" and "aimass-nobatch" in args.servers):
            s = start_time(kind, args, expected)
            starts.append(s)
            print(f"  {json.dumps(s)}", flush=True)

    wall = time.perf_counter() - t0
    text = report(args, info, results, ceilings, starts, started, wall)
    args.output.write_text(text)
    (args.work / "results.json").write_text(
        json.dumps(
            {"info": info, "ceilings": ceilings, "results": results, "starts": starts}, indent=1
        )
    )
    print()
    print(text)
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
