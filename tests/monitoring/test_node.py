"""Node metrics: node_exporter names from psutil; no GPU here, so the DCGM part is absent."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from aimass.monitoring.node import NodeCollector, gpu_samples
from aimass.store.db import Database


def test_node_metrics_use_node_exporter_names() -> None:
    registry = CollectorRegistry()
    registry.register(NodeCollector())
    text = generate_latest(registry).decode()
    for name in (
        'node_cpu_seconds_total{cpu="0",mode="idle"}',
        "node_load1 ",
        "node_memory_total_bytes ",
        "node_memory_available_bytes ",
        'node_filesystem_avail_bytes{mountpoint="/"}',
        "node_network_receive_bytes_total{",
    ):
        assert name in text


def test_without_nvml_the_gpu_metrics_are_silently_absent() -> None:
    registry = CollectorRegistry()
    registry.register(NodeCollector())
    text = generate_latest(registry).decode()
    if not gpu_samples():
        assert "DCGM_FI_DEV" not in text
    else:
        assert "DCGM_FI_DEV_GPU_UTIL{" in text


def test_node_history_is_sampled_downsampled_and_expired(db: Database) -> None:
    from aimass.monitoring.node_history import (
        NodeMonitor,
        downsample,
        list_nodes,
        node_history,
        record_sample,
    )

    db.upgrade()
    monitor = NodeMonitor(db, interval=5)
    live = monitor.tick()
    monitor.release()
    assert live is not None and live.memory_total_bytes > 0 and live.disk_total_bytes > 0
    now = live.at
    old = now - timedelta(hours=2)
    start = old.replace(second=0, microsecond=0)
    with db.session() as session:
        for i, cpu in enumerate((10.0, 20.0, 30.0)):  # three raw samples in one old minute
            record_sample(
                session,
                live.model_copy(
                    update={
                        "node": "n2",
                        "at": start + timedelta(seconds=5 * i),
                        "cpu_percent": cpu,
                    }
                ),
            )
        record_sample(
            session, live.model_copy(update={"node": "n2", "at": now - timedelta(days=9)})
        )
    with db.session() as session:
        downsample(session, now, retention_s=7 * 86400)
    with db.session() as session:
        history = node_history(session, "n2")
        nodes = {n.node: n for n in list_nodes(session, stale_s=15)}
    assert [(s.resolution_s, s.cpu_percent) for s in history] == [(60, 20.0)]
    assert history[0].at == start
    assert not nodes[live.node].down and nodes["n2"].down


def test_one_process_per_node_samples(db: Database, tmp_path: Path) -> None:
    from aimass.monitoring.node_history import NodeMonitor

    db.upgrade()
    lock = tmp_path / "node-monitor.lock"
    first, second = NodeMonitor(db, lock_file=lock), NodeMonitor(db, lock_file=lock)
    assert first.tick() is not None
    assert second.tick() is None  # another worker on this node samples already
    first.release()
    assert second.tick() is not None  # the first one stopped: the second takes over
    second.release()
