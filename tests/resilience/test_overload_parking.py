"""Parked connections are read again in bounded slices, as many as the cap has room for.

The gate (``AdmittedCount``) runs on a real event loop; each parked "connection" only
records the loop turn that read it again, so the tests see what one turn does.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from aimass.api.admission import MARGIN, PARK_S, SLICE, SWEEP_S, AdmittedCount


class Turns:
    """Counts the event loop's turns (a callback that reschedules itself each turn)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.n = 0
        self.loop = loop
        self._handle = loop.call_soon(self._tick)

    def _tick(self) -> None:
        self.n += 1
        self._handle = self.loop.call_soon(self._tick)

    def stop(self) -> None:
        self._handle.cancel()


class Connection:
    """A parked connection that records when it is read again (and, if ``gate``, whose
    request read then is admitted: it counts against the cap)."""

    def __init__(
        self, number: int, turns: Turns, read: list[tuple[int, int]], gate: AdmittedCount | None
    ) -> None:
        self.number, self.turns, self.read, self.gate = number, turns, read, gate

    def unpark(self) -> bool:
        self.read.append((self.number, self.turns.n))
        if self.gate is not None:
            self.gate.n += 1
        return True


async def _park(
    gate: AdmittedCount, count: int, *, admit: bool = False
) -> tuple[Turns, list[tuple[int, int]]]:
    loop = asyncio.get_running_loop()
    turns, read = Turns(loop), []
    for number in range(count):
        gate.park(Connection(number, turns, read, gate if admit else None), loop)
    return turns, read


def test_room_for_hundreds_is_filled_a_slice_per_loop_turn() -> None:
    """300 parked, room for 1,000: all are read within one sweep, at most SLICE a turn."""

    async def main() -> tuple[list[tuple[int, int]], int]:
        gate = AdmittedCount(cap=1000)
        turns, read = await _park(gate, 300)
        await asyncio.sleep(SWEEP_S * 4)
        turns.stop()
        return read, gate.parked

    read, parked = asyncio.run(main())
    assert [number for number, _ in read] == list(range(300))  # oldest first, all of them
    assert parked == 0
    per_turn = Counter(turn for _, turn in read)
    assert max(per_turn.values()) <= SLICE, per_turn
    assert len(per_turn) >= 300 // SLICE, per_turn  # spread over turns, not one


def test_a_full_cap_reads_a_margin_a_sweep_of_those_past_their_retry_after() -> None:
    """Cap full: nothing is read before PARK_S; after it, at most MARGIN a sweep (each
    would be refused again), oldest first, instead of all 200 in one turn."""

    async def main() -> tuple[float, list[tuple[int, int]]]:
        gate = AdmittedCount(cap=4)
        gate.n = 4
        loop = asyncio.get_running_loop()
        parked_at = loop.time()
        turns, read = await _park(gate, 200)
        first_read_at = 0.0
        while len(read) < 3 * MARGIN:
            await asyncio.sleep(SWEEP_S / 5)
            if read and not first_read_at:
                first_read_at = loop.time()
        turns.stop()
        return first_read_at - parked_at, list(read)

    waited, late = asyncio.run(main())
    assert waited >= PARK_S  # the cap is full: none is read before its Retry-After
    assert [number for number, _ in late] == list(range(len(late)))  # oldest first
    per_turn = Counter(turn for _, turn in late)
    assert max(per_turn.values()) <= MARGIN, per_turn  # not all 200 at once


def test_room_in_the_cap_reads_that_many_at_once_and_no_more() -> None:
    """Cap of 4 empty, 10 parked a moment ago: the next sweep reads the 4 parked longest,
    whose requests fill the cap; the other 6 wait (for room, or their Retry-After)."""

    async def main() -> tuple[float, list[int]]:
        gate = AdmittedCount(cap=4)
        loop = asyncio.get_running_loop()
        parked_at = loop.time()
        turns, read = await _park(gate, 10, admit=True)
        await asyncio.sleep(SWEEP_S * 3)
        turns.stop()
        return loop.time() - parked_at, [number for number, _ in read]

    waited, read = asyncio.run(main())
    assert read[:4] == [0, 1, 2, 3]
    assert read == [0, 1, 2, 3] or waited >= PARK_S  # (a loaded machine's long sleep)
