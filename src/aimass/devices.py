"""The accelerators this node has (NVIDIA GPUs, from the driver; no library needed), and
the GPUs given to the model being loaded.

A served model gets GPUs from the node's serving placement (``serving.gpu_placement``):
the reconciler loads it inside ``assigned_gpus(...)``, and a flavor asks
``torch_device(torch)`` or ``onnx_providers(ort)`` where to put it. A runner process
is started with ``CUDA_VISIBLE_DEVICES`` naming its GPUs (empty when given none), so
inside it they are numbered from 0 (``_host`` calls ``give_process_gpus``). Where torch or
ONNX Runtime sees no CUDA device (no driver, a CPU-only wheel), the model runs on the
CPU and says so (``device`` in its runner's facts).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

_ASSIGNED: ContextVar[tuple[str, ...]] = ContextVar("aimass_assigned_gpus", default=())


def detect_gpus(declared: str | None = None) -> list[str]:
    """The NVIDIA GPU indices on this node ("0", "1", ...), from the driver's /proc entries,
    or as ``declared`` (the ``gpus`` setting: ``0,1``; ``none`` for none) says."""
    if declared is not None:
        names = [g.strip() for g in declared.split(",") if g.strip()]
        return [] if [n.lower() for n in names] in ([], ["none"]) else names
    visible = visible_gpus()
    if visible is not None:  # this process was given some (Ray, a scheduler): as it numbers them
        return [str(i) for i in range(len(visible))]
    root = Path("/proc/driver/nvidia/gpus")
    try:
        return [str(i) for i in range(len(list(root.iterdir())))]
    except OSError:
        return []


def visible_gpus() -> list[str] | None:
    """The GPUs ``CUDA_VISIBLE_DEVICES`` leaves this process (None: not restricted)."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return [g.strip() for g in value.split(",") if g.strip()]


def child_visible_devices(gpus: Sequence[str]) -> str:
    """``CUDA_VISIBLE_DEVICES`` for a child process given ``gpus`` (as this process numbers
    them): the same devices, named as this process's own ``CUDA_VISIBLE_DEVICES`` names them."""
    visible = visible_gpus()
    if visible is None:
        return ",".join(gpus)
    return ",".join(visible[int(g)] if g.isdigit() and int(g) < len(visible) else g for g in gpus)


def gpu_env(gpus: Sequence[str]) -> dict[str, str]:
    """A child model process sees exactly the GPUs given to its model: none when given none."""
    return {"CUDA_VISIBLE_DEVICES": child_visible_devices(gpus)}


def gpu_devices(gpus: Sequence[str]) -> list[str]:
    """The device nodes a sandboxed process given GPUs needs (the driver's, every GPU's:
    CUDA opens them; ``CUDA_VISIBLE_DEVICES`` says which it may use)."""
    return sorted(glob.glob("/dev/nvidia*")) if gpus else []


def gpus_argv(gpus: Sequence[str]) -> list[str]:
    """A runner host's ``--gpus N`` option: it sees its GPUs as 0 .. N-1."""
    return ["--gpus", str(len(gpus))] if gpus else []


@contextmanager
def assigned_gpus(gpus: Sequence[str]) -> Iterator[None]:
    """Within this block, a model being loaded is given ``gpus`` (indices as this process
    numbers them)."""
    token = _ASSIGNED.set(tuple(gpus))
    try:
        yield
    finally:
        _ASSIGNED.reset(token)


def give_process_gpus(gpus: Sequence[str]) -> None:
    """Every model this process (a runner process) loads from here on is given ``gpus``."""
    _ASSIGNED.set(tuple(gpus))


def current_gpus() -> tuple[str, ...]:
    """The GPUs given to the model being loaded (empty: the CPU)."""
    return _ASSIGNED.get()


def torch_device(torch: Any) -> str:
    """Where torch should put the model being loaded: ``cuda:N`` for its first GPU when
    torch sees that device, else ``cpu``."""
    gpus = _ASSIGNED.get()
    if not gpus or not gpus[0].isdigit():
        return "cpu"
    index = int(gpus[0])
    try:
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            return "cpu"
    except Exception:  # a broken driver: the CPU still works
        return "cpu"
    return f"cuda:{index}"


def onnx_providers(ort: Any) -> list[Any]:
    """ONNX Runtime's execution providers for the model being loaded: CUDA on its first GPU
    when this onnxruntime build has it, then the CPU."""
    gpus = _ASSIGNED.get()
    if gpus and gpus[0].isdigit() and "CUDAExecutionProvider" in ort.get_available_providers():
        return [("CUDAExecutionProvider", {"device_id": int(gpus[0])}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]
