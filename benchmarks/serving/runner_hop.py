"""The runner hop's cost per request: one tiny model called in-process, through a worker's own
sandboxed host (pipes), and through the node's shared runner process (a Unix socket).

    .venv/bin/python benchmarks/serving/runner_hop.py [--calls 2000]

A one-row TorchScript call (30→2, so the model itself costs microseconds): the
difference between the in-process time and each process path is the hop (encode,
write, the other process's read and decode, the reply the same way back). The
three are measured interleaved, in rounds, so a busy machine slows them alike;
prints the median microseconds per call of each and the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import torch

    from aimass.flavors.sandboxed import runner_folder, shared_runner, start_host
    from aimass.flavors.torchscript import TorchScriptFlavor

    torch.set_num_threads(1)
    signature = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 30]}],
        "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 2]}],
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiny.pt"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(30, 2)).eval())
            torch.jit.save(
                module, str(path), _extra_files={"aimass_signature.json": json.dumps(signature)}
            )
        paths = {
            "in-process": TorchScriptFlavor().load_in_process(path, False),
            "worker's own host (pipes)": start_host("torchscript", path, False),
        }
        with shared_runner(runner_folder(), f"hop-bench-{os.getpid()}"):
            paths["node's runner process (Unix socket)"] = start_host("torchscript", path, False)
        batch = {"input": np.random.default_rng(0).standard_normal((1, 30)).astype(np.float32)}
        times: dict[str, list[float]] = {name: [] for name in paths}
        load = os.getloadavg()[0]
        for _ in range(args.rounds):
            for name, predictor in paths.items():
                call = predictor.predict_named  # type: ignore[attr-defined]
                for _ in range(50):
                    call(batch, ["logits"])
                start = time.perf_counter()
                for _ in range(args.calls // args.rounds):
                    call(batch, ["logits"])
                times[name].append((time.perf_counter() - start) / (args.calls // args.rounds))
        for predictor in paths.values():
            close = getattr(predictor, "close", None)
            if callable(close):
                close()
    base = statistics.median(times["in-process"])
    print(f"load average (1 min) {load:.2f} → {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print("| path | µs per one-row call (median of rounds) | hop (µs over in-process) |")
    print("| --- | ---: | ---: |")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median * 1e6:,.0f} | {(median - base) * 1e6:,.0f} |")


if __name__ == "__main__":
    main()
