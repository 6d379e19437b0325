"""Prediction logging's cost, a steadier measure: many short alternating pairs, pinned.

    .venv/bin/python benchmarks/monitoring/logging_pairs.py [--pairs 24 --seconds 3]

One ``aimass server`` pinned to core 0 (``taskset -c 0``) serves the tiny ONNX model
twice, as ``logging_cost.py`` does: deployment ``tiny`` with prediction logging off
and ``tiny-on`` at 100 % sampling, so both settings share one process. ``wrk -t1
-c64`` pinned to core 1 drives them in ``--pairs`` pairs of ``--seconds`` windows,
the order inside a pair alternating (off-on, on-off, ...) so a load that drifts
over a pair hits both settings alike. After each window it waits a flush interval
(and, after an "on" window, until the log's queue is empty) so the writer's work
lands in its window; both settings wait the same.

The figure: the server's CPU time per request (all its threads, from
``/proc/<pid>/stat`` via psutil), each pair's ratio on/off, and the median of the
pairs' ratios with a bootstrap 95 % interval (and min/max). CPU a request moves
less than req/s when other processes take the cores. Last, the rows in the
Parquet log are counted against the requests answered in the "on" windows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from logging_cost import (
    FLUSH_S,
    _cpu,
    _deploy,
    _drained,
    _logged,
    _metric,
    _port,
    _start,
    _stop,
)

LUA = Path(__file__).parents[1] / "serving" / "loadgen.lua"


def _server(home: Path, port: int) -> subprocess.Popen[bytes]:
    """The server on core 0, logging ``tiny-on`` only (taskset execs: its pid is the server's)."""
    return _start(home, port, 0.0, {"tiny-on": 1.0}, core="0")


def _wrk(url: str, deployment: str, seconds: float, body: Path) -> tuple[int, float]:
    """wrk on core 1 against one deployment: (requests answered 200, seconds it ran)."""
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{seconds:g}s", "-s", str(LUA),
         f"{url}/api/v1/deployments/{deployment}/predict"],
        env={**os.environ, "BENCH_BODY": str(body)},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    line = next(x for x in out.splitlines() if x.startswith("BENCH_JSON "))
    result = json.loads(line.removeprefix("BENCH_JSON "))
    errors = result["errors"]
    return result["requests"] - errors["status"], result["duration_us"] / 1e6


def _answered(url: str, deployment: str) -> int:
    """Requests of ``deployment`` the server answered 200 (its own counter: wrk leaves
    out those in flight when a window ends)."""
    import httpx

    total = 0.0
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if (
            line.startswith("aimass_inference_requests_total{")
            and f'deployment="{deployment}"' in line
            and 'code="200"' in line
        ):
            total += float(line.split()[-1])
    return int(total)


def _bootstrap(values: list[float], draws: int = 5000) -> tuple[float, float]:
    """A 95 % bootstrap interval of the median of ``values``."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(draws))
    return medians[int(0.025 * draws)], medians[int(0.975 * draws) - 1]


def run(folder: Path, pairs: int, seconds: float) -> None:
    """Drive the pairs and print each window, the pairs' medians and the log's count."""
    port = _port()
    url = f"http://127.0.0.1:{port}"
    body = folder / "body.json"
    body.write_text('{"inputs": [[0.1, -0.2, 0.3, 0.4]]}')
    process = _server(folder / "home", port)
    cpu: dict[str, list[float]] = {"tiny": [], "tiny-on": []}
    rate: dict[str, list[float]] = {"tiny": [], "tiny-on": []}
    loads = [os.getloadavg()[0]]
    try:
        _deploy(url, also=("tiny-on",))
        for deployment in ("tiny", "tiny-on"):  # warm: imports, first batches, a Parquet file
            _wrk(url, deployment, 3.0, body)
        _drained(url)
        for pair in range(pairs):
            order = ("tiny", "tiny-on") if pair % 2 == 0 else ("tiny-on", "tiny")
            for deployment in order:
                count, before = _answered(url, deployment), _cpu(process)
                _, took = _wrk(url, deployment, seconds, body)
                time.sleep(FLUSH_S + 0.3)
                if deployment == "tiny-on":
                    _drained(url)
                done = _answered(url, deployment) - count
                cpu[deployment].append((_cpu(process) - before) / done * 1e6)
                rate[deployment].append(done / took)
            print(f"pair {pair + 1:2d}: off {rate['tiny'][-1]:6.0f} req/s {cpu['tiny'][-1]:6.1f} us"
                  f", on {rate['tiny-on'][-1]:6.0f} req/s {cpu['tiny-on'][-1]:6.1f} us a request"
                  f" (load {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
        loads.append(os.getloadavg()[0])
        answered = _answered(url, "tiny-on")
        dropped = _metric(url, "aimass_prediction_log_dropped_total")
    finally:
        _stop(process)
    logged, files = _logged(folder / "home" / "artifacts")
    for name, values in (("server CPU a request", cpu), ("req/s", rate)):
        ratios = [
            (on / off - 1) * 100 for off, on in zip(values["tiny"], values["tiny-on"], strict=True)
        ]
        low, high = _bootstrap(ratios)
        print(f"{name}: off {statistics.median(values['tiny']):.1f}, "
              f"100% {statistics.median(values['tiny-on']):.1f} (medians); pairs' ratio median "
              f"{statistics.median(ratios):+.1f} % [95 % bootstrap {low:+.1f}, {high:+.1f}], "
              f"min {min(ratios):+.1f}, max {max(ratios):+.1f}")  # fmt: skip
    print(f"load {loads[0]:.1f} -> {loads[1]:.1f}; {pairs} pairs of {seconds:g} s, wrk -c64")
    print(f"requests answered 200 (logged deployment): {answered}, rows logged: {logged}, "
          f"dropped: {dropped:.0f}, Parquet files: {files}")  # fmt: skip
    if answered != logged + dropped:
        raise SystemExit("rows logged + dropped != requests answered")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=3.0, help="each window")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        run(Path(folder), args.pairs, args.seconds)


if __name__ == "__main__":
    main()
