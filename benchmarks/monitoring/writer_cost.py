"""CPU a record of prediction logging, in one process: the inference path's part and the writer's.

    .venv/bin/python benchmarks/monitoring/writer_cost.py [--quick]
    PYTHONPATH=<old checkout>/src .venv/bin/python benchmarks/monitoring/writer_cost.py

Queues 10,000 one-row records like the tiny model's (4 float features, a label and
2 probabilities sliced from a 64-row batch's outputs, as the batcher splits them),
then drains them, writes them to a temporary artifact store and frees them, timing
each part with the thread's CPU clock (less sensitive to a busy machine than wall
time); prints the medians of 5 rounds, the hook's less the clock reads around it.
The inference path's part is the hook's call as ``InferenceApp.log_answer`` makes
it: ``PredictionLog.answered`` with the serving objects, or, in an older checkout
without it, ``served(...)`` then ``record``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

from aimass.artifacts.store import ArtifactStore
from aimass.entities.signature import Signature, TensorSpec
from aimass.monitoring import prediction_log as pl

SIGNATURE = Signature(inputs=[TensorSpec(name="X", datatype="FP32", shape=[-1, 4])])


class _Runner:
    predict_output = "label"
    proba_output = "probabilities"


class _Version:  # what serving's ServedVersion gives the hook
    model = "tiny"
    version = 1
    signature = SIGNATURE
    runner = _Runner()


class _Deployment:  # what serving's ServedDeployment gives the hook
    name = "tiny"
    project = "default"


def _hook(log: pl.PredictionLog) -> object:
    """The inference path's call, as this checkout's ``log_answer`` makes it."""
    deployment, version = _Deployment(), _Version()
    if hasattr(log, "answered"):

        def call(request_id: str, inputs: object, outputs: object, started: float) -> None:
            log.answered(deployment, version, request_id, inputs, outputs, started)  # type: ignore[arg-type]

        return call
    runner = version.runner

    def old(request_id: str, inputs: object, outputs: object, started: float) -> None:
        served = log.served(
            deployment.project, deployment.name, version.model, version.version,
            version.signature, runner.predict_output, runner.proba_output,
        )  # fmt: skip
        log.record(served, request_id, inputs, outputs, time.perf_counter() - started)  # type: ignore[arg-type]

    return old


def _clock_cost(n: int) -> float:
    """The timing's own cost a record: two clock reads around a call that does nothing."""

    def nothing(request_id: str, inputs: object, outputs: object, started: float) -> None:
        return None

    spent = 0.0
    for i in range(n):
        started = time.thread_time()
        nothing("", i, i, time.perf_counter())
        spent += time.thread_time() - started
    return spent / n * 1e6


def _round(n: int) -> tuple[float, float]:
    log = pl.PredictionLog(sample=1.0, capacity=n + 1)
    hook = _hook(log)
    rng = np.random.default_rng(0)
    hot = 0.0
    labels, probabilities = np.zeros(64, np.int64), rng.random((64, 2))
    for i in range(n):
        if i % 64 == 0:  # a new batch's outputs, split into one view per request
            labels, probabilities = labels.copy(), probabilities.copy()
        inputs = {"X": rng.random((1, 4), dtype=np.float32)}
        j = i % 64
        outputs = {"label": labels[j : j + 1], "probabilities": probabilities[j : j + 1]}
        request_id = f"{i:032x}"
        started = time.thread_time()
        hook(request_id, inputs, outputs, time.perf_counter())  # type: ignore[operator]
        hot += time.thread_time() - started
    del inputs, outputs, labels, probabilities  # the records hold the last ones
    with tempfile.TemporaryDirectory() as folder:
        writer = pl.PredictionLogWriter(log, ArtifactStore(folder))
        started = time.thread_time()
        records = log.drain()
        writer.write(records)
        del records  # the records are freed by the writer's side too
        written = time.thread_time() - started
    return hot / n * 1e6, written / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 records a round")
    args = parser.parse_args()
    n = 2000 if args.quick else 10_000
    _round(500)  # imports, first file
    rounds = [_round(n) for _ in range(5)]
    clock = statistics.median(_clock_cost(n) for _ in range(5))
    hot = statistics.median(h for h, _ in rounds) - clock
    writer = statistics.median(w for _, w in rounds)
    print(f"inference path (the hook's call): {hot:.2f} us a record "
          f"(the clocks' own {clock:.2f} us taken off)")  # fmt: skip
    print(f"writer (drain, table, Parquet, store, free): {writer:.2f} us a record")
    print(f"total: {hot + writer:.2f} us a record (load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
