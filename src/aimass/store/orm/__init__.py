"""ORM rows (``*Row``) and their conversion to entities, one module per part of the platform."""

from aimass.store.orm.auth import TokenRow
from aimass.store.orm.base import Base, ProjectRow, aware_utc, utcnow
from aimass.store.orm.datasets import DatasetRow, DatasetVersionRow
from aimass.store.orm.deployments import DeploymentReplicaRow, DeploymentRow
from aimass.store.orm.evaluation import EvaluationRow
from aimass.store.orm.jobs import (
    JobCheckpointRow,
    JobEventRow,
    JobLogChunkRow,
    JobMetricRow,
    JobRow,
)
from aimass.store.orm.leadership import LeaderLeaseRow
from aimass.store.orm.monitoring import MonitoringEventRow, NodeSampleRow
from aimass.store.orm.pipelines import PipelineRow, PipelineRunRow, PipelineStepRow, ScheduleRow
from aimass.store.orm.registry import (
    AliasRow,
    ModelRow,
    ModelTagRow,
    ModelVersionMetricRow,
    ModelVersionRow,
    ModelVersionTagRow,
)

__all__ = [
    "AliasRow",
    "Base",
    "DatasetRow",
    "DatasetVersionRow",
    "DeploymentReplicaRow",
    "DeploymentRow",
    "EvaluationRow",
    "JobCheckpointRow",
    "JobEventRow",
    "JobLogChunkRow",
    "JobMetricRow",
    "JobRow",
    "LeaderLeaseRow",
    "ModelRow",
    "ModelTagRow",
    "ModelVersionMetricRow",
    "ModelVersionRow",
    "ModelVersionTagRow",
    "MonitoringEventRow",
    "NodeSampleRow",
    "PipelineRow",
    "PipelineRunRow",
    "PipelineStepRow",
    "ProjectRow",
    "ScheduleRow",
    "TokenRow",
    "aware_utc",
    "utcnow",
]
