"""What the zoo's PyTorch entries share: setup, params, checkpoints and the epoch loop.

Nothing here imports torch at module level: each helper imports it when called,
inside the job's process, so ``aimass.zoo`` stays cheap to import. A deep entry
is: ``setup`` (threads, seed, device), build the model, then ``run_epochs`` —
which resumes from the job's latest checkpoint, trains and scores each epoch,
logs the metrics and checkpoints (``torch.save`` of state dicts, read back with
``weights_only=True``: tensors and plain values only, never pickled code).
Classifiers go on through ``_classify`` and export through ``_torch_export``.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from aimass.job_environment import job_threads

if TYPE_CHECKING:
    from aimass.runtime import JobContext


class TorchParams(BaseModel):
    """Params every deep entry takes; each family adds its own."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(default=20, ge=1, le=10_000)
    learning_rate: float = Field(default=1e-3, gt=0, le=10)
    batch_size: int = Field(default=32, ge=1, le=65_536)
    weight_decay: float = Field(default=0.0, ge=0, le=1, description="L2 penalty (AdamW)")
    seed: int = Field(default=0, ge=0)
    model_name: str | None = Field(
        default=None, min_length=1, max_length=256, description="default: <dataset>-<model>"
    )
    sleep_s: float = Field(default=0.0, ge=0, le=60, description="pause after each epoch")


class EpochParams(Protocol):
    """What ``run_epochs`` reads of a deep entry's params (``TorchParams`` has it all)."""

    epochs: int
    seed: int
    sleep_s: float


def setup(seed: int) -> tuple[Any, Any]:
    """Import torch, size its thread pool to the job's CPU share, seed it; (torch, device).

    The executor puts the job's CPU share in ``OMP_NUM_THREADS`` and its GPUs in
    ``CUDA_VISIBLE_DEVICES``; a job given no GPU sees none and runs on the CPU.
    """
    import torch

    torch.set_num_threads(job_threads())
    torch.manual_seed(seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch, device


def record_pid(ctx: JobContext) -> None:
    """Put this attempt's pid in the outputs (``pid_<attempt>``): what operators signal."""
    ctx.set_outputs(**{f"pid_{ctx.attempt}": os.getpid()})


def dump_state(epoch: int, **parts: Any) -> bytes:
    """A checkpoint: ``torch.save`` of the epoch and the given state dicts, as bytes."""
    import torch

    buffer = io.BytesIO()
    torch.save({"epoch": epoch, **parts}, buffer)
    return buffer.getvalue()


def load_state(blob: bytes) -> dict[str, Any]:
    """Read a checkpoint back: tensors and plain containers only (``weights_only=True``)."""
    import torch

    state: dict[str, Any] = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    return state


def batches(torch: Any, rows: int, size: int) -> Iterator[Any]:
    """Shuffled index tensors of ``size`` rows (the last may be shorter), from torch's seed."""
    order = torch.randperm(rows)
    for start in range(0, rows, size):
        yield order[start : start + size]


def run_epochs(
    ctx: JobContext,
    params: EpochParams,
    model: Any,
    optimizer: Any,
    train_epoch: Callable[[int], Mapping[str, float]],
    score: Callable[[], Mapping[str, float]],
) -> tuple[int, float]:
    """Resume, then train epoch by epoch, logging and checkpointing each; (resumed_from, seconds).

    ``train_epoch(epoch)`` runs one pass and returns its training metrics;
    ``score()`` returns the validation metrics, logged beside them at the epoch.
    Each epoch reseeds torch from (seed, epoch), so a resumed run shuffles,
    samples and drops out in its later epochs as an uninterrupted one would.
    """
    import torch

    start = 0
    blob = ctx.load_checkpoint()
    if blob is not None:
        state = load_state(blob)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["epoch"])
        print(f"resuming from the checkpoint of epoch {start}", flush=True)
    ctx.set_outputs(**{f"start_{ctx.attempt}": start})
    began = time.monotonic()
    for epoch in range(start + 1, params.epochs + 1):
        torch.manual_seed(params.seed * 100_003 + epoch)
        model.train()
        metrics = dict(train_epoch(epoch))
        model.eval()
        with torch.no_grad():
            metrics.update(score())
        ctx.log_metrics(metrics, step=epoch)
        shown = " ".join(f"{name}={value:.4f}" for name, value in metrics.items())
        print(f"epoch {epoch}/{params.epochs}: {shown}", flush=True)
        state_dicts = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
        ctx.save_checkpoint(dump_state(epoch, **state_dicts), step=epoch)
        if params.sleep_s:
            time.sleep(params.sleep_s)
    return start, time.monotonic() - began


def classifier_labels(y: Any) -> tuple[Any, Any]:
    """The sorted classes of labels ``y`` and each row's class index (int64)."""
    import numpy as np

    classes, index = np.unique(y, return_inverse=True)
    return classes, index.astype(np.int64)
