"""The dynamic batcher on its own, without HTTP."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from aimass.serving.batcher import Batcher, BatcherClosed, InFlight


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
    # An hour's delay: answering within a minute can only be the idle close, however
    # loaded the machine (an upper bound in milliseconds measured the machine instead).
    async def echo(items: list[int]) -> list[int]:
        return items

    async def main() -> None:
        batcher: Batcher[int, int] = Batcher(echo, max_batch_size=64, max_delay_s=3600.0)
        assert await asyncio.wait_for(batcher.put(1), timeout=60) == 1
        await batcher.close()

    asyncio.run(main())


def test_without_idle_close_a_batch_waits_for_its_delay_or_for_being_full() -> None:
    sizes: list[int] = []

    async def echo(items: list[int]) -> list[int]:
        sizes.append(len(items))
        return items

    async def main() -> float:
        # Full: closed by its size, long before its hour's delay.
        full: Batcher[int, int] = Batcher(
            echo, max_batch_size=4, max_delay_s=3600.0, close_when_idle=False
        )
        await asyncio.wait_for(asyncio.gather(*(full.put(i) for i in range(4))), timeout=60)
        await full.close()
        # Alone: held for its whole delay (a lower bound: a loaded machine only adds).
        lone: Batcher[int, int] = Batcher(
            echo, max_batch_size=4, max_delay_s=0.2, close_when_idle=False
        )
        started = asyncio.get_running_loop().time()
        await lone.put(5)
        alone = asyncio.get_running_loop().time() - started
        await lone.close()
        return alone

    assert asyncio.run(main()) >= 0.19
    assert sizes == [4, 1]


def test_a_full_queue_refuses_at_once_and_the_running_batch_does_not_count() -> None:
    from aimass.errors import Overloaded

    release = asyncio.Event()

    async def held(items: list[int]) -> list[int]:
        await release.wait()
        return items

    async def main() -> list[int]:
        batcher: Batcher[int, int] = Batcher(held, max_batch_size=1, max_delay_s=0, max_queue=2)
        running = batcher.put(0)
        await asyncio.sleep(0)  # the batch of item 0 starts and holds
        await asyncio.sleep(0)
        queued = [batcher.put(1), batcher.put(2)]
        with pytest.raises(Overloaded, match="2 requests are queued"):
            batcher.put(3)
        release.set()
        results = await asyncio.gather(running, *queued)
        assert await batcher.put(4) == 4  # room again once the queue drained
        await batcher.close()
        return results

    assert asyncio.run(main()) == [0, 1, 2]


def test_an_item_that_waited_past_max_wait_is_refused_not_run() -> None:
    from aimass.errors import Overloaded

    release = asyncio.Event()
    ran: list[int] = []

    async def held(items: list[int]) -> list[int]:
        ran.extend(items)
        if 0 in items:
            await release.wait()
        return items

    async def main() -> None:
        batcher: Batcher[int, int] = Batcher(held, max_batch_size=1, max_delay_s=0, max_wait_s=0.1)
        running = batcher.put(0)
        await asyncio.sleep(0)  # the batch of item 0 starts and holds
        await asyncio.sleep(0)
        late = batcher.put(1)
        await asyncio.sleep(0.3)  # item 1 waits past the bound behind the held batch
        release.set()
        assert await running == 0
        with pytest.raises(Overloaded, match=r"waited over 0\.1 s") as refused:
            await late
        assert refused.value.reason == "queue_wait" and refused.value.status == 429
        assert await batcher.put(2) == 2  # one that is on time runs
        await batcher.close()

    asyncio.run(main())
    assert ran == [0, 2]


# ------------------------------------------------------------------ in-flight-aware closing


@dataclass
class Counted:
    """A batcher whose batches close on an in-flight count, and the batch sizes it ran."""

    in_flight: InFlight
    batcher: Batcher[int, int]
    sizes: list[int] = field(default_factory=list)


@pytest.fixture
def counted() -> Callable[..., Counted]:
    """Make an echoing batcher that waits for the requests in flight: an hour's delay
    unless given, so only the count or a full batch closes its batches."""

    def make(
        max_batch_size: int = 64, max_delay_s: float = 3600.0, in_flight: InFlight | None = None
    ) -> Counted:
        in_flight = in_flight or InFlight()
        sizes: list[int] = []

        async def echo(items: list[int]) -> list[int]:
            sizes.append(len(items))
            return items

        batcher: Batcher[int, int] = Batcher(
            echo, max_batch_size=max_batch_size, max_delay_s=max_delay_s, in_flight=in_flight
        )
        return Counted(in_flight, batcher, sizes)

    return make


def test_a_lone_admitted_request_closes_its_batch_at_once_as_joined(
    counted: Callable[..., Counted],
) -> None:
    async def main() -> dict[str, int]:
        c = counted()
        in_flight, batcher = c.in_flight, c.batcher
        with in_flight.admit():
            assert in_flight.count == 1
            future = batcher.put(1)
            assert in_flight.count == 0  # joined by the put, not by leaving the block
        assert await asyncio.wait_for(future, timeout=60) == 1
        assert in_flight.count == 0
        await batcher.close()
        return dict(batcher.closed_by)

    # Not held for its hour: nothing else was in flight, so the batch closed as "joined".
    assert asyncio.run(main()) == {"joined": 1}


def test_a_batch_waits_for_every_admitted_request_still_reading_its_body(
    counted: Callable[..., Counted],
) -> None:
    c = counted()
    in_flight, batcher, sizes = c.in_flight, c.batcher, c.sizes

    async def main() -> tuple[list[int], dict[str, int]]:
        bodies = [asyncio.Event() for _ in range(3)]

        async def request(i: int) -> int:
            with in_flight.admit():
                await bodies[i].wait()  # its body is still arriving
                future = batcher.put(i)
            return await future

        tasks = [asyncio.create_task(request(i)) for i in range(3)]
        await asyncio.sleep(0)  # all three admitted
        assert in_flight.count == 3
        bodies[0].set()
        for _ in range(5):
            await asyncio.sleep(0)
        assert sizes == []  # two requests are still in flight: the batch waits for them
        bodies[1].set()
        bodies[2].set()
        results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
        await batcher.close()
        return results, dict(batcher.closed_by)

    results, closed_by = asyncio.run(main())
    assert results == [0, 1, 2]
    assert sizes == [3]
    assert closed_by == {"joined": 1}


def test_a_request_that_fails_before_joining_does_not_hold_the_batch(
    counted: Callable[..., Counted],
) -> None:
    async def main() -> dict[str, int]:
        c = counted()
        in_flight, batcher = c.in_flight, c.batcher
        bad_body = asyncio.Event()

        async def bad_request() -> None:
            with in_flight.admit():
                await bad_body.wait()
                raise ValueError("unparsable body")  # leaves without a put

        bad = asyncio.create_task(bad_request())
        await asyncio.sleep(0)
        with in_flight.admit():
            good = batcher.put(7)
        await asyncio.sleep(0)
        assert not good.done()  # waits for the other request in flight
        bad_body.set()
        assert await asyncio.wait_for(good, timeout=60) == 7
        with pytest.raises(ValueError, match="unparsable"):
            await bad
        assert in_flight.count == 0
        await batcher.close()
        return dict(batcher.closed_by)

    assert asyncio.run(main()) == {"joined": 1}


def test_max_batch_size_and_max_delay_still_close_a_batch_with_requests_in_flight(
    counted: Callable[..., Counted],
) -> None:
    # Full: 4 of the 6 admitted requests make a full batch before the rest joins.
    full = counted(max_batch_size=4)
    # Late: a request that never joins holds the batch only for max_delay.
    late = counted(max_batch_size=4, max_delay_s=0.05, in_flight=full.in_flight)
    in_flight = full.in_flight

    async def main() -> dict[str, int]:
        held = asyncio.Event()

        async def request(i: int, wait: bool) -> int:
            with in_flight.admit():
                if wait:
                    await held.wait()
                future = full.batcher.put(i)
            return await future

        tasks = [asyncio.create_task(request(i, i >= 4)) for i in range(6)]
        for _ in range(5):
            await asyncio.sleep(0)
        assert full.sizes == [4]
        held.set()
        await asyncio.gather(*tasks)
        await full.batcher.close()
        never = asyncio.Event()

        async def stuck() -> None:
            with in_flight.admit():
                await never.wait()

        stuck_task = asyncio.create_task(stuck())
        await asyncio.sleep(0)
        assert await asyncio.wait_for(late.batcher.put(9), timeout=60) == 9
        stuck_task.cancel()
        await late.batcher.close()
        return {**full.batcher.closed_by, **late.batcher.closed_by}

    assert asyncio.run(main()) == {"full": 1, "joined": 1, "max_delay": 1}
    assert (full.sizes, late.sizes) == ([4, 2], [1])


def test_requests_arriving_while_a_compute_bound_model_runs_form_the_next_batch() -> None:
    sizes: list[int] = []
    started = threading.Event()
    release = threading.Event()

    def model(items: list[int]) -> list[int]:
        sizes.append(len(items))
        if len(sizes) == 1:
            started.set()
            release.wait(60)  # the model is busy while the next requests arrive
        return items

    async def main() -> dict[str, int]:
        in_flight = InFlight()
        batcher: Batcher[int, int] = Batcher(
            model, max_batch_size=64, max_delay_s=3600.0, in_flight=in_flight
        )

        async def request(i: int) -> int:
            with in_flight.admit():
                future = batcher.put(i)
            return await future

        first = asyncio.create_task(request(0))
        await asyncio.to_thread(started.wait, 60)
        later = [asyncio.create_task(request(i)) for i in range(1, 31)]
        await asyncio.sleep(0)
        release.set()
        assert await asyncio.gather(first, *later) == list(range(31))
        await batcher.close()
        return dict(batcher.closed_by)

    assert asyncio.run(main()) == {"joined": 2}
    assert sizes == [1, 30]


def test_without_an_in_flight_count_the_reason_is_idle_full_or_nodelay() -> None:
    async def echo(items: list[int]) -> list[int]:
        return items

    async def main() -> list[dict[str, int]]:
        idle: Batcher[int, int] = Batcher(echo, max_batch_size=64, max_delay_s=3600.0)
        await idle.put(1)
        full: Batcher[int, int] = Batcher(echo, max_batch_size=2, max_delay_s=3600.0)
        await asyncio.gather(full.put(1), full.put(2))
        nodelay: Batcher[int, int] = Batcher(echo, max_batch_size=8, max_delay_s=0)
        await nodelay.put(1)
        for batcher in (idle, full, nodelay):
            await batcher.close()
        return [dict(b.closed_by) for b in (idle, full, nodelay)]

    assert asyncio.run(main()) == [{"idle": 1}, {"full": 1}, {"nodelay": 1}]


def test_a_request_served_without_a_batcher_stops_counting_at_once() -> None:
    from aimass.serving.batcher import join_in_flight

    async def main() -> list[int]:
        in_flight = InFlight()
        counts = []
        with in_flight.admit():
            counts.append(in_flight.count)
            join_in_flight()  # what an unbatched runner does before it predicts
            counts.append(in_flight.count)
        counts.append(in_flight.count)
        return counts

    assert asyncio.run(main()) == [1, 0, 0]


def test_up_to_max_concurrent_batches_run_at_once_and_later_requests_wait_as_one_batch() -> None:
    sizes: list[int] = []
    threads: set[str] = set()
    entered = threading.Semaphore(0)
    release = threading.Event()
    slots = [2]  # asked before each batch, as Ray replicas' live count would be

    def model(items: list[int]) -> list[int]:
        sizes.append(len(items))
        threads.add(threading.current_thread().name)
        entered.release()
        release.wait(60)  # every batch holds its slot until released
        return [10 * i for i in items]

    async def main() -> list[int]:
        in_flight = InFlight()
        batcher: Batcher[int, int] = Batcher(
            model, 64, 3600.0, in_flight=in_flight, max_concurrent_batches=lambda: slots[0]
        )

        async def request(i: int) -> int:
            with in_flight.admit():
                future = batcher.put(i)
            return await future

        first = [asyncio.create_task(request(0))]
        await asyncio.to_thread(entered.acquire, True, 60)
        first.append(asyncio.create_task(request(1)))  # a second batch starts beside it
        await asyncio.to_thread(entered.acquire, True, 60)
        later = [asyncio.create_task(request(i)) for i in range(2, 12)]
        await asyncio.sleep(0.05)
        assert sizes == [1, 1], "both slots are busy: the later requests wait"
        release.set()
        results = list(await asyncio.gather(*first, *later))
        await batcher.close()
        assert dict(batcher.closed_by) == {"joined": 3}
        return results

    assert asyncio.run(main()) == [10 * i for i in range(12)]
    assert sizes == [1, 1, 10]  # what queued while both ran went as one batch
    assert len(threads) == 2


def test_close_waits_for_every_batch_in_flight() -> None:
    done: list[int] = []

    def slow(items: list[int]) -> list[int]:
        time.sleep(0.05)
        done.extend(items)
        return items

    async def main() -> None:
        batcher: Batcher[int, int] = Batcher(
            slow, max_batch_size=1, max_delay_s=0, max_concurrent_batches=3
        )
        futures = [batcher.put(i) for i in range(6)]
        await batcher.close()
        assert all(f.done() for f in futures)
        with pytest.raises(BatcherClosed):
            batcher.put(7)

    asyncio.run(main())
    assert sorted(done) == list(range(6))
