"""Pipeline entities: steps, conditions, actions, and the runs that carry them out."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from aimass.entities.jobs import JobCreate

StepState = Literal["pending", "running", "succeeded", "failed", "skipped", "cancelled"]
RunState = Literal["pending", "running", "succeeded", "failed", "cancelled"]
Op = Literal[">", ">=", "<", "<=", "==", "!="]

#: A step's name: it appears in paths (``steps.<name>.outputs...``), so no dots.
STEP_NAME = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
#: States a run or a step never leaves.
TERMINAL_RUN_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
TERMINAL_STEP_STATES: frozenset[str] = frozenset({"succeeded", "failed", "skipped", "cancelled"})


class AliasMetric(BaseModel):
    """A metric of the version an alias points at; ``default`` when there is none yet."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=128)
    alias: str = Field(min_length=1, max_length=128)
    metric: str = Field(min_length=1, max_length=128)
    default: float | None = None


class AliasMetricOperand(BaseModel):
    """``{"alias_metric": {...}}``: compare with the metric of an aliased version."""

    model_config = ConfigDict(extra="forbid")

    alias_metric: AliasMetric


class LiteralOperand(BaseModel):
    """``{"value": ...}``: a literal, for a string that would otherwise read as a path."""

    model_config = ConfigDict(extra="forbid")

    value: str | bool | int | float | None


#: An operand: a number, a string (``steps.<step>.outputs.<key>...`` is a path into
#: an earlier step's outputs; any other string is a literal), or one of the forms above.
Operand = AliasMetricOperand | LiteralOperand | bool | int | float | str


class Condition(BaseModel):
    """``left op right``, evaluated as data: nothing in it is ever run as code."""

    model_config = ConfigDict(extra="forbid")

    left: Operand
    op: Op
    right: Operand


class SetAliasAction(BaseModel):
    """Point ``alias`` of ``model`` at ``version``, or at the version an earlier step output."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["set_alias"]
    model: str = Field(min_length=1, max_length=128)
    alias: str = Field(min_length=1, max_length=128)
    version: int | None = Field(default=None, ge=1)
    version_from: str | None = Field(
        default=None, max_length=512, description="steps.<step>.outputs.<key>"
    )

    @model_validator(mode="after")
    def _one_version(self) -> SetAliasAction:
        if (self.version is None) == (self.version_from is None):
            raise ValueError("set_alias takes exactly one of 'version' or 'version_from'")
        return self


class Step(BaseModel):
    """One step: a job to run or an action to take, after ``needs``, if ``when`` holds.

    A job's params may hold ``{"from": "steps.<step>.outputs.<key>"}``
    placeholders, filled in from earlier steps' outputs when it is submitted.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=STEP_NAME)
    job: JobCreate | None = None
    action: SetAliasAction | None = None
    needs: list[str] = Field(default_factory=list, max_length=64)
    when: Condition | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        if (self.job is None) == (self.action is None):
            raise ValueError("a step has exactly one of 'job' or 'action'")
        return self


class PipelineCreate(BaseModel):
    """A pipeline to create, or to replace when one of that name exists."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    description: str = Field(default="", max_length=4000)
    steps: list[Step] = Field(min_length=1, max_length=64)


class Pipeline(BaseModel):
    """A stored pipeline; ``steps`` are in an order that runs dependencies first."""

    id: int
    project: str
    name: str
    description: str
    steps: list[Step]
    revision: int
    created_at: datetime
    updated_at: datetime


class StepRun(BaseModel):
    """Where one step of a run stands: its state, job, outputs and why."""

    name: str
    state: StepState
    needs: list[str]
    job_id: int | None
    reason: str | None
    outputs: dict[str, JsonValue]
    started_at: datetime | None
    finished_at: datetime | None


class PipelineRun(BaseModel):
    """One run of a pipeline at a revision, with each step's state."""

    id: int
    project: str
    pipeline: str
    revision: int
    state: RunState
    reason: str | None
    trigger: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    steps: list[StepRun]
