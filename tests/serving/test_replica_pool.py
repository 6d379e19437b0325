"""ReplicaPool over real runners (sklearn in-process): least-busy routing, a replica takes
traffic only once loaded, a drained one finishes its requests; the node's shared decision."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from tests.serving.conftest import Models

from aimass.entities.deployments import Autoscaling
from aimass.serving.autoscaler import NodeScale, _Lead
from aimass.serving.replica_pool import ReplicaPool
from aimass.serving.runner import ModelRunner


def _runner(models: Models) -> ModelRunner:
    predictor = models.sklearn
    return ModelRunner(predictor, predictor.signature, max_batch_size=8, max_delay_ms=1)


def test_requests_spread_over_live_replicas_and_a_new_one_waits_until_loaded(
    models: Models,
) -> None:
    rows = {"input": models.x[:2].astype("float64")}
    expected = models.sklearn.predict(rows["input"])

    async def main() -> None:
        loaded = asyncio.Event()
        spawned: list[ModelRunner] = []

        async def spawn(index: int) -> ModelRunner:
            await loaded.wait()  # the runner process is still loading its model
            spawned.append(_runner(models))
            return spawned[-1]

        first = _runner(models)
        pool = ReplicaPool(first, spawn, name="m:1")
        growing = asyncio.create_task(pool.grow())
        await asyncio.sleep(0)
        assert (pool.replicas, pool.starting) == (1, 1)
        answers = await asyncio.gather(*(pool.infer(rows) for _ in range(20)))
        # Loading: every request went to the first replica.
        assert first.stats.requests == 20 and not spawned
        loaded.set()
        assert await growing
        assert (pool.replicas, pool.starting) == (2, 0)
        answers += await asyncio.gather(*(pool.infer(rows) for _ in range(40)))
        for answer in answers:
            np.testing.assert_array_equal(answer["predict"], expected)
        # Live: the least busy replica takes each request, so both got a share.
        assert spawned[0].stats.requests > 0
        assert first.stats.requests + spawned[0].stats.requests == 60
        await pool.close()

    asyncio.run(main())


def test_a_shrunk_replica_stops_taking_requests_and_finishes_its_own(models: Models) -> None:
    rows = {"input": models.x[:3].astype("float64")}

    async def main() -> None:
        async def spawn(index: int) -> ModelRunner:
            return _runner(models)

        pool = ReplicaPool(_runner(models), spawn, name="m:1")
        assert await pool.grow() and await pool.grow()
        assert pool.replicas == 3
        newest = pool._live[-1].runner
        queued = [asyncio.create_task(pool.infer(rows)) for _ in range(30)]
        await asyncio.sleep(0)  # queued on every replica, the newest among them
        pool.shrink()
        assert pool.replicas == 2
        answers = await asyncio.gather(*queued)  # none failed: the drained one finished its own
        assert len(answers) == 30 and all("predict" in a for a in answers)
        before = newest.stats.requests
        assert before > 0  # it held some when it was drained, and answered them
        await asyncio.gather(*(pool.infer(rows) for _ in range(10)))
        assert newest.stats.requests == before and newest.closed
        # Replica indexes are reused: the next one is index 2 again (its runner process).
        assert await pool.grow()
        assert sorted(r.index for r in pool._live) == [0, 1, 2]
        await pool.close()

    asyncio.run(main())


def test_the_pool_reports_the_mean_of_its_ongoing_requests(models: Models) -> None:
    async def main() -> None:
        async def spawn(index: int) -> ModelRunner:
            return _runner(models)

        pool = ReplicaPool(_runner(models), spawn, name="m:1")
        start, area = pool.area()
        assert area == 0.0 and pool.ongoing == 0
        rows = {"input": models.x[:50].astype("float64")}
        await asyncio.gather(*(pool.infer(rows) for _ in range(8)))
        now, later = pool.area()
        assert later > 0 and pool.ongoing == 0
        assert later / (now - start) <= 8  # the mean never exceeds the most ever in flight
        await pool.close()

    asyncio.run(main())


def test_one_worker_leads_the_node_and_the_other_follows(tmp_path: Path) -> None:
    config = Autoscaling(min_replicas=1, max_replicas=4, target_ongoing_requests=2,
                         upscale_delay_s=0, downscale_delay_s=0)  # fmt: skip
    first, second = NodeScale(tmp_path), NodeScale(tmp_path)
    second.sample_name = "w-other"  # two workers of one node (one test process here)
    lead_a = _Lead(first.folder_for("node|default|m"))
    lead_b = _Lead(second.folder_for("node|default|m"))
    assert lead_a.folder == lead_b.folder
    assert first.exchange(lead_a, config, 3.0, 1) == 2  # leads: 3 ongoing of its own
    assert lead_a.lock is not None
    # The follower's 3 join the leader's at its next tick: 6 ongoing, 3 replicas.
    assert second.exchange(lead_b, config, 3.0, 1) == 2
    assert lead_b.lock is None
    assert first.exchange(lead_a, config, 3.0, 2) == 3
    assert second.exchange(lead_b, config, 3.0, 2) == 3
    # The leader leaves: the other worker takes the lock over and goes on from the count.
    first.forget(lead_a)
    assert second.exchange(lead_b, config, 3.0, 3) == 2
    assert lead_b.lock is not None
    second.forget(lead_b)


def test_the_autoscaler_grows_a_loaded_pool_and_shrinks_it_when_the_load_stops(
    models: Models, tmp_path: Path
) -> None:
    from aimass.serving.autoscaler import Autoscaler
    from aimass.serving.repository import ModelRepository, ServedDeployment, ServedVersion

    config = Autoscaling(
        min_replicas=1,
        max_replicas=3,
        target_ongoing_requests=1,
        upscale_delay_s=0,
        downscale_delay_s=0,
        look_back_period_s=0.05,
    )
    rows = {"input": models.x[:100].astype("float64")}
    fail = {"next": False}

    async def main() -> None:
        async def spawn(index: int) -> ModelRunner:
            if fail["next"]:
                raise RuntimeError("no memory left for another runner process")
            return _runner(models)

        pool = ReplicaPool(_runner(models), spawn, name="m:1")
        pool.autoscaling = config
        repository = ModelRepository()
        served = ServedVersion("m", 1, 1.0, pool, pool.signature, "sklearn")
        repository.put(ServedDeployment("m", "default", [served]))
        autoscaler = Autoscaler(repository, tmp_path)
        stop = asyncio.Event()

        async def client() -> None:
            while not stop.is_set():
                await pool.infer(rows)

        crowd = [asyncio.create_task(client()) for _ in range(8)]
        for _ in range(200):  # ticks, each after some load
            await asyncio.sleep(0.01)
            await autoscaler.run_once()
            if pool.replicas == 3:
                break
        assert (pool.replicas, pool.desired) == (3, 3)
        stop.set()
        await asyncio.gather(*crowd)
        for _ in range(200):
            await asyncio.sleep(0.01)
            await autoscaler.run_once()
            if pool.replicas == 1:
                break
        assert (pool.replicas, pool.desired) == (1, 1)
        # A replica that fails to start: the pool keeps serving on what it has, no retry storm.
        fail["next"] = True
        config_up = config.model_copy(update={"min_replicas": 2})
        pool.autoscaling = config_up
        for _ in range(5):
            await autoscaler.run_once()
            await asyncio.sleep(0.01)
        assert pool.replicas == 1 and pool.desired == 2
        assert "predict" in await pool.infer(rows)
        await autoscaler.stop()
        await repository.close()

    asyncio.run(main())
