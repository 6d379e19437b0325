"""Node metrics: node_exporter names from psutil; no GPU here, so the DCGM part is absent."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from aimass.monitoring.node import NodeCollector, gpu_samples


def test_node_metrics_use_node_exporter_names() -> None:
    registry = CollectorRegistry()
    registry.register(NodeCollector())
    text = generate_latest(registry).decode()
    for name in (
        'node_cpu_seconds_total{cpu="0",mode="idle"}',
        "node_load1 ",
        "node_memory_MemTotal_bytes ",
        "node_memory_MemAvailable_bytes ",
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
