"""Serving: loaded models, dynamic batching and the Open Inference Protocol codec.

This package owns what happens to a prediction request once a model is loaded:
the per-model dynamic batcher (``batcher``), the runner that merges concurrent
requests into one predict call (``runner``), the set of served deployments
(``repository``) that ``reconciler`` (a loop in every process) fills from the
desired deployments, swapping models in and out, the Open Inference
Protocol v2 codec (``protocol``) and the inference metrics. The HTTP side of
the inference path is ``aimass.api.inference``.

It holds no HTTP and must not import fastapi or starlette (nor ``aimass.api``).
It imports no heavy library at import time.
"""

from __future__ import annotations

from aimass.serving.batcher import Batcher, BatcherClosed
from aimass.serving.metrics import InferenceMetrics
from aimass.serving.repository import (
    BatchingConfig,
    ModelRepository,
    ServedDeployment,
    ServedVersion,
)
from aimass.serving.runner import ModelRunner

__all__ = [
    "Batcher",
    "BatcherClosed",
    "BatchingConfig",
    "InferenceMetrics",
    "ModelRepository",
    "ModelRunner",
    "ServedDeployment",
    "ServedVersion",
]
