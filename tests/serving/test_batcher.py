"""The dynamic batcher on its own, without HTTP."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from aimass.serving.batcher import Batcher, BatcherClosed


def test_concurrent_puts_each_get_their_own_result() -> None:
    sizes: list[int] = []
    threads: set[str] = set()

    def double(items: list[int]) -> list[int]:
        sizes.append(len(items))
        threads.add(threading.current_thread().name)
        time.sleep(0.001)  # a model that takes a moment, so requests pile up
        return [2 * i for i in items]

    async def main() -> list[int]:
        batcher: Batcher[int, int] = Batcher(double, max_batch_size=16, max_delay_s=0.01)
        results = await asyncio.gather(*(batcher.put(i) for i in range(500)))
        await batcher.close()
        return results

    results = asyncio.run(main())
    assert results == [2 * i for i in range(500)]
    assert max(sizes) > 1
    assert max(sizes) <= 16
    assert sum(sizes) == 500
    assert threads != {threading.main_thread().name}  # the sync handler runs off the loop
    assert len(threads) == 1


def test_max_batch_size_is_respected_under_a_burst() -> None:
    sizes: list[int] = []

    async def handler(items: list[str]) -> list[str]:
        sizes.append(len(items))
        await asyncio.sleep(0)
        return [s.upper() for s in items]

    async def main() -> list[str]:
        batcher: Batcher[str, str] = Batcher(handler, max_batch_size=7, max_delay_s=0.05)
        futures = [batcher.put(f"x{i}") for i in range(100)]
        results = list(await asyncio.gather(*futures))
        await batcher.close()
        return results

    assert asyncio.run(main()) == [f"X{i}" for i in range(100)]
    assert max(sizes) == 7
    assert sum(sizes) == 100


def test_a_failing_batch_fails_every_future_in_it() -> None:
    def explode(items: list[int]) -> list[int]:
        raise ValueError(f"bad batch of {len(items)}")

    async def main() -> list[BaseException | int]:
        batcher: Batcher[int, int] = Batcher(explode, max_batch_size=4, max_delay_s=0.01)
        results = await asyncio.gather(*(batcher.put(i) for i in range(8)), return_exceptions=True)
        await batcher.close()
        return results

    results = asyncio.run(main())
    assert all(isinstance(r, ValueError) for r in results)


def test_a_handler_returning_the_wrong_count_fails_the_batch() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    async def main() -> None:
        batcher: Batcher[int, int] = Batcher(short, max_batch_size=4, max_delay_s=0.01)
        with pytest.raises(RuntimeError, match="returned"):
            await asyncio.gather(batcher.put(1), batcher.put(2))
        await batcher.close()

    asyncio.run(main())


def test_close_runs_everything_queued_then_refuses_more() -> None:
    async def slow(items: list[int]) -> list[int]:
        await asyncio.sleep(0.005)
        return items

    async def main() -> None:
        batcher: Batcher[int, int] = Batcher(slow, max_batch_size=3, max_delay_s=0.01)
        futures = [batcher.put(i) for i in range(20)]
        await batcher.close()
        assert all(f.done() for f in futures)
        assert [f.result() for f in futures] == list(range(20))
        with pytest.raises(BatcherClosed):
            batcher.put(99)

    asyncio.run(main())


def test_a_lone_item_is_not_held_for_the_whole_delay() -> None:
    async def echo(items: list[int]) -> list[int]:
        return items

    async def main() -> float:
        batcher: Batcher[int, int] = Batcher(echo, max_batch_size=64, max_delay_s=5.0)
        started = time.perf_counter()
        assert await batcher.put(1) == 1
        took = time.perf_counter() - started
        await batcher.close()
        return took

    assert asyncio.run(main()) < 0.5


def test_without_idle_close_a_batch_waits_for_its_delay_or_for_being_full() -> None:
    sizes: list[int] = []

    async def echo(items: list[int]) -> list[int]:
        sizes.append(len(items))
        return items

    async def main() -> tuple[float, float]:
        batcher: Batcher[int, int] = Batcher(
            echo, max_batch_size=4, max_delay_s=0.2, close_when_idle=False
        )
        started = time.perf_counter()
        await asyncio.gather(*(batcher.put(i) for i in range(4)))
        full = time.perf_counter() - started
        started = time.perf_counter()
        await batcher.put(5)
        alone = time.perf_counter() - started
        await batcher.close()
        return full, alone

    full, alone = asyncio.run(main())
    assert full < 0.15
    assert alone >= 0.19
    assert sizes == [4, 1]
