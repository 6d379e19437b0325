"""Deployments through the SDK: create, change, wait for and call served models."""

from __future__ import annotations

import builtins
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal, TypeAlias, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from aimass.client._http import HttpSession
from aimass.entities.deployments import (
    DEFAULT_MAX_QUEUE,
    Autoscaling,
    Batching,
    Combiner,
    Deployment,
    DeploymentCreate,
    DeploymentUpdate,
    Resources,
    TrafficRoute,
)
from aimass.entities.inference import PredictResult
from aimass.errors import AimassError, InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

Route = TrafficRoute | Mapping[str, object]
"""A traffic route: a :class:`TrafficRoute` or ``{"version": 1, "weight": 90}``."""

Inputs: TypeAlias = (
    "np.ndarray | pd.DataFrame | Sequence[Sequence[object]] | Sequence[Mapping[str, object]]"
)
"""What :meth:`Deployments.predict` takes: a 2-D array, rows, records or a DataFrame."""

_Spec = TypeVar("_Spec", bound=BaseModel)


class DeploymentFailed(AimassError):
    """A deployment's replicas could not load it; the message carries their reasons."""

    code = "deployment_failed"
    status = 0


class DeploymentTimeout(AimassError, TimeoutError):
    """A deployment did not become ready within the time given to wait for it."""

    code = "deployment_timeout"
    status = 0


def _spec(cls: type[_Spec], **fields: object) -> _Spec:
    """Validate a request here, so a bad argument fails before any request is sent."""
    try:
        return cls.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidInput(f"invalid {where or 'request'}: {first['msg']}") from None


CombinerSpec = Combiner | str | Mapping[str, object]
"""An ensemble's combiner: ``"soft_vote"``, ``{"strategy": "stacking", "meta": ...}``."""

AutoscalingSpec = Autoscaling | Mapping[str, object]
"""Autoscaling settings: ``{"min_replicas": 1, "max_replicas": 3, ...}`` (Ray Serve's names)."""


def _autoscaling(autoscaling: AutoscalingSpec | None) -> Autoscaling | None:
    if autoscaling is None or isinstance(autoscaling, Autoscaling):
        return autoscaling
    return _spec(Autoscaling, **autoscaling)


def _combiner(combiner: CombinerSpec | None) -> Combiner | None:
    if combiner is None or isinstance(combiner, Combiner):
        return combiner
    if isinstance(combiner, str):
        return _spec(Combiner, strategy=combiner)
    return _spec(Combiner, **combiner)


def _routes(traffic: Iterable[Route] | None) -> builtins.list[TrafficRoute] | None:
    if traffic is None:
        return None
    return [r if isinstance(r, TrafficRoute) else _spec(TrafficRoute, **r) for r in traffic]


def _plain(value: object) -> object:
    """JSON-ready data: numpy scalars and arrays unboxed, NaN as null, tuples as lists."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing values
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return _plain(value.tolist())
    if hasattr(value, "isoformat"):  # datetimes, pandas Timestamps
        return str(value.isoformat())
    return value


def _inputs_json(x: object) -> builtins.list[object]:
    """The ``inputs`` of a predict body from an array, a DataFrame, rows or records."""
    module = type(x).__module__
    if module.startswith("pandas") and hasattr(x, "columns") and hasattr(x, "to_dict"):
        rows: object = x.to_dict(orient="records")
    elif module.startswith(("numpy", "pandas")) and hasattr(x, "tolist"):
        rows = x.tolist()
    else:
        rows = x
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence):
        raise InvalidInput(
            "X must be a 2-D numpy array, a pandas DataFrame, a list of rows or a list of records"
        )
    plain = _plain(list(rows))
    assert isinstance(plain, list)
    if not plain:
        raise InvalidInput("X has no rows")
    return plain


def _quote(value: str) -> str:
    """One URL path segment, escaped so a name can never change the route."""
    return quote(value, safe="")


def _one_line(text: str) -> str:
    return " ".join(text.split())


class Deployments:
    """Served models in the client's project (``client.deployments``)."""

    def __init__(self, http: HttpSession) -> None:
        self._http = http

    def create(
        self,
        model: str,
        *,
        name: str | None = None,
        version: int | None = None,
        alias: str | None = None,
        traffic: Iterable[Route] | None = None,
        replicas: int = 1,
        max_batch_size: int = 64,
        max_delay_ms: float = 2.0,
        max_queue: int = DEFAULT_MAX_QUEUE,
        cpu: float = 1.0,
        gpu: int = 0,
        memory_mb: int | None = None,
        combiner: CombinerSpec | None = None,
        runner: str = "auto",
        autoscaling: AutoscalingSpec | None = None,
    ) -> Deployment:
        """Serve one version, an alias it follows, or weighted ``traffic`` routes.

        Give exactly one of ``version``, ``alias`` or ``traffic``; ``name``
        defaults to the model's. It loads within about a second: see :meth:`wait_ready`.
        With ``combiner`` the ``traffic`` routes are the members of ONE ensemble model
        (a route may name another ``model``): ``mean``, ``weighted_mean``,
        ``hard_vote``, ``soft_vote``, ``stacking`` (with ``meta``) or a plugin's strategy.
        ``max_queue`` bounds the requests waiting in each server process; past it a
        request is answered 429 with ``Retry-After`` at once. ``runner``: ``process`` (one
        runner process per node that every worker feeds), ``in_process`` (each worker
        holds the model), ``ray`` (``replicas`` Ray actors placed across the cluster with
        ``cpu``/``gpu``/``memory_mb`` each; servers on ``--executor ray`` only) or ``auto``
        (process for formats that run code).
        ``autoscaling`` (with ``runner="process"``): ``min_replicas``, ``max_replicas``,
        ``target_ongoing_requests``, ``upscale_delay_s``, ``downscale_delay_s``,
        ``look_back_period_s``, as Ray Serve's ``autoscaling_config`` names them.
        """
        spec = _spec(
            DeploymentCreate,
            name=name,
            model=model,
            version=version,
            alias=alias,
            traffic=_routes(traffic),
            replicas=replicas,
            batching=_spec(
                Batching,
                max_batch_size=max_batch_size,
                max_delay_ms=max_delay_ms,
                max_queue=max_queue,
            ),
            resources=_spec(Resources, cpu=cpu, gpu=gpu, memory_mb=memory_mb, runner=runner),
            combiner=_combiner(combiner),
            autoscaling=_autoscaling(autoscaling),
        )
        answer = self._http.request(
            "POST",
            "/api/v1/deployments",
            params=self._http.scoped(),
            json_body=spec.model_dump(mode="json", exclude_none=True),
        )
        return Deployment.model_validate(answer.json())

    def list(self) -> builtins.list[Deployment]:
        """Every deployment in the project, with its replicas' state."""
        items = self._http.get_all("/api/v1/deployments", self._http.scoped())
        return [Deployment.model_validate(d) for d in items]

    def get(self, name: str) -> Deployment:
        """One deployment by name, with its routes and each replica's state."""
        data = self._http.get_json(self._path(name), self._http.scoped())
        return Deployment.model_validate(data)

    def update(
        self,
        name: str,
        *,
        version: int | None = None,
        alias: str | None = None,
        traffic: Iterable[Route] | None = None,
        replicas: int | None = None,
        max_batch_size: int | None = None,
        max_delay_ms: float | None = None,
        max_queue: int | None = None,
        cpu: float | None = None,
        gpu: int | None = None,
        memory_mb: int | None = None,
        combiner: CombinerSpec | None = None,
        autoscaling: AutoscalingSpec | Literal[False] | None = None,
    ) -> Deployment:
        """Change what a deployment serves or how; unset arguments stay as they are.

        Give at most one of ``version``, ``alias`` or ``traffic``. Replicas swap
        to the new revision without dropping requests in flight. ``autoscaling``
        replaces the settings whole (they apply without a reload); ``False`` turns it off.
        """
        batching: Batching | None = None
        resources: Resources | None = None
        changes_batching = any(v is not None for v in (max_batch_size, max_delay_ms, max_queue))
        changes_resources = cpu is not None or gpu is not None or memory_mb is not None
        if changes_batching or changes_resources:
            # The API replaces batching and resources whole; keep the fields not given.
            current = self.get(name)
            if changes_batching:
                batching = _spec(
                    Batching,
                    **{
                        **current.batching.model_dump(),
                        **_given(
                            max_batch_size=max_batch_size,
                            max_delay_ms=max_delay_ms,
                            max_queue=max_queue,
                        ),
                    },
                )
            if changes_resources:
                resources = _spec(
                    Resources,
                    **{
                        **current.resources.model_dump(),
                        **_given(cpu=cpu, gpu=gpu, memory_mb=memory_mb),
                    },
                )
        spec = _spec(
            DeploymentUpdate,
            version=version,
            alias=alias,
            traffic=_routes(traffic),
            replicas=replicas,
            batching=batching,
            resources=resources,
            combiner=_combiner(combiner),
            autoscaling=None if autoscaling is False else _autoscaling(autoscaling),
        )
        body = spec.model_dump(mode="json", exclude_none=True)
        if autoscaling is False:
            body["autoscaling"] = None
        answer = self._http.request(
            "PATCH",
            self._path(name),
            params=self._http.scoped(),
            json_body=body,
        )
        return Deployment.model_validate(answer.json())

    def delete(self, name: str) -> None:
        """Stop serving a deployment; requests in flight finish first."""
        self._http.request("DELETE", self._path(name), params=self._http.scoped())

    def wait_ready(self, name: str, timeout: float = 30.0, interval: float = 0.1) -> Deployment:
        """Poll until every replica serves the deployment's current routes, and return it.

        Raises :class:`DeploymentFailed` with the replicas' reasons when loading
        fails for good (a replica reports no ``retry_at``), and
        :class:`DeploymentTimeout` when ``timeout`` seconds pass first, its message
        naming a failure the replicas are still retrying.
        """
        deadline = time.monotonic() + timeout
        while True:
            deployment = self.get(name)
            failed = [r for r in deployment.replica_status if r.state == "failed"]
            if deployment.state == "failed" and any(r.retry_at is None for r in failed):
                reasons = [
                    f"replica {r.replica}: {_one_line(r.reason or 'no reason given')}"
                    for r in failed
                    if r.retry_at is None
                ]
                raise DeploymentFailed(
                    f"deployment {name!r} failed to load: " + ("; ".join(reasons) or "no reason")
                )
            if deployment.state == "ready" and self._serves_routes(deployment):
                return deployment
            if time.monotonic() >= deadline:
                state: str = deployment.state
                if failed:
                    why = "; ".join(_one_line(r.reason or "no reason given") for r in failed)
                    state = f"failing and retrying ({why})"
                raise DeploymentTimeout(f"deployment {name!r} is still {state} after {timeout:g} s")
            time.sleep(interval)

    def predict(self, name: str, X: Inputs, *, project: str | None = None) -> PredictResult:
        """Predict with a deployment: one prediction per row of ``X``.

        ``X`` is a 2-D numpy array, a list of rows, a list of records
        (``{"column": value}``) or a pandas DataFrame (sent as records).
        """
        params = {"project": project or self._http.project}
        answer = self._http.request(
            "POST",
            f"{self._path(name)}/predict",
            params=params,
            json_body={"inputs": _inputs_json(X)},
        )
        return PredictResult.model_validate(answer.json())

    def _serves_routes(self, deployment: Deployment) -> bool:
        """Whether every replica reports holding each version the routes resolve to.

        Right after an update the state still describes the previous revision
        until the replicas catch up, so ``ready`` alone is not enough.
        """
        expected: set[int] = set()
        aliases: Mapping[str, int] | None = None
        for route in deployment.routes:
            if route.version is not None:
                expected.add(route.version)
                continue
            if aliases is None:
                aliases = self._aliases(deployment.model)
            if route.alias is not None and route.alias in aliases:
                expected.add(aliases[route.alias])
        return all(expected <= set(r.versions) for r in deployment.replica_status)

    def _aliases(self, model: str) -> Mapping[str, int]:
        data = self._http.get_json(f"/api/v1/models/{_quote(model)}", self._http.scoped())
        aliases = data.get("aliases") if isinstance(data, dict) else None
        return aliases if isinstance(aliases, dict) else {}

    @staticmethod
    def _path(name: str) -> str:
        return f"/api/v1/deployments/{_quote(name)}"


def _given(**values: object) -> dict[str, object]:
    return {k: v for k, v in values.items() if v is not None}
