"""The model repository: weighted picks, states, and swaps that drop nothing."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.serving.conftest import Models, version

from aimass.serving import ModelRepository, ServedDeployment


def test_weighted_pick_follows_the_weights(models: Models) -> None:
    deployment = ServedDeployment(
        "canary", "default", [version(models.sklearn, 1, 90), version(models.sklearn, 2, 10)]
    )
    counts = Counter(deployment.pick().version for _ in range(1000))
    assert 850 <= counts[1] <= 950
    assert counts[1] + counts[2] == 1000
    assert deployment.version(2) is deployment.versions[1]
    assert deployment.version(3) is None
    assert deployment.primary() is deployment.versions[0]


def test_states_and_removal() -> None:
    repository = ModelRepository()
    repository.set_state("m", "p", "loading")
    deployment = repository.get("m", "p")
    assert deployment is not None
    assert (deployment.state, deployment.serving) == ("loading", False)
    repository.set_state("m", "p", "failed", "bad file")
    deployment = repository.get("m", "p")
    assert deployment is not None
    assert (deployment.state, deployment.reason) == ("failed", "bad file")
    assert repository.get("m", "default") is None
    assert [d.name for d in repository.all()] == ["m"]
    repository.remove("m", "p")
    assert repository.all() == []


def test_put_swaps_and_retires_only_replaced_runners_after_their_queue(models: Models) -> None:
    kept = version(models.sklearn, 1)
    replaced = version(models.sklearn, 2)
    newcomer = version(models.sklearn, 3)
    row = {"input": models.x[:1].astype("float64")}

    async def main() -> None:
        repository = ModelRepository()
        repository.put(ServedDeployment("d", "default", [kept, replaced]))
        queued = [asyncio.ensure_future(replaced.runner.infer(row)) for _ in range(10)]
        await asyncio.sleep(0)
        repository.put(ServedDeployment("d", "default", [kept, newcomer]))
        assert replaced.runner.closed and not kept.runner.closed
        results = await asyncio.gather(*queued)  # queued before the swap: all answered
        assert all(r["predict"].shape == (1,) for r in results)
        assert (await kept.runner.infer(row))["predict"].shape == (1,)
        await repository.close()
        assert kept.runner.closed and newcomer.runner.closed

    asyncio.run(main())


def test_set_state_keeps_serving_the_old_runners(models: Models) -> None:
    repository = ModelRepository()
    served = version(models.sklearn, 1)
    repository.put(ServedDeployment("d", "default", [served]))
    repository.set_state("d", "default", "loading")
    deployment = repository.get("d", "default")
    assert deployment is not None
    assert deployment.serving and deployment.pick() is served
    assert not served.runner.closed
