"""Serving: loaded models, dynamic batching and the lean Open Inference Protocol path.

This package owns what happens to a prediction request once a model is loaded:
the per-model dynamic batcher (``batcher``), the runner that merges concurrent
requests into one predict call (``runner``), the set of served deployments the
reconciler swaps models in and out of (``repository``), the Open Inference
Protocol v2 codec (``protocol``), the plain ASGI app that answers ``/v2``,
``/metrics`` and the JSON predict route (``inference_app``), and its metrics.

It must not import fastapi or starlette (nor ``aimass.api``): the inference path
is plain ASGI so that no framework layer costs time per request. It imports no
heavy library at import time.
"""

from __future__ import annotations

from aimass.serving.batcher import Batcher, BatcherClosed
from aimass.serving.inference_app import InferenceApp
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
    "InferenceApp",
    "InferenceMetrics",
    "ModelRepository",
    "ModelRunner",
    "ServedDeployment",
    "ServedVersion",
]
