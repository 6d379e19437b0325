"""What the sandboxed model host costs: the same model sandboxed vs its ONNX in the server.

    .venv/bin/python benchmarks/serving/sandboxed.py [--seconds 5] [--clients 1 16]

Builds, at run time, a LogisticRegression (served as a trusted pickle, in the
sandboxed host, and as ONNX, in-process) and an MLP (TorchScript, sandboxed, and
ONNX, in-process). Measures (1) predictor calls with no HTTP, one thread, batch 1
and 64; (2) a real aimass server (SQLite, one process) under N concurrent
clients sending one row a request: requests/s, p50 and p99; (3) how long a host
takes to start and how much memory it holds. Prints a Markdown table. The load
generator is Python threads on the same machine, so compare rows with each
other, not with RESULTS.md (which uses wrk on its own core).
"""

from __future__ import annotations

import argparse
import json
import pickle
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

ROWS = 64


def build(folder: Path) -> dict[str, tuple[str, Path, bool]]:
    """The four model files: name -> (flavor, path, trusted)."""
    import torch
    from skl2onnx import to_onnx
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    x, y = load_breast_cancer(return_X_y=True)
    x = x.astype(np.float32)
    lr = LogisticRegression(max_iter=2000).fit(x, y)
    (folder / "lr.pkl").write_bytes(pickle.dumps(lr))
    (folder / "lr.onnx").write_bytes(
        to_onnx(lr, x[:1], options={"zipmap": False}).SerializeToString()
    )
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(30, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2), torch.nn.Softmax(dim=1)
    ).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(mlp).save(str(folder / "mlp.pt"))
        torch.onnx.export(
            mlp,
            (torch.zeros(2, 30),),
            str(folder / "mlp.onnx"),
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "n"}, "output": {0: "n"}},
            dynamo=False,
        )
    return {
        "lr-pickle": ("pickle", folder / "lr.pkl", True),
        "lr-onnx": ("onnx", folder / "lr.onnx", False),
        "mlp-torchscript": ("torchscript", folder / "mlp.pt", False),
        "mlp-onnx": ("onnx", folder / "mlp.onnx", False),
    }


def predictor_calls(flavor: str, path: Path, trusted: bool, seconds: float) -> dict[str, Any]:
    """Calls/s and p50/p99 ms of predict at batch 1 and 64, in this thread."""
    from aimass.plugins import default_registries

    started = time.perf_counter()
    predictor = default_registries().flavors.get(flavor).load(path, trusted)
    load_s = time.perf_counter() - started
    rss = None
    host = getattr(predictor, "host", None)
    if host is not None and host.pid is not None:
        tree = psutil.Process(host.pid)
        rss = sum(p.memory_info().rss for p in [tree, *tree.children(recursive=True)]) / 2**20
    out: dict[str, Any] = {"load_s": load_s, "host_rss_mib": rss}
    rng = np.random.default_rng(0)
    for batch in (1, ROWS):
        x = rng.normal(size=(batch, 30)).astype(np.float32)
        times = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t = time.perf_counter()
            predictor.predict(x)
            times.append(time.perf_counter() - t)
        out[f"b{batch}"] = _summary(times, seconds)
    close = getattr(predictor, "close", None)
    if close is not None:
        close()
    return out


def _summary(times: list[float], seconds: float) -> dict[str, float]:
    ms = np.asarray(times) * 1000
    return {
        "per_s": len(times) / seconds,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def http_load(url: str, token: str, name: str, clients: int, seconds: float) -> dict[str, float]:
    """N threads posting one row a request for ``seconds``: requests/s, p50, p99."""
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as c:
        declared = c.get(f"{url}/v2/models/{name}").json()["inputs"]
    # A TorchScript file without a signature declares no inputs: any name, FP32.
    first = declared[0] if declared else {"name": "input", "datatype": "FP32"}
    data = [0.1] * 30
    body = {
        "inputs": [
            {"name": first["name"], "shape": [1, 30], "datatype": first["datatype"], "data": data}
        ]
    }
    times: list[float] = []
    errors = 0
    lock = threading.Lock()
    end = time.perf_counter() + seconds

    def worker() -> None:
        nonlocal errors
        mine: list[float] = []
        bad = 0
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
            while time.perf_counter() < end:
                t = time.perf_counter()
                r = c.post(f"{url}/v2/models/{name}/infer", json=body)
                mine.append(time.perf_counter() - t)
                bad += r.status_code != 200
        with lock:
            times.extend(mine)
            errors += bad

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {**_summary(times, seconds), "errors": errors}


def serve(folder: Path, files: dict[str, tuple[str, Path, bool]]) -> Any:
    """Start a real server, upload and deploy every file; yields (url, token)."""
    import uvicorn

    from aimass.api.app import create_app
    from aimass.api.server import prepare, server_config
    from aimass.config import Settings
    from aimass.platform import Platform

    port = _free_port()
    settings = Settings(home=folder / "home", port=port, tune_gc=False, jobs=False)
    prepare(settings)
    server = uvicorn.Server(
        server_config(settings, create_app(Platform.from_settings(settings)), host="127.0.0.1")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    token = settings.token_file.read_text().strip()
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c:
        for name, (_flavor, path, trusted) in files.items():
            with path.open("rb") as src:
                r = c.post(
                    f"/api/v1/models/{name}/versions",
                    files={"file": (path.name, src)},
                    data={"meta": json.dumps({"trusted": trusted})},
                )
            r.raise_for_status()
            c.post("/api/v1/deployments", json={"name": name, "model": name, "version": 1})
        for name in files:
            deadline = time.monotonic() + 120
            while c.get(f"/api/v1/deployments/{name}").json()["state"] != "ready":
                assert time.monotonic() < deadline, f"{name} did not become ready"
                time.sleep(0.1)
    return server, thread, url, token


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main() -> None:
    """Run both measurements and print Markdown tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = build(folder)
        print("## Predictor calls, no HTTP, one thread\n")
        print(
            "| model | where | load s | host RSS MiB | batch 1: calls/s | p50 ms | p99 ms "
            "| batch 64: calls/s | p50 ms | p99 ms |"
        )
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, (flavor, path, trusted) in files.items():
            r = predictor_calls(flavor, path, trusted, args.seconds)
            where = "in-process" if flavor == "onnx" else "sandboxed host"
            rss = "" if r["host_rss_mib"] is None else f"{r['host_rss_mib']:.0f}"
            b1, b64 = r["b1"], r[f"b{ROWS}"]
            print(
                f"| {name} | {where} | {r['load_s']:.2f} | {rss} | {b1['per_s']:,.0f} | "
                f"{b1['p50_ms']:.3f} | {b1['p99_ms']:.3f} | {b64['per_s']:,.0f} | "
                f"{b64['p50_ms']:.3f} | {b64['p99_ms']:.3f} |"
            )
        server, thread, url, token = serve(folder, files)
        print("\n## HTTP, one aimass process, N client threads, one row a request\n")
        print("| model | where | clients | requests/s | p50 ms | p99 ms | errors |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        for name, (flavor, _path, _trusted) in files.items():
            where = "in-process" if flavor == "onnx" else "sandboxed host"
            http_load(url, token, name, 2, 1.0)  # warm-up
            for clients in args.clients:
                r = http_load(url, token, name, clients, args.seconds)
                print(
                    f"| {name} | {where} | {clients} | {r['per_s']:,.0f} | "
                    f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']:.0f} |"
                )
        server.should_exit = True
        thread.join(timeout=10)


if __name__ == "__main__":
    main()
