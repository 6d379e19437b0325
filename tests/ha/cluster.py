"""Several ``aimass server`` processes on one PostgreSQL database and one artifact folder.

For the high-availability tests and ``benchmarks/ha``: each server is its own
process on loopback (its own home, port and token), so it can be killed with
``SIGKILL`` or paused with ``SIGSTOP`` like a real node.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from aimass.config import Settings, settings_env
from ha.netns import Network
from jobs.conftest import wait_for

TERMINAL = ("succeeded", "failed", "cancelled")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Node:
    """One server process of the cluster."""

    settings: Settings
    process: subprocess.Popen[bytes] | None = None
    token: str = ""
    starts: int = 0

    @property
    def url(self) -> str:
        """Where it listens."""
        return f"http://{self.settings.host}:{self.settings.port}"

    @property
    def pid(self) -> int:
        """Its process id (the server runs in-process with one worker)."""
        assert self.process is not None
        return self.process.pid

    def api(self, timeout: float = 30) -> httpx.Client:
        """An httpx client with this node's own admin token."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=timeout
        )


@dataclass
class Cluster:
    """``size`` servers sharing ``database_url`` and an artifact folder under ``root``.

    With a ``network``, server ``i`` runs in its namespace, on its own address
    (``network.address(i)``), as on a host of its own; else all on loopback.
    """

    database_url: str
    root: Path
    size: int = 2
    overrides: dict[str, Any] = field(default_factory=dict)
    network: Network | None = None
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        for i in range(self.size):
            base: dict[str, Any] = {
                "home": self.root / f"node{i}",
                "database_url": self.database_url,
                "artifacts": str(self.root / "artifacts"),
                "port": free_port(),
                "host": "127.0.0.1" if self.network is None else self.network.address(i),
                "tune_gc": False,
                "jobs": True,
                "job_slots": 4.0,
                "leader_lease_s": 2.0,
                "job_lease_s": 5.0,
            }
            self.nodes.append(Node(Settings(**{**base, **self.overrides})))

    def start(self, i: int, timeout_s: float = 60) -> Node:
        """Start node ``i`` and wait until it answers; its token comes from its own home."""
        node = self.nodes[i]
        env = {**os.environ, **settings_env(node.settings)}
        log = self.root / f"node{i}-{node.starts}.log"
        with log.open("wb") as out:
            prefix = [] if self.network is None else self.network.prefix(i)
            node.process = subprocess.Popen(
                [*prefix, sys.executable, "-m", "aimass.cli", "server"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        node.starts += 1
        deadline = time.monotonic() + timeout_s
        while True:
            assert node.process.poll() is None, f"node {i} exited at start: see {log.name}"
            try:
                ready = httpx.get(f"{node.url}/v2/health/ready", timeout=2, trust_env=False)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"node {i} did not start"
            time.sleep(0.05)
        node.token = node.settings.token_file.read_text().strip()
        return node

    def start_all(self) -> None:
        """Start every node, one after the other (the first one migrates the database)."""
        for i in range(self.size):
            self.start(i)

    def signal(self, i: int, sig: signal.Signals) -> None:
        """Send ``sig`` to node ``i`` (SIGKILL also reaps it)."""
        process = self.nodes[i].process
        assert process is not None
        process.send_signal(sig)
        if sig == signal.SIGKILL:
            process.wait(timeout=10)

    def stop(self, i: int) -> None:
        """Stop node ``i`` gracefully (SIGTERM), or kill it if it hangs."""
        process = self.nodes[i].process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        """Stop every node."""
        for i in range(self.size):
            self.stop(i)

    def lease(self) -> tuple[int | None, int]:
        """(index of the node holding the scheduler's lease, or None; the lease's epoch)."""
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                row = conn.execute(
                    text(
                        "SELECT holder, epoch, expires_at > now() AS live FROM leader_leases "
                        "WHERE name = 'aimass.scheduler'"
                    )
                ).one_or_none()
        finally:
            engine.dispose()
        if row is None or row.holder is None:
            return None, 0 if row is None else int(row.epoch)
        pid = int(row.holder.split(":")[1])
        for i, node in enumerate(self.nodes):
            if node.process is not None and node.process.pid == pid:
                return i, int(row.epoch)
        return None, int(row.epoch)

    def wait_for_leader(self, timeout: float = 15, other_than: int | None = None) -> int:
        """The index of the leading node, once one leads (and is not ``other_than``)."""
        deadline = time.monotonic() + timeout
        while True:
            leader, _ = self.lease()
            if leader is not None and leader != other_than:
                return leader
            assert time.monotonic() < deadline, "no node took the lead"
            time.sleep(0.02)


def wait_job(
    api: httpx.Client, job_id: int, until: Any = None, timeout: float = 60
) -> dict[str, Any]:
    """Poll the job every 10 ms until ``until(job)`` holds (default: it ended)."""
    return wait_for(api, job_id, until or (lambda j: j["state"] in TERMINAL), timeout, poll=0.01)


def noop(api: httpx.Client, sleep_s: float = 0.0) -> int:
    """Submit the built-in ``noop`` job; its id."""
    answer = api.post(
        "/api/v1/jobs", json={"kind": "train", "entry": "noop", "params": {"sleep_s": sleep_s}}
    )
    assert answer.status_code == 201, answer.text
    job_id: int = answer.json()["id"]
    return job_id
