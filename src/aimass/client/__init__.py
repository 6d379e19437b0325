"""The Python SDK: :class:`Client` over httpx, speaking the ``/api/v1`` REST API.

Must not import the server side (``aimass.api``, ``aimass.store``) nor any ML
library at import time; ``models.log`` imports its serializer when called.
"""

from __future__ import annotations

from aimass.client._client import Client
from aimass.client._http import Progress, ServerUnreachable
from aimass.client.datasets import Datasets
from aimass.client.deployments import (
    DeploymentFailed,
    Deployments,
    DeploymentTimeout,
)
from aimass.client.jobs import AttemptStarted, Jobs, JobTimeout, LogEnd, LogEvent, LogLine
from aimass.client.models import Models, Ref
from aimass.client.pipelines import Pipelines, PipelineTimeout
from aimass.client.plugins import Plugins, PluginStatus
from aimass.client.projects import Project, Projects
from aimass.client.schedules import Schedules
from aimass.client.tokens import Tokens
from aimass.client.zoo import BuiltinDatasetInfo, Zoo, ZooEntry, ZooParam
from aimass.entities.inference import PredictResult

__all__ = [
    "AttemptStarted",
    "BuiltinDatasetInfo",
    "Client",
    "Datasets",
    "DeploymentFailed",
    "DeploymentTimeout",
    "Deployments",
    "JobTimeout",
    "Jobs",
    "LogEnd",
    "LogEvent",
    "LogLine",
    "Models",
    "PipelineTimeout",
    "Pipelines",
    "PluginStatus",
    "Plugins",
    "PredictResult",
    "Progress",
    "Project",
    "Projects",
    "Ref",
    "Schedules",
    "ServerUnreachable",
    "Tokens",
    "Zoo",
    "ZooEntry",
    "ZooParam",
]
