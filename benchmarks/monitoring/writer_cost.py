"""CPU a record of prediction logging, in one process: the inference path's part and the writer's.

    .venv/bin/python benchmarks/monitoring/writer_cost.py
    PYTHONPATH=<old checkout>/src .venv/bin/python benchmarks/monitoring/writer_cost.py

Queues 5,000 one-row records like the tiny model's (4 float features, a label, 2
probabilities) and writes them to a temporary artifact store, timing each part
with the thread's CPU clock (less sensitive to a busy machine than wall time);
prints the median of 5 rounds. An old checkout's module has no
``PredictionLog.served``: a ``Served`` is built per record, as its inference path did.
"""

from __future__ import annotations

import statistics
import tempfile
import time

import numpy as np

from aimass.artifacts.store import ArtifactStore
from aimass.entities.signature import Signature, TensorSpec
from aimass.monitoring import prediction_log as pl

SIGNATURE = Signature(inputs=[TensorSpec(name="X", datatype="FP32", shape=[-1, 4])])
SERVED = ("default", "tiny", "tiny", 1, SIGNATURE, "label", "probabilities")


def _round(n: int) -> tuple[float, float]:
    log = pl.PredictionLog(sample=1.0)
    shared = getattr(log, "served", None)
    rng = np.random.default_rng(0)
    hot = 0.0
    for i in range(n):
        inputs = {"X": rng.random((1, 4), dtype=np.float32)}
        outputs = {"label": np.zeros(1, np.int64), "probabilities": rng.random((1, 2))}
        started = time.thread_time()
        served = shared(*SERVED) if shared else pl.Served(*SERVED)
        log.record(served, f"{i:016x}", inputs, outputs, 0.001)
        hot += time.thread_time() - started
    with tempfile.TemporaryDirectory() as folder:
        writer = pl.PredictionLogWriter(log, ArtifactStore(folder))
        records = log.drain()
        started = time.thread_time()
        writer.write(records)
        written = time.thread_time() - started
    return hot / n * 1e6, written / n * 1e6


def main() -> None:
    _round(500)  # imports, first file
    rounds = [_round(5000) for _ in range(5)]
    hot = statistics.median(h for h, _ in rounds)
    writer = statistics.median(w for _, w in rounds)
    print(f"inference path (Served + record): {hot:.2f} us a record")
    print(f"writer (table + Parquet + store): {writer:.2f} us a record")


if __name__ == "__main__":
    main()
