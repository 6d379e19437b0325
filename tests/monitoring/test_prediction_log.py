"""The prediction log's queue: bounded (drops and counts), sampled, and written as Parquet rows."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from aimass.artifacts.store import ArtifactStore
from aimass.entities.signature import Signature, TensorSpec
from aimass.monitoring.metrics import PredictionLogMetrics
from aimass.monitoring.prediction_log import PredictionLog, PredictionLogWriter, Served
from aimass.monitoring.predictions import read_log
from aimass.serving.repository import ServedDeployment, ServedVersion

SERVED = Served("default", "iris", "iris", 3, None, "label", "probabilities")


def _record(log: PredictionLog, request_id: str, rows: int = 2) -> None:
    inputs = {"input": np.arange(rows * 4, dtype=np.float32).reshape(rows, 4)}
    outputs = {"label": np.arange(rows), "probabilities": np.full((rows, 2), 0.5)}
    log.record(SERVED, request_id, inputs, outputs, 0.002)


def test_a_full_queue_drops_and_counts_instead_of_growing() -> None:
    log = PredictionLog(sample=1.0, capacity=3)
    registry = CollectorRegistry()
    PredictionLogMetrics(log, registry)
    for i in range(5):
        _record(log, f"r{i}")
    assert log.depth == 3 and log.dropped == 2
    text = generate_latest(registry).decode()
    assert "aimass_prediction_log_dropped_total 2.0" in text
    assert "aimass_prediction_log_queue_depth 3.0" in text


def test_sampling_rates_default_and_per_deployment() -> None:
    assert PredictionLog(sample=0.0).rate("iris") == 0.0
    off = PredictionLog(sample=0.0)
    _record(off, "r")
    assert off.depth == 0
    some = PredictionLog(sample=0.0, rates={"iris": 0.5})
    for i in range(400):
        _record(some, f"r{i}")
    assert 120 < some.depth < 280


def test_the_writer_writes_one_row_per_predicted_row(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    log = PredictionLog(sample=1.0)
    for i in range(10):
        _record(log, f"r{i}", rows=2)
    writer = PredictionLogWriter(log, store)
    asyncio.run(writer.run_once())
    assert log.depth == 0 and log.written == 10
    frame = read_log(store, "default", "iris")
    assert len(frame) == 20
    assert list(frame.columns[:6]) == [
        "_request_id", "_row", "_time", "_model", "_version", "_latency_ms",
    ]  # fmt: skip
    assert {"input_0", "input_3", "prediction", "proba_0", "proba_1"} <= set(frame.columns)
    assert frame["_version"].unique().tolist() == [3]
    keys = store.list_keys("predictions/default/iris")
    assert all(key.count("/") == 4 for key in keys)  # predictions/<project>/<dep>/<hour>/<file>


def test_records_that_do_not_line_up_keep_their_own_columns(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    log = PredictionLog(sample=1.0)
    other = Served("default", "iris", "iris", 4, None, "label", "probabilities")
    _record(log, "a", rows=2)
    # A scalar output is not logged; a tensor shorter than the record's rows is left out of it.
    log.record(
        SERVED, "b", {"input": np.ones((3, 4))}, {"label": np.arange(3), "n": np.int64(3)}, 0.1
    )
    log.record(
        SERVED,
        "c",
        {"input": np.ones((1, 4))},
        {"label": np.arange(1), "probabilities": np.ones((0, 2))},
        0.1,
    )
    log.record(other, "d", {"x": np.arange(2.0)}, {"label": np.array(["yes", "no"])}, 0.1)
    asyncio.run(PredictionLogWriter(log, store).run_once())
    frame = read_log(store, "default", "iris").set_index(["_request_id", "_row"])
    assert len(frame) == 2 + 3 + 1 + 2 and log.written == 4
    assert frame.loc[("a", 1), "proba_1"] == 0.5 and frame.loc[("a", 1), "input_3"] == 7.0
    assert frame.loc[("b", 2), "prediction"] == 2 and np.isnan(frame.loc[("b", 2), "proba_0"])
    assert "output.n" not in frame.columns and "output.n_0" not in frame.columns
    assert np.isnan(frame.loc[("c", 0), "proba_0"]) and frame.loc[("c", 0), "input_0"] == 1.0
    assert frame.loc[("d", 1), "x"] == 1.0 and frame.loc[("d", 1), "_version"] == 4
    assert frame.loc[("d", 0), "prediction"] == "yes"


class _Runner:  # what the log reads of a runner: its output names
    predict_output = "label"
    proba_output = "probabilities"


def test_the_inference_paths_records_name_their_serving_objects(tmp_path: Path) -> None:
    """``answered`` queues the deployment and version objects; the writer reads them per batch."""
    store = ArtifactStore(str(tmp_path))
    log = PredictionLog(sample=1.0)
    signature = Signature(inputs=[TensorSpec(name="X", datatype="FP32", shape=[-1, 2])])
    versions = [
        ServedVersion("iris", v, 0.5, _Runner(), signature, "onnx")  # type: ignore[arg-type]
        for v in (1, 2)
    ]
    deployment = ServedDeployment("iris", "default", versions)
    before = time.time()
    for i in range(40):
        rows = 2 if i % 5 == 0 else 1
        inputs = {"X": np.full((rows, 2), float(i), dtype=np.float32)}
        outputs = {"label": np.full(rows, i), "probabilities": np.full((rows, 2), 0.5)}
        if i % 4 == 3:  # an answer limited to some outputs (names differ within a version)
            del outputs["probabilities"]
        log.answered(deployment, versions[i % 2], f"r{i}", inputs, outputs, time.perf_counter())
    asyncio.run(PredictionLogWriter(log, store).run_once())
    frame = read_log(store, "default", "iris").set_index(["_request_id", "_row"])
    assert len(frame) == 40 + 8 and log.written == 40 and log.depth == 0
    assert frame.loc[("r10", 1), "prediction"] == 10 and frame.loc[("r10", 1), "_version"] == 1
    assert frame.loc[("r7", 0), "_version"] == 2 and np.isnan(frame.loc[("r7", 0), "proba_0"])
    assert frame.loc[("r8", 0), "proba_1"] == 0.5 and frame.loc[("r8", 0), "X_1"] == 8.0
    assert (frame["_model"] == "iris").all() and (frame["_latency_ms"] >= 0).all()
    times = frame["_time"].map(lambda t: t.timestamp())
    assert before - 1 <= times.min() and times.max() <= time.time() + 1


class _ArrivingWriter(PredictionLogWriter):
    """A writer during whose writes requests keep arriving (as they do under load)."""

    max_writes = 1_000_000

    def write(self, records: list) -> int:  # type: ignore[type-arg]
        if self.max_writes > 0:
            self.max_writes -= 1
            for i in range(3):
                _record(self.queue, f"late{self.queue.written}-{i}")
        return super().write(records)


def test_a_tick_writes_what_was_queued_not_what_arrives_meanwhile(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    log = PredictionLog(sample=1.0)
    for i in range(10):
        _record(log, f"r{i}")
    writer = _ArrivingWriter(log, store)
    asyncio.run(writer.run_once())
    # One file of the ten: the three that arrived meanwhile wait for the next tick.
    assert log.written == 10 and log.depth == 3
    assert len(store.list_keys("predictions/default/iris")) == 1
    asyncio.run(writer.run_once())
    assert log.written == 13 and log.depth == 3
    assert len(read_log(store, "default", "iris")) == 26


def test_a_backlog_larger_than_a_batch_is_written_in_one_tick(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    log = PredictionLog(sample=1.0)
    for i in range(10):
        _record(log, f"r{i}")
    asyncio.run(PredictionLogWriter(log, store, batch=4).run_once())
    assert log.depth == 0 and log.written == 10
    assert len(store.list_keys("predictions/default/iris")) == 3  # 4 + 4 + 2
    assert sorted(read_log(store, "default", "iris")["_request_id"].unique()) == sorted(
        f"r{i}" for i in range(10)
    )


def test_stopping_writes_what_is_answered_during_the_last_write(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    log = PredictionLog(sample=1.0)
    for i in range(10):
        _record(log, f"r{i}")
    writer = _ArrivingWriter(log, store)
    writer.max_writes = 2

    async def stop() -> None:
        writer.start()
        await writer.stop()

    asyncio.run(stop())
    assert log.depth == 0 and log.written == 10 + 3 * 2


def test_a_batch_of_one_version_with_differing_widths_and_rows_keeps_each_records_values(
    tmp_path: Path,
) -> None:
    store = ArtifactStore(str(tmp_path))
    log = PredictionLog(sample=1.0)
    log.record(
        SERVED, "small", {"input": np.arange(8, dtype=np.float32).reshape(2, 4)},
        {"label": np.array([7, 8])}, 0.1,
    )  # fmt: skip
    log.record(SERVED, "wide", {"input": np.full((1, 600), 2.0)}, {"label": np.array([9])}, 0.1)
    _record(log, "three", rows=3)
    asyncio.run(PredictionLogWriter(log, store).run_once())
    frame = read_log(store, "default", "iris").set_index(["_request_id", "_row"])
    assert len(frame) == 2 + 1 + 3 and log.written == 3
    assert frame.loc[("small", 1), "input_3"] == 7.0 and frame.loc[("small", 1), "prediction"] == 8
    assert frame.loc[("wide", 0), "input_599"] == 2.0 and frame.loc[("wide", 0), "prediction"] == 9
    assert frame.loc[("three", 2), "proba_1"] == 0.5 and frame.loc[("three", 2), "input_0"] == 8.0
