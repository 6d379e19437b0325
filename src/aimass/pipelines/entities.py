"""Re-exports :mod:`aimass.entities.pipelines` (kept below the store)."""

from __future__ import annotations

from aimass.entities.pipelines import (
    STEP_NAME,
    TERMINAL_RUN_STATES,
    TERMINAL_STEP_STATES,
    AliasMetric,
    AliasMetricOperand,
    Condition,
    LiteralOperand,
    Op,
    Operand,
    Pipeline,
    PipelineCreate,
    PipelineRun,
    RunState,
    SetAliasAction,
    Step,
    StepRun,
    StepState,
)

__all__ = [
    "STEP_NAME",
    "TERMINAL_RUN_STATES",
    "TERMINAL_STEP_STATES",
    "AliasMetric",
    "AliasMetricOperand",
    "Condition",
    "LiteralOperand",
    "Op",
    "Operand",
    "Pipeline",
    "PipelineCreate",
    "PipelineRun",
    "RunState",
    "SetAliasAction",
    "Step",
    "StepRun",
    "StepState",
]
