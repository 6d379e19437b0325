"""The SDK entry point: :class:`Client` and its resource groups."""

from __future__ import annotations

from types import TracebackType

import httpx

from aimass.client._http import HttpSession
from aimass.client.datasets import Datasets
from aimass.client.deployments import Deployments, Inputs
from aimass.client.jobs import Jobs
from aimass.client.models import Models
from aimass.client.monitoring import Monitoring
from aimass.client.pipelines import Pipelines
from aimass.client.plugins import Plugins
from aimass.client.projects import Projects
from aimass.client.schedules import Schedules
from aimass.client.tokens import Tokens
from aimass.client.zoo import Zoo
from aimass.entities.auth import Principal
from aimass.entities.inference import PredictResult


class Client:
    """A connection to an aimass server; unset arguments come from ``ClientSettings``.

    ``url`` defaults to ``AIMASS_URL``, ``token`` to ``AIMASS_TOKEN`` or the token
    the local server saved under ``AIMASS_HOME``, ``project`` to ``AIMASS_PROJECT``.
    Every failed call raises the matching :mod:`aimass.errors` class, with
    ``status`` and ``request_id`` attributes.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        project: str | None = None,
        timeout: float = 60.0,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        from aimass.config import ClientSettings

        overrides: dict[str, str] = {}
        if url is not None:
            overrides["url"] = url
        if token is not None:
            overrides["token"] = token
        if project is not None:
            overrides["project"] = project
        settings = ClientSettings(**overrides)  # type: ignore[arg-type]
        self.url = settings.url.rstrip("/")
        self.project = settings.project
        self._http = HttpSession(
            self.url, settings.resolved_token(), self.project, timeout, transport=transport
        )
        self.models = Models(self._http)
        """Models, versions, aliases, search and bundles."""
        self.datasets = Datasets(self._http)
        """Datasets and their versions."""
        self.tokens = Tokens(self._http)
        """API tokens (admin)."""
        self.projects = Projects(self._http)
        """Projects."""
        self.deployments = Deployments(self._http)
        """Deployments: serve model versions, change and wait for them."""
        self.jobs = Jobs(self._http)
        """Jobs: run catalogue entries or your own code, follow logs, wait, cancel."""
        self.schedules = Schedules(self._http)
        """Schedules: cron rules that start a job or a pipeline run."""
        self.pipelines = Pipelines(self._http)
        """Pipelines: DAGs of steps with conditions; start runs and watch each step."""
        self.zoo = Zoo(self._http, self.jobs)
        """The model library: entries, built-in datasets, and training one."""
        self.monitoring = Monitoring(self._http)
        """Monitoring: prediction logs, their export, drift reports and events."""
        self.plugins = Plugins(self._http)
        """The server's plugins: which loaded, the slots they filled, why any failed."""

    def whoami(self) -> Principal:
        """Who the server thinks this client is: token name, role and project."""
        return Principal.model_validate(self._http.get_json("/api/v1/whoami"))

    def predict(self, name: str, X: Inputs, *, project: str | None = None) -> PredictResult:
        """Predict with deployment ``name``: rows, records, a numpy array or a DataFrame."""
        return self.deployments.predict(name, X, project=project)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(url={self.url!r}, project={self.project!r})"
