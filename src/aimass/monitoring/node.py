"""Node metrics: psutil (CPU, memory, disk, network) and NVML GPUs, in node_exporter's names.

``NodeCollector`` is a Prometheus collector read at scrape time, with the
names node_exporter and DCGM's exporter use, so their dashboards and rules
work unchanged: ``node_cpu_seconds_total{cpu,mode}``, ``node_load1``,
``node_memory_total_bytes``, ``node_memory_available_bytes`` (node_exporter's
``MemTotal``/``MemAvailable`` in snake_case: promtool's lint rejects camelCase),
``node_filesystem_size_bytes``/``node_filesystem_avail_bytes{mountpoint}``,
``node_network_receive_bytes_total``/``node_network_transmit_bytes_total{device}``,
and per GPU ``DCGM_FI_DEV_GPU_UTIL``, ``DCGM_FI_DEV_FB_USED``/``DCGM_FI_DEV_FB_FREE``
(MiB) and ``DCGM_FI_DEV_GPU_TEMP``. Without NVML (no GPU, no driver, no
nvidia-ml-py) the GPU part is silently absent.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client import Metric

log = logging.getLogger("aimass.monitoring")


def gpu_samples() -> list[dict[str, Any]]:
    """Per GPU: index, UUID, util %, memory used/free (MiB), temperature; [] without NVML."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:
        return []
    found = []
    try:
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            found.append(
                {
                    "gpu": str(index),
                    "UUID": str(pynvml.nvmlDeviceGetUUID(handle)),
                    "util": float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
                    "fb_used": memory.used / 2**20,
                    "fb_free": memory.free / 2**20,
                    "temp": float(
                        pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
                    ),
                }
            )
    except Exception:
        log.debug("NVML query failed", exc_info=True)
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            log.debug("NVML shutdown failed", exc_info=True)
    return found


class NodeCollector(Collector):
    """This machine's CPU, memory, disk, network and GPU metrics, read at scrape time."""

    def __init__(self, node: str | None = None, mountpoints: tuple[str, ...] = ("/",)) -> None:
        self.node = node or socket.gethostname()
        self.mountpoints = mountpoints

    def collect(self) -> Iterator[Metric]:
        """The node's metrics (psutil; NVML when present)."""
        import psutil

        cpu = CounterMetricFamily(
            "node_cpu_seconds", "Seconds the CPUs spent in each mode.", labels=["cpu", "mode"]
        )
        for index, times in enumerate(psutil.cpu_times(percpu=True)):
            for mode in ("user", "system", "idle", "iowait", "irq", "softirq", "nice", "steal"):
                if hasattr(times, mode):
                    cpu.add_metric([str(index), mode], getattr(times, mode))
        yield cpu
        load1, load5, load15 = os.getloadavg()
        for name, value in (("node_load1", load1), ("node_load5", load5), ("node_load15", load15)):
            minutes = name.removeprefix("node_load")
            yield GaugeMetricFamily(name, f"{minutes}-minute load average.", value=value)
        memory = psutil.virtual_memory()
        yield GaugeMetricFamily("node_memory_total_bytes", "Memory in total.", value=memory.total)
        yield GaugeMetricFamily(
            "node_memory_available_bytes", "Memory available.", value=memory.available
        )
        size = GaugeMetricFamily(
            "node_filesystem_size_bytes", "Filesystem size.", labels=["mountpoint"]
        )
        avail = GaugeMetricFamily(
            "node_filesystem_avail_bytes", "Filesystem space available.", labels=["mountpoint"]
        )
        for mountpoint in self.mountpoints:
            try:
                usage = psutil.disk_usage(mountpoint)
            except OSError:
                continue
            size.add_metric([mountpoint], usage.total)
            avail.add_metric([mountpoint], usage.free)
        yield size
        yield avail
        received = CounterMetricFamily(
            "node_network_receive_bytes", "Bytes received.", labels=["device"]
        )
        sent = CounterMetricFamily("node_network_transmit_bytes", "Bytes sent.", labels=["device"])
        for device, counters in psutil.net_io_counters(pernic=True).items():
            received.add_metric([device], counters.bytes_recv)
            sent.add_metric([device], counters.bytes_sent)
        yield received
        yield sent
        gpus = gpu_samples()
        if gpus:
            labels = ["gpu", "UUID", "Hostname"]
            families = {
                key: GaugeMetricFamily(name, text, labels=labels)
                for key, name, text in (
                    ("util", "DCGM_FI_DEV_GPU_UTIL", "GPU utilization (%)."),
                    ("fb_used", "DCGM_FI_DEV_FB_USED", "GPU memory used (MiB)."),
                    ("fb_free", "DCGM_FI_DEV_FB_FREE", "GPU memory free (MiB)."),
                    ("temp", "DCGM_FI_DEV_GPU_TEMP", "GPU temperature (C)."),
                )
            }
            for gpu in gpus:
                for key, family in families.items():
                    family.add_metric([gpu["gpu"], gpu["UUID"], self.node], gpu[key])
            yield from families.values()
