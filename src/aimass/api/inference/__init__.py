"""The lean inference path's HTTP: a plain ASGI app for /v2, /metrics and predict.

No framework: it shares ``api.edge`` with the control plane and takes its
models, batching and protocol from ``aimass.serving``.
"""

from __future__ import annotations

from aimass.api.inference.app import InferenceApp

__all__ = ["InferenceApp"]
