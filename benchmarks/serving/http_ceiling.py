"""The HTTP ceiling of the tiny-model point, and gRPC beside HTTP, in one run.

    .venv/bin/python benchmarks/serving/http_ceiling.py [--quick] [--rounds 3] [--duration 8]

Every server runs pinned to core 0 (one worker, one thread for the model), every load
generator on core 1; all of them are up for the whole run and the rounds alternate
between them, so a busy machine slows them alike (the load average is printed beside
every figure). Rows:

- aimass on uvicorn: ``aimass server --demo`` as shipped (httptools, uvloop, auth on);
- aimass on Granian: the same ASGI app (``aimass.api.server:create_app_from_env``)
  served by Granian (Rust HTTP, ``--runtime-mode st``), same home, same token;
- yardstick on uvicorn / on Granian: ``servers/yardstick.py``, the frameworkless app
  (token check, Prometheus counter + histogram, orjson, ONNX Runtime) on each server;
- uvicorn alone: ``servers/bare.py``, a constant answer with no token, metrics or model:
  the HTTP server's own ceiling on this machine;
- aimass gRPC: ``ModelInfer`` on ``--grpc-port`` of the uvicorn server, driven by
  ``grpc_crowd.py`` (a Python grpc.aio crowd: its own ceiling is the ``grpc echo`` row,
  a constant answer with no model).

HTTP load: ``wrk -t1 -c64`` with ``loadgen.lua`` (one row of 30 FP32 features, the demo's
ONNX LogisticRegression ``breast-cancer-onnx``). Needs ``wrk`` and the ``granian`` and
``grpc`` extras (``pip install -e '.[granian,grpc]'``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: The row of uvicorn answering a constant (``servers/bare.py``): the HTTP server's own ceiling.
BARE = "uvicorn alone (constant answer, no auth, no model)"
ROOT = HERE.parent.parent
BIN = Path(sys.executable).parent
MODEL = "breast-cancer-onnx"
THREADS = {v: "1" for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by ``pid`` and every process under it."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return total


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def get(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=2) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def wait_for(check: object, what: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.25)
    raise SystemExit(f"{what} did not come up within {timeout:.0f} s")


def spawn(args: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> subprocess.Popen:
    full = {**os.environ, **THREADS, **env}
    with log.open("w") as out:
        return subprocess.Popen(
            ["taskset", "-c", "0", *args], env=full, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )


def body_file(work: Path) -> Path:
    from sklearn.datasets import load_breast_cancer

    row = load_breast_cancer().data[:1].astype("float32")[0].tolist()
    path = work / "body.json"
    path.write_text(
        json.dumps({"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": row}]})
    )
    return path


def wrk(url: str, body: Path, token: str, connections: int, seconds: float) -> dict:
    env = {**os.environ, "BENCH_BODY": str(body), "BENCH_TOKEN": token}
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s",
         "--latency", "-s", str(HERE / "loadgen.lua"), url],
        env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    line = next(x for x in out.splitlines() if x.startswith("BENCH_JSON"))
    result = json.loads(line.split(" ", 1)[1])
    ok = result["requests"] - result["errors"]["status"]
    return {
        "requests": ok,
        "req_per_s": ok / (result["duration_us"] / 1e6),
        "p99_ms": result["latency_us"]["p99"] / 1000,
        "errors": result["errors"]["status"] + result["errors"]["timeout"],
    }


def grpc(target: str, token: str, connections: int, seconds: float) -> dict:
    out = subprocess.run(
        ["taskset", "-c", "1", str(BIN / "python"), str(HERE / "grpc_crowd.py"),
         "--target", target, "--model", MODEL, "--token", token,
         "-c", str(connections), "--seconds", f"{seconds:g}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    line = next(x for x in out.splitlines() if x.startswith("GRPC_JSON"))
    result = json.loads(line.split(" ", 1)[1])
    return {
        "requests": result["requests"],
        "req_per_s": result["req_per_s"],
        "p99_ms": result["p99_ms"],
        "errors": sum(result["errors"].values()),
    }


#: Where a profile sample's time goes: the innermost frame whose file matches, in this order.
CATEGORIES = [
    ("model predict (ONNX Runtime)", ("onnxruntime",)),
    ("metrics", ("prometheus_client", "aimass/serving/metrics.py")),
    ("prediction log", ("aimass/monitoring",)),
    ("v2 parse / encode", ("aimass/serving/protocol.py", "aimass/serving/input_checks.py")),
    ("batcher + runner + thread hop", ("aimass/serving/", "concurrent/futures", "threading.py")),
    ("inference app", ("aimass/api/inference/",)),
    ("edge (RequestGuard, routing)", ("aimass/api/middleware.py", "aimass/api/app.py",
                                      "aimass/api/edge.py", "aimass/api/fastpath.py")),
    ("HTTP server (protocol, send, loop)", ("uvicorn/", "httptools", "aimass/api/connections.py",
                                            "granian", "asyncio/", "uvloop")),
]  # fmt: skip


def profile(pid: int, url: str, body: Path, token: str, seconds: float, out: Path) -> dict:
    """py-spy (GIL holders only) on ``pid`` under wrk at c=64: share of samples per category."""
    env = {**os.environ, "BENCH_BODY": str(body), "BENCH_TOKEN": token}
    load = subprocess.Popen(
        ["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{seconds + 3:g}s",
         "-s", str(HERE / "loadgen.lua"), url],
        env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1)
    subprocess.run(
        ["taskset", "-c", "1", str(BIN / "py-spy"), "record", "-p", str(pid), "-d",
         f"{seconds:g}", "-r", "250", "--gil", "--subprocesses", "--nonblocking",
         "-f", "raw", "-o", str(out)],
        capture_output=True, check=True,
    )  # fmt: skip
    load.wait()
    shares: dict[str, int] = {name: 0 for name, _ in CATEGORIES}
    shares["other Python"] = 0
    total = 0
    for line in out.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        total += int(count)
        frames = stack.split(";")[::-1]
        found = next(
            (name for f in frames for name, keys in CATEGORIES if any(k in f for k in keys)),
            "other Python",
        )
        shares[found] += int(count)
    return {name: 100 * n / max(total, 1) for name, n in shares.items()} | {"samples": total}


def say(rnd: int, name: str, row: dict) -> None:
    print(
        f"round {rnd} {name}: {row['req_per_s']:,.0f} req/s, {row['per_cpu_s']:,.0f} per server "
        f"CPU-second, p99 {row['p99_ms']:.2f} ms, errors {row['errors']}, load {row['load']}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 4 s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("-c", "--connections", type=int, default=64)
    parser.add_argument("--port", type=int, default=18280)
    parser.add_argument("--no-grpc", action="store_true")
    parser.add_argument(
        "--profile", type=float, default=0, help="then py-spy both aimass servers this long"
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 4.0
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk (apt-get install -y wrk)")
    work = Path(tempfile.mkdtemp(prefix="http-ceiling."))
    home = work / "home"
    port = args.port
    procs: list[subprocess.Popen] = []
    try:
        env = {"AIMASS_HOME": str(home), "AIMASS_JOBS": "false"}
        uv = [str(BIN / "aimass"), "server", "--demo", "--port", str(port)]
        if not args.no_grpc:
            uv += ["--grpc-port", str(port + 10)]
        procs.append(spawn(uv, env, work / "aimass-uvicorn.log"))
        wait_for(lambda: get(f"http://127.0.0.1:{port}/v2/health/ready") == 200, "aimass")
        token = (home / "token").read_text().strip()
        model_url = f"http://127.0.0.1:{port}/v2/models/{MODEL}/ready"
        wait_for(lambda: get(model_url, token) == 200, "the demo model")
        onnx = next((home / "cache").rglob("model.onnx"))
        granian = [str(BIN / "granian"), "--interface", "asgi", "--host", "127.0.0.1",
                   "--workers", "1", "--runtime-mode", "st", "--runtime-threads", "1",
                   "--loop", "uvloop", "--http", "1", "--log-level", "warning"]  # fmt: skip
        procs.append(
            spawn(
                [
                    *granian,
                    "--port",
                    str(port + 1),
                    "--factory",
                    "aimass.api.server:create_app_from_env",
                ],
                {**env, "AIMASS_PORT": str(port + 1)},
                work / "aimass-granian.log",
            )
        )
        yard_env = {"YARDSTICK_MODEL": str(onnx), "YARDSTICK_TOKEN": token}
        servers = HERE / "servers"
        procs.append(
            spawn(
                [
                    str(BIN / "uvicorn"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port + 2),
                    "--loop",
                    "uvloop",
                    "--http",
                    "httptools",
                    "--no-access-log",
                    "--log-level",
                    "warning",
                    "yardstick:app",
                ],
                yard_env,
                work / "yardstick-uvicorn.log",
                cwd=servers,
            )
        )
        procs.append(
            spawn(
                [*granian, "--port", str(port + 3), "yardstick:app"],
                yard_env,
                work / "yardstick-granian.log",
                cwd=servers,
            )
        )
        procs.append(
            spawn(
                [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--port", str(port + 4),
                 "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                 "--lifespan", "off", "--log-level", "warning", "bare:app"],
                {},
                work / "bare-uvicorn.log",
                cwd=servers,
            )
        )  # fmt: skip
        if not args.no_grpc:
            procs.append(
                spawn(
                    [str(BIN / "python"), str(HERE / "grpc_crowd.py"), "--echo", str(port + 11)],
                    {},
                    work / "grpc-echo.log",
                )
            )
        http_rows = {
            "aimass on uvicorn (as shipped)": port,
            "aimass on Granian (same app)": port + 1,
            "yardstick on uvicorn": port + 2,
            "yardstick on Granian": port + 3,
            BARE: port + 4,
        }
        for name, p in http_rows.items():
            url = f"http://127.0.0.1:{p}/v2/models/{MODEL}/ready"
            if p in (port + 2, port + 3, port + 4):
                url = f"http://127.0.0.1:{p}/"
                wait_for(lambda u=url: get(u, token) != 0, name)
            else:
                wait_for(lambda u=url: get(u, token) == 200, name)
        body = body_file(work)
        pids = {name: procs[i].pid for i, name in enumerate(http_rows)}
        if not args.no_grpc:
            pids["aimass gRPC ModelInfer (grpc.aio crowd)"] = procs[0].pid
            pids["grpc echo (the crowd's own ceiling)"] = procs[5].pid
        for p in http_rows.values():  # warm-up
            wrk(f"http://127.0.0.1:{p}/v2/models/{MODEL}/infer", body, token, 16, 2)
        results: dict[str, list[dict]] = {}
        print(f"# c={args.connections}, {args.rounds} round(s) of {args.duration:g} s")
        for rnd in range(1, args.rounds + 1):
            for name, p in http_rows.items():
                url = f"http://127.0.0.1:{p}/v2/models/{MODEL}/infer"
                before, cpu = load(), cpu_seconds(pids[name])
                row = wrk(url, body, token, args.connections, args.duration)
                row["load"] = before
                row["per_cpu_s"] = row["requests"] / max(cpu_seconds(pids[name]) - cpu, 1e-9)
                results.setdefault(name, []).append(row)
                say(rnd, name, row)
            if not args.no_grpc:
                for name, target in (
                    ("aimass gRPC ModelInfer (grpc.aio crowd)", f"127.0.0.1:{port + 10}"),
                    ("grpc echo (the crowd's own ceiling)", f"127.0.0.1:{port + 11}"),
                ):
                    before, cpu = load(), cpu_seconds(pids[name])
                    row = grpc(target, token, args.connections, args.duration)
                    row["load"] = before
                    row["per_cpu_s"] = row["requests"] / max(cpu_seconds(pids[name]) - cpu, 1e-9)
                    results.setdefault(name, []).append(row)
                    say(rnd, name, row)
        base = statistics.median(r["req_per_s"] for r in results["aimass on uvicorn (as shipped)"])
        print()
        print(
            "| server | req/s (median) | vs aimass on uvicorn | requests per server CPU-second "
            "(median) | p99 ms (median) | rounds (req/s) | errors | load avg at start |"
        )
        print("| --- | ---: | ---: | ---: | ---: | --- | ---: | --- |")
        for name, rows in results.items():
            rate = statistics.median(r["req_per_s"] for r in rows)
            p99 = statistics.median(r["p99_ms"] for r in rows)
            each = ", ".join(f"{r['req_per_s']:,.0f}" for r in rows)
            per_cpu = statistics.median(r["per_cpu_s"] for r in rows)
            errors = sum(r["errors"] for r in rows)
            print(
                f"| {name} | {rate:,.0f} | {rate / base:.2f}x | {per_cpu:,.0f} | {p99:.2f} | "
                f"{each} | {errors} | {rows[0]['load']} |"
            )
        medians = {
            n: statistics.median(r["per_cpu_s"] for r in rows) for n, rows in results.items()
        }
        names = list(medians)
        for server, (mine, theirs) in (("uvicorn", (0, 2)), ("Granian", (1, 3))):
            if len(names) > theirs:  # the issue-18 figure: aimass as a share of the yardstick
                share = 100 * medians[names[mine]] / medians[names[theirs]]
                print(f"aimass / yardstick on {server}, per server CPU-second: {share:.0f} %")
        if BARE in results:
            bare = statistics.median(r["req_per_s"] for r in results[BARE])
            print(f"aimass on uvicorn / uvicorn alone, req/s: {100 * base / bare:.0f} %")
        if args.profile:
            print()
            print(f"py-spy --gil, {args.profile:g} s each under wrk -c64 (share of samples, %):")
            found = {
                name: profile(
                    procs[i].pid, f"http://127.0.0.1:{port + i}/v2/models/{MODEL}/infer", body,
                    token, args.profile, work / f"profile-{i}.txt",
                )
                for i, name in enumerate(list(http_rows)[:2])
            }  # fmt: skip
            print("| where | " + " | ".join(found) + " |")
            print("| --- |" + " ---: |" * len(found))
            for category in next(iter(found.values())):
                cells = " | ".join(
                    f"{v[category]:.0f}" if category == "samples" else f"{v[category]:.1f}"
                    for v in found.values()
                )
                print(f"| {category} | {cells} |")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if os.environ.get("KEEP"):
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
