"""Params of the built-in entries: checked when a job is submitted, defaults filled in."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoopParams(_Params):
    """``noop``: return at once, or after ``sleep_s``."""

    sleep_s: float = Field(default=0.0, ge=0, le=3600)


class SgdParams(_Params):
    """``sklearn.sgd_classifier``."""

    target: str | None = Field(default=None, description="label column (default: the last)")
    epochs: int = Field(default=20, ge=1, le=10_000)
    learning_rate: float = Field(default=0.01, gt=0, le=10)
    alpha: float = Field(default=1e-4, ge=0, le=10, description="L2 regularization")
    test_size: float = Field(default=0.25, gt=0, lt=1)
    seed: int = Field(default=0, ge=0)
    model_name: str | None = Field(default=None, description="default: <dataset>-sgd")
    register_model: bool = Field(
        default=True, description="register the model, else keep it as an artifact"
    )
    sleep_s: float = Field(default=0.0, ge=0, le=60, description="pause after each epoch")


class _ModelRef(_Params):
    model: str = Field(min_length=1, max_length=256)
    version: int | str = Field(
        default="latest", description="a version number, an alias, or 'latest'"
    )
    target: str | None = Field(default=None, description="label column (default: the last)")


class EvaluateParams(_ModelRef):
    """``evaluate``: the version to evaluate on the job's dataset."""

    task: Literal["classification", "regression"] | None = None


class BatchPredictParams(_ModelRef):
    """``batch_predict``: the version to predict the job's dataset with."""

    chunk_rows: int = Field(default=1000, ge=1, le=1_000_000)
    target: str | None = Field(default=None, description="a column to leave out, if present")


class SearchDimension(_Params):
    """One tuned parameter: a float or int range (``log`` for a log scale) or choices."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[JsonValue] | None = None

    @model_validator(mode="after")
    def _complete(self) -> SearchDimension:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical dimension needs 'choices'")
        elif self.low is None or self.high is None or self.low >= self.high:
            raise ValueError("a range needs 'low' < 'high'")
        elif self.log and self.low <= 0:
            raise ValueError("a log range needs 'low' > 0")
        return self


class TuneParams(_Params):
    """``tune``: search ``space`` for the trial entry's params that maximize ``metric``."""

    entry: str = Field(default="sklearn.sgd_classifier", description="the entry each trial runs")
    space: dict[str, SearchDimension] = Field(min_length=1)
    base_params: dict[str, JsonValue] = Field(default_factory=dict)
    n_trials: int = Field(default=8, ge=1, le=500)
    parallelism: int = Field(default=2, ge=1, le=64)
    metric: str = Field(default="accuracy", min_length=1)
    direction: Literal["maximize", "minimize"] = "maximize"
    trial_cpu: float = Field(default=1.0, gt=0, le=1024)
    model_name: str | None = Field(default=None, description="default: <dataset>-tuned")
    seed: int = Field(default=0, ge=0)
