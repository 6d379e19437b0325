"""The in-process predict ceiling: what the model alone does on one core, no HTTP.

    taskset -c 0 python ceiling.py --model heavy_mlp --impl native --seconds 2

--impl native  the objects the peers serve: the sklearn estimator, the eager torch
               module (run from .venv-peers).
--impl aimass  the files aimass serves, loaded by aimass's own flavors (ONNX
               Runtime for the LogisticRegression, TorchScript for the MLPs)
               and called through the predictor aimass calls (run from the
               repository's .venv).

Prints one JSON line: calls/s and ms per call at batch 1, rows/s and ms per
call at batch 64 (each the best of three windows of seconds/3).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def native(model: str, work: Path):
    import torch

    torch.set_num_threads(1)
    if model == "lr":
        with open(work / "plain" / "lr.pkl", "rb") as f:
            est = pickle.load(f)
        return est.predict
    module = torch.load(work / "plain" / f"{model}.pt", weights_only=False)
    module.eval()

    def call(x: np.ndarray):
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    return call


def aimass(model: str, work: Path):
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    from aimass.plugins import default_registries

    path = work / "aimass" / ("lr.onnx" if model == "lr" else f"{model}.pt")
    flavor = default_registries().flavors.detect(path, path.name)
    return flavor.load(path, trusted=False).predict


def rate(fn, x: np.ndarray, seconds: float, windows: int = 3) -> float:
    """Best calls/s of fn(x) over a few windows, after a warm-up: a ceiling, so the best."""
    end = time.perf_counter() + max(0.2, seconds / 4)
    while time.perf_counter() < end:
        fn(x)
    best = 0.0
    for _ in range(windows):
        calls, start = 0, time.perf_counter()
        end = start + seconds / windows
        while True:
            fn(x)
            calls += 1
            now = time.perf_counter()
            if now >= end:
                break
        best = max(best, calls / (now - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--impl", choices=["native", "aimass"], default="native")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--work", type=Path, default=HERE / "work")
    args = parser.parse_args()
    x = np.load(args.work / "data.npz")["x"]
    fn = (native if args.impl == "native" else aimass)(args.model, args.work)
    one = rate(fn, np.ascontiguousarray(x[:1]), args.seconds)
    many = rate(fn, np.ascontiguousarray(x[:64]), args.seconds)
    print(
        json.dumps(
            {
                "model": args.model,
                "impl": args.impl,
                "pid_affinity": sorted(os.sched_getaffinity(0)),
                "batch1_calls_per_s": round(one, 1),
                "batch1_ms": round(1000 / one, 4),
                "batch64_rows_per_s": round(many * 64, 1),
                "batch64_ms": round(1000 / many, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
