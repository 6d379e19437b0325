"""The composition root: services start in order and stop in reverse, leader-only
services wait for leadership, and a route's write wakes a loop through the notifier."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from aimass.config import Settings
from aimass.errors import Unavailable
from aimass.loop_service import LoopService
from aimass.platform import LocalNotifier, Platform
from aimass.scheduler.leader import Leadership
from conftest import start_server


class Recorder(LoopService):
    """A loop that writes its name to a shared journal when it starts, ticks and stops."""

    def __init__(self, name: str, journal: list[str], interval: float = 3600.0) -> None:
        super().__init__(interval)
        self.name = name
        self.journal = journal
        self.ticks = 0
        self.ticked = threading.Event()

    def start(self) -> None:
        self.journal.append(f"start {self.name}")
        super().start()

    async def stop(self, timeout: float = 10.0) -> None:
        self.journal.append(f"stop {self.name}")
        await super().stop(timeout)

    async def run_once(self) -> None:
        self.ticks += 1
        self.ticked.set()


def test_services_start_in_order_and_stop_in_reverse(settings: Settings) -> None:
    platform = Platform.from_settings(settings)
    platform.db.upgrade()
    journal: list[str] = []
    first, second = Recorder("first", journal), Recorder("second", journal)
    platform.services.add(first, "every")
    platform.services.add(second, "leader", topics=("pipelines",))

    async def main() -> None:
        await platform.start()
        try:
            for loop in (first, second):  # each ticks once at start (this process leads)
                assert await asyncio.to_thread(loop.ticked.wait, 5)
        finally:
            await platform.stop()

    asyncio.run(main())
    kinds = [(r.name, r.where) for r in platform.services.registered]
    assert kinds == [
        ("leadership", "every"),
        ("deployment-reconciler", "every"),
        ("autoscaler", "every"),
        ("prediction-log-writer", "every"),
        ("drift-watcher", "leader"),
        ("node-monitor", "every"),
        ("alert-evaluator", "leader"),
        ("orphan-sweeper", "leader"),
        ("first", "every"),
        ("second", "leader"),
    ]
    assert journal == ["start first", "start second", "stop second", "stop first"]


def test_jobs_services_declare_where_they_run(settings: Settings) -> None:
    settings = settings.model_copy(update={"jobs": True, "job_sandbox": "none"})
    platform = Platform.from_settings(settings)
    platform.db.upgrade()
    with pytest.raises(Unavailable, match="--jobs"):
        platform.scheduler  # noqa: B018  (not built before start)

    async def main() -> list[tuple[str, str, tuple[str, ...]]]:
        await platform.start()
        try:
            assert platform.scheduler.leadership is platform.leadership
            return [(r.name, r.where, r.topics) for r in platform.services.registered]
        finally:
            await platform.stop()

    assert asyncio.run(main()) == [
        ("leadership", "every", ()),
        ("deployment-reconciler", "every", ("deployments",)),
        ("autoscaler", "every", ()),
        ("prediction-log-writer", "every", ()),
        ("drift-watcher", "leader", ()),
        ("node-monitor", "every", ()),
        ("alert-evaluator", "leader", ()),
        ("orphan-sweeper", "leader", ()),
        ("scheduler", "every", ("jobs",)),
        ("log-shipper", "every", ()),
        ("placement", "leader", ("jobs",)),
        ("pipeline-runner", "leader", ("jobs", "pipelines")),
        ("schedule-runner", "leader", ("schedules",)),
    ]


def test_a_leader_only_service_ticks_only_while_this_process_leads(settings: Settings) -> None:
    platform = Platform.from_settings(settings)
    platform.db.upgrade()
    journal: list[str] = []
    everywhere = Recorder("everywhere", journal, interval=0.02)
    leader_only = Recorder("leader-only", journal, interval=0.02)
    platform.services.add(everywhere, "every")
    platform.services.add(leader_only, "leader")
    other = Leadership(platform.db)  # another process's scheduler, in effect
    assert other.try_acquire()

    async def main() -> None:
        await platform.start()
        try:
            deadline = time.monotonic() + 30
            while everywhere.ticks < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert everywhere.ticks >= 3  # the every-process service runs...
            assert leader_only.ticks == 0  # ...and the leader-only one waits for the lease
            await asyncio.to_thread(other.release)
            assert await asyncio.to_thread(leader_only.ticked.wait, 5)
        finally:
            await platform.stop()

    asyncio.run(main())


def test_the_local_notifier_calls_each_subscriber_of_a_topic() -> None:
    notifier = LocalNotifier()
    calls: list[str] = []
    notifier.subscribe("jobs", lambda: calls.append("a"))
    notifier.subscribe("jobs", lambda: 1 / 0)  # type: ignore[func-returns-value]
    notifier.subscribe("jobs", lambda: calls.append("b"))
    notifier.subscribe("deployments", lambda: calls.append("c"))
    notifier.publish("jobs")
    assert calls == ["a", "b"]
    with pytest.raises(ValueError, match="unknown topic"):
        notifier.subscribe("nope", lambda: None)  # type: ignore[arg-type]


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[httpx.Client, Recorder]]:
    platform = Platform.from_settings(settings)
    listener = Recorder("listener", [])
    platform.services.add(listener, "every", topics=("jobs",))
    for live in start_server(settings, platform):
        with httpx.Client(
            base_url=live.url, headers={"Authorization": f"Bearer {live.admin_token}"}
        ) as http:
            yield http, listener


def test_a_route_write_wakes_the_loop_through_the_notifier(
    served: tuple[httpx.Client, Recorder],
) -> None:
    http, listener = served
    deadline = time.monotonic() + 5
    while listener.ticks < 1 and time.monotonic() < deadline:  # its first tick, at start
        time.sleep(0.01)
    assert listener.ticks == 1
    listener.ticked.clear()
    answer = http.post("/api/v1/jobs", json={"kind": "train", "entry": "noop"})
    assert answer.status_code == 201, answer.text
    # The interval is an hour: only the route's notify("jobs") can have run this tick.
    assert listener.ticked.wait(5)
    assert listener.ticks == 2
