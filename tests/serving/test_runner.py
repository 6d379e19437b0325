"""ModelRunner over real flavors: batching, output names, isolation of a bad request."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest
from tests.serving.conftest import Models

from aimass.errors import InvalidInput
from aimass.serving import ModelRunner
from aimass.serving.runner import INLINE_PREDICT_S, TIMED_FIRST


def _gather(runner: ModelRunner, inputs: list[dict[str, Any]]) -> list[Any]:
    async def main() -> list[Any]:
        try:
            return await asyncio.gather(*(runner.infer(i) for i in inputs), return_exceptions=True)
        finally:
            await runner.close()

    return asyncio.run(main())


def test_concurrent_requests_are_batched_and_each_gets_its_own_rows(models: Models) -> None:
    predictor = models.sklearn
    runner = ModelRunner(predictor, predictor.signature, max_batch_size=32, max_delay_ms=5)
    # Requests of 1, 2 and 3 rows, each distinct.
    chunks = [models.x[i : i + 1 + i % 3].astype("float64") for i in range(0, 300, 3)]
    results = _gather(runner, [{"input": c} for c in chunks])
    for chunk, result in zip(chunks, results, strict=True):
        assert set(result) == {"predict", "predict_proba"}
        np.testing.assert_array_equal(result["predict"], predictor.predict(chunk))
        np.testing.assert_allclose(result["predict_proba"], predictor.predict_proba(chunk))
    assert runner.stats.largest_batch > 1
    assert runner.stats.largest_batch <= 32
    assert runner.stats.requests == len(chunks)


def test_onnx_outputs_are_named_from_its_signature(models: Models) -> None:
    predictor = models.onnx
    runner = ModelRunner(predictor, predictor.signature, max_batch_size=8, max_delay_ms=1)
    rows = [{"X": models.x[i : i + 1]} for i in range(20)]
    results = _gather(runner, rows)
    for row, result in zip(rows, results, strict=True):
        assert set(result) == {"label", "probabilities"}
        np.testing.assert_array_equal(result["label"], predictor.predict(row["X"]))
        assert result["probabilities"].shape == (1, 2)


def test_without_a_signature_outputs_are_predict_and_predict_proba(models: Models) -> None:
    runner = ModelRunner(models.sklearn, None, max_batch_size=1, max_delay_ms=0)
    (result,) = _gather(runner, [{"x": models.x[:4].astype("float64")}])
    assert set(result) == {"predict", "predict_proba"}
    assert result["predict"].shape == (4,)


def test_only_the_requested_outputs_are_computed(models: Models) -> None:
    predictor = models.sklearn
    runner = ModelRunner(predictor, predictor.signature, max_batch_size=8, max_delay_ms=1)

    async def main() -> dict[str, Any]:
        try:
            return await runner.infer({"input": models.x[:2].astype("float64")}, ["predict"])
        finally:
            await runner.close()

    assert set(asyncio.run(main())) == {"predict"}


def test_a_bad_request_fails_alone(models: Models) -> None:
    predictor = models.sklearn
    runner = ModelRunner(predictor, predictor.signature, max_batch_size=64, max_delay_ms=5)
    good = [{"input": models.x[i : i + 1].astype("float64")} for i in range(30)]
    bad = {"input": np.full((1, 30), np.nan)}  # LogisticRegression refuses NaN
    results = _gather(runner, [*good[:15], bad, *good[15:]])
    assert isinstance(results[15], ValueError)
    for request, result in zip(good, results[:15] + results[16:], strict=True):
        np.testing.assert_array_equal(result["predict"], predictor.predict(request["input"]))


def test_inputs_disagreeing_on_rows_are_refused(models: Models) -> None:
    runner = ModelRunner(models.onnx, None, max_batch_size=4, max_delay_ms=1)
    (result,) = _gather(runner, [{"a": np.zeros((2, 3)), "b": np.zeros((3, 3))}])
    assert isinstance(result, InvalidInput)


def test_a_fixed_first_dimension_turns_batching_off(models: Models) -> None:
    signature = models.onnx.signature
    assert signature is not None
    fixed = signature.model_copy(deep=True)
    fixed.inputs[0].shape = [1, 30]
    runner = ModelRunner(models.onnx, fixed, max_batch_size=64, max_delay_ms=1)
    assert runner.max_batch_size == 1


@pytest.mark.parametrize("max_batch_size", [1, 16])
def test_close_finishes_in_flight_requests(models: Models, max_batch_size: int) -> None:
    predictor = models.sklearn
    runner = ModelRunner(predictor, predictor.signature, max_batch_size, max_delay_ms=2)

    async def main() -> list[Any]:
        tasks = [
            asyncio.ensure_future(runner.infer({"input": models.x[i : i + 1].astype("float64")}))
            for i in range(40)
        ]
        await asyncio.sleep(0)  # every request is queued
        await runner.close()
        return await asyncio.gather(*tasks)

    results = asyncio.run(main())
    assert len(results) == 40
    assert all(r["predict"].shape == (1,) for r in results)


class _PerNode:
    """A graph model's shape: a row per node, the edges a separate [2, E] tensor."""

    def __init__(self) -> None:
        from aimass.flavors.signature import Signature, TensorSpec

        self.signature = Signature(
            inputs=[
                TensorSpec(name="features", datatype="FP32", shape=[-1, 3]),
                TensorSpec(name="edge_index", datatype="INT64", shape=[2, -1]),
            ],
            outputs=[TensorSpec(name="label", datatype="INT64", shape=[-1])],
        )

    def predict(self, batch: Any) -> Any:
        degree = np.bincount(batch["edge_index"][1], minlength=len(batch["features"]))
        return degree.astype(np.int64)

    def predict_proba(self, batch: Any) -> Any:
        return None


def test_inputs_with_a_fixed_first_dimension_are_not_rows() -> None:
    predictor = _PerNode()
    runner = ModelRunner(predictor, predictor.signature, max_batch_size=32, max_delay_ms=5)
    assert runner.max_batch_size == 1  # a fixed first dimension cannot be batched
    features = np.zeros((4, 3), dtype=np.float32)
    edges = np.array([[0, 1, 2, 3, 3], [1, 0, 3, 2, 1]], dtype=np.int64)
    [result] = _gather(runner, [{"features": features, "edge_index": edges}])
    assert result["label"].tolist() == [1, 2, 1, 1]


class _Tiny:
    """A model that notes the thread of each predict call; ``spin_s`` of CPU or ``sleep_s``
    of waiting per call make it a heavy or a waiting one."""

    def __init__(self, spin_s: float = 0.0, sleep_s: float = 0.0) -> None:
        from aimass.flavors.signature import Signature, TensorSpec

        self.signature = Signature(
            inputs=[TensorSpec(name="x", datatype="FP32", shape=[-1, 4])],
            outputs=[TensorSpec(name="total", datatype="FP32", shape=[-1])],
        )
        self.spin_s, self.sleep_s = spin_s, sleep_s
        self.threads: list[int] = []

    def predict(self, batch: Any) -> Any:
        self.threads.append(threading.get_ident())
        end = time.thread_time() + self.spin_s
        while time.thread_time() < end:
            pass
        time.sleep(self.sleep_s)
        return batch["x"].sum(axis=1)

    def predict_proba(self, batch: Any) -> Any:
        return None


def _one_at_a_time(runner: ModelRunner, rows: list[int]) -> tuple[list[Any], int]:
    """Send requests of ``rows`` rows one after the other; the answers and the loop's thread."""

    async def main() -> list[Any]:
        try:
            return [
                await runner.infer({"x": np.full((n, 4), i, dtype=np.float32)})
                for i, n in enumerate(rows)
            ]
        finally:
            await runner.close()

    return asyncio.run(main()), threading.get_ident()


@pytest.mark.parametrize("max_batch_size", [1, 16])
def test_a_tiny_models_predict_moves_onto_the_event_loop_once_timed(max_batch_size: int) -> None:
    model = _Tiny()
    runner = ModelRunner(model, model.signature, max_batch_size, max_delay_ms=2)
    answers, loop_thread = _one_at_a_time(runner, [1] * 30)
    for i, answer in enumerate(answers):
        np.testing.assert_array_equal(answer["total"], [4.0 * i])
    # Timed on the runner's thread first, then run where the request is, with no hop.
    assert loop_thread not in model.threads[:TIMED_FIRST]
    assert model.threads[-10:] == [loop_thread] * 10
    assert runner.stats.inline == model.threads.count(loop_thread)
    assert runner.clock.cpu < INLINE_PREDICT_S


def test_a_much_larger_request_goes_back_to_the_runners_thread() -> None:
    model = _Tiny()
    runner = ModelRunner(model, model.signature, max_batch_size=16, max_delay_ms=2)
    _, loop_thread = _one_at_a_time(runner, [1] * 20 + [500, 1])
    assert model.threads[-2] != loop_thread  # 500 rows: not the size its timing was of
    assert model.threads[-1] == loop_thread


@pytest.mark.parametrize(
    ("spin_s", "sleep_s"),
    [(3 * INLINE_PREDICT_S, 0.0), (0.0, 20 * INLINE_PREDICT_S)],
    ids=["heavy", "waiting"],
)
@pytest.mark.parametrize("max_batch_size", [1, 16])
def test_heavy_or_waiting_models_stay_on_the_runners_thread(
    spin_s: float, sleep_s: float, max_batch_size: int
) -> None:
    model = _Tiny(spin_s, sleep_s)
    runner = ModelRunner(model, model.signature, max_batch_size, max_delay_ms=2)
    _, loop_thread = _one_at_a_time(runner, [1] * (TIMED_FIRST + 6))
    assert loop_thread not in model.threads
    assert runner.stats.inline == 0


class _InAnotherProcess(_Tiny):
    def close(self) -> None:
        """What a sandboxed predictor has: its model lives in a host process."""


def test_a_model_in_another_process_never_runs_on_the_event_loop() -> None:
    model = _InAnotherProcess()
    runner = ModelRunner(model, model.signature, max_batch_size=16, max_delay_ms=2)
    _, loop_thread = _one_at_a_time(runner, [1] * (TIMED_FIRST + 6))
    assert loop_thread not in model.threads


def test_a_batch_of_several_requests_keeps_the_hop_to_the_runners_thread() -> None:
    model = _Tiny()
    runner = ModelRunner(model, model.signature, max_batch_size=16, max_delay_ms=50)
    rows: list[int] = []
    original = model.predict

    def predict(batch: Any) -> Any:
        rows.append(len(batch["x"]))
        return original(batch)

    model.predict = predict  # type: ignore[method-assign]

    async def main() -> int:
        try:
            for i in range(TIMED_FIRST + 4):  # timed, then inline: a tiny model
                await runner.infer({"x": np.full((1, 4), i, dtype=np.float32)})
            await asyncio.gather(
                *(runner.infer({"x": np.full((1, 4), i, dtype=np.float32)}) for i in range(6))
            )
        finally:
            await runner.close()
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert model.threads[TIMED_FIRST] == loop_thread
    assert rows[-1] == 6  # the six concurrent requests made one batch ...
    assert model.threads[-1] != loop_thread  # ... run on the runner's thread
