"""One deployment replica as a Ray actor: the model loaded on a Ray node, called by batch.

``serving.ray_replicas`` makes actors of :class:`ReplicaActor` (``ray.remote``), names
and places them, and routes every aimass server's batches to them.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aimass.deployments.entities import ResolvedVersion
from aimass.devices import assigned_gpus, detect_gpus
from aimass.errors import Unavailable
from aimass.flavors.base import dedicate_threads, replica_threads, running_threads
from aimass.serving.model_cache import local_copy

if TYPE_CHECKING:
    from aimass.artifacts.store import ArtifactStore
    from aimass.flavors.base import Batch, Flavor, Predictor


def _actor_has_gpus() -> bool:
    """Whether Ray gave the running actor GPUs."""
    import ray

    return bool(ray.get_gpu_ids())


class ReplicaActor:
    """One model version loaded on a Ray node (the class Ray makes an actor of).

    A model that fails to load does not raise here (Ray would restart the actor
    for ever): ``info`` reports the error instead, and the server gives up on it.
    """

    def __init__(
        self, store: ArtifactStore, flavor: Flavor, version: dict[str, Any], cache_dir: str
    ) -> None:
        resolved = ResolvedVersion.model_validate(version)
        self.predictor: Predictor | None = None
        self.error: str | None = None
        self.signature: dict[str, Any] | None = resolved.signature
        #: Seconds spent in ``call`` so far: over a stretch of wall time, how busy it was.
        self.busy_s = 0.0
        #: The model's thread pools, sized to the actor's CPU share (ORT ignores Ray's
        #: OMP_NUM_THREADS); None when Ray gave it no CPU (the libraries' defaults).
        self.threads = _actor_threads()
        try:
            path = local_copy(store, _cache_dir(cache_dir), resolved)
            if self.threads is not None:
                dedicate_threads(self.threads)
            # The GPUs Ray gave the actor (its CUDA_VISIBLE_DEVICES): the model goes there.
            with assigned_gpus(detect_gpus() if _actor_has_gpus() else ()):
                self.predictor = flavor.load(path, resolved.trusted)
            if self.threads is not None:
                dedicate_threads(self.threads)  # the pools of what the load imported
        except Exception as exc:
            self.error = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            return
        if self.signature is None and self.predictor.signature is not None:
            self.signature = self.predictor.signature.model_dump()

    def info(self) -> dict[str, Any]:
        """Where this replica runs (its Ray node id), and what it serves or why it cannot."""
        import ray

        return {
            "node": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "error": self.error,
            "signature": self.signature,
            "named": callable(getattr(self.predictor, "predict_named", None)),
            "busy_s": self.busy_s,
            "threads": running_threads(self.predictor),
        }

    def call(self, method: str, batch: Batch, names: list[str] | None) -> tuple[bool, Any]:
        """Run ``predict``, ``predict_proba`` or ``predict_named`` on the batch.

        Returns ``(True, result)``, or ``(False, exception)`` for the model's own error,
        which the server raises as it is (a Ray task error would wrap it).
        """
        predictor = self.predictor
        if predictor is None:
            return False, Unavailable(f"the Ray replica could not load its model: {self.error}")
        started = time.perf_counter()
        try:
            if method == "predict_named":
                return True, predictor.predict_named(batch, names or [])  # type: ignore[attr-defined]
            if method == "predict_proba":
                proba = predictor.predict_proba(batch)
                return True, None if proba is None else np.asarray(proba)
            return True, np.asarray(predictor.predict(batch))
        except Exception as exc:
            return False, exc
        finally:
            self.busy_s += time.perf_counter() - started


def _actor_threads() -> int | None:
    """The CPU share Ray gave this actor, as a thread count; None when it has none."""
    import ray

    assigned: dict[str, float] = ray.get_runtime_context().get_assigned_resources()  # type: ignore[no-untyped-call]
    cpu = assigned.get("CPU", 0.0)
    return replica_threads(cpu) if cpu > 0 else None


def _cache_dir(preferred: str) -> Path:
    """The server's model cache when this node can write there, else one under /tmp."""
    folder = Path(preferred)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / "aimass-ray-models"
