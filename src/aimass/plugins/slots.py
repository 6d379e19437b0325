"""The extension points the next features fill: one small Protocol per registry slot.

Each slot of :class:`aimass.plugins.Registries` is a ``Registry`` over one of
these. They are empty until the issue that uses them (monitoring, fusion,
cleaning, more executors) fills them; a plugin may register into them today.
Tables are pandas frames and tensors numpy arrays, as everywhere in aimass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from aimass.config import Settings


class FeatureExtractor(Protocol):
    """Turns a table into the features a model reads (new columns, same rows)."""

    @property
    def name(self) -> str:
        """The name a job or deployment refers to it by."""
        ...

    def transform(self, table: pd.DataFrame) -> pd.DataFrame:
        """The features of ``table``."""
        ...


class DataCleaner(Protocol):
    """Mends or drops rows of a table before training or prediction."""

    @property
    def name(self) -> str:
        """The name a job refers to it by."""
        ...

    def clean(self, table: pd.DataFrame) -> pd.DataFrame:
        """``table`` cleaned (rows may be dropped, none added)."""
        ...


class FusionStrategy(Protocol):
    """Combines the outputs of several models into one answer."""

    @property
    def name(self) -> str:
        """The name a deployment refers to it by."""
        ...

    def fuse(self, outputs: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
        """One output from the models' outputs (one array per model, same rows)."""
        ...


class DriftTest(Protocol):
    """Compares live values of one feature with the training data's."""

    @property
    def name(self) -> str:
        """The name monitoring settings refer to it by."""
        ...

    def p_value(self, reference: np.ndarray, current: np.ndarray) -> float:
        """How likely ``current`` comes from ``reference``'s distribution (small: drift)."""
        ...


class AlertSink(Protocol):
    """Somewhere alerts go (a webhook, a chat, a pager)."""

    @property
    def name(self) -> str:
        """The name alert rules refer to it by."""
        ...

    def send(self, alert: Mapping[str, Any]) -> None:
        """Deliver one alert (Alertmanager's fields); raise if it could not be delivered."""
        ...


class ExecutorFactory(Protocol):
    """Builds an executor (``aimass.executors.base.Executor``) from the settings."""

    @property
    def name(self) -> str:
        """The value of ``AIMASS_JOB_EXECUTOR`` that selects it."""
        ...

    def create(self, settings: Settings) -> Any:
        """A new executor; the platform checks it is an ``Executor``."""
        ...
