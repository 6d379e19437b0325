"""Share of a serving process's GIL time spent on prediction logging, from py-spy samples.

    .venv/bin/pip install py-spy   # not a dependency of aimass
    .venv/bin/python benchmarks/monitoring/gil_share.py [--seconds 20]
    PYTHONPATH=<old checkout>/src .venv/bin/python benchmarks/monitoring/gil_share.py

Starts one ``aimass server`` at 100 % sampling (the tiny ONNX model of
``logging_cost.py``), drives it with 64 keep-alive connections (``wrk -t1 -c64``
when installed: a Python client would set the pace on a busy machine) and records it with
``py-spy record --gil --native`` at 100 Hz meanwhile: only the thread holding the
GIL is sampled, so the share of samples inside the prediction log's code (the
hook, the queue, the writer thread's table building) is the share of the
serving CPU it takes from requests on a busy core. A share is a ratio within one
run: less sensitive to a shared machine's load than a rate. Parquet encoding
runs without the GIL and is not in it (``writer_cost.py`` counts it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import logging_cost as lc

#: Frames that are the prediction log's work.
LOGGING = ("prediction_log.py", "log_answer")


def _share(raw: Path) -> tuple[int, Counter[str]]:
    total, parts = 0, Counter[str]()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        if any(mark in stack for mark in LOGGING):
            parts["logging"] += samples
            parts["writer" if "PredictionLogWriter" in stack else "hook"] += samples
    return total, parts


WRK_SCRIPT = """wrk.method = "POST"
wrk.body = '{"inputs": [[0.1, -0.2, 0.3, 0.4]]}'
wrk.headers["Content-Type"] = "application/json"
"""


def _drive(url: str, seconds: int, folder: Path) -> int:
    """Requests answered by 64 connections: wrk (-t1 -c64) when installed, else aiohttp."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return asyncio.run(lc._load(url, seconds, 64))
    script = folder / "post.lua"
    script.write_text(WRK_SCRIPT)
    out = subprocess.run(
        [wrk, "-t1", "-c64", f"-d{seconds}s", "-s", str(script),
         f"{url}/api/v1/deployments/tiny/predict"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return int(next(line for line in out.splitlines() if "requests in" in line).split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    with tempfile.TemporaryDirectory() as folder:
        port = lc._port()
        url = f"http://127.0.0.1:{port}"
        process = lc._start(Path(folder), port, 1.0)
        try:
            lc._deploy(url)
            asyncio.run(lc._load(url, 5.0, 64))  # warm
            raw = Path(folder) / "samples.txt"
            record = subprocess.Popen(
                [spy, "record", "--gil", "--native", "--rate", "100", "--format", "raw",
                 "--duration", str(args.seconds), "--pid", str(process.pid), "--output", str(raw)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            done = _drive(url, args.seconds + 2, Path(folder))
            record.wait(timeout=120)
            total, parts = _share(raw)
        finally:
            lc._stop(process)
    print(f"{done / (args.seconds + 2):.0f} req/s at 100 % sampling; {total} GIL samples")
    for part in ("logging", "hook", "writer"):
        print(f"  {part:8s} {parts[part]:6d} samples = {parts[part] / max(total, 1) * 100:5.2f} %")
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
