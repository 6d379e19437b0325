"""Drift of a deployment's logged traffic against its reference, and the loop that watches it.

The reference is the training dataset on record for the version that answered
most of the window (``ModelVersion.lineage``), or a dataset version the caller
names. Features are the logged input columns the reference also has (by name;
by position when the model's signature names no columns). An uploaded
version names its training set in its ``training_dataset`` tag. Prediction drift:
the logged ``prediction`` column is compared with the reference's label column
(``target``, ``label``, ``y`` or ``class``) when it has one, as feature
``prediction``.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections import OrderedDict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from aimass.entities.monitoring import DriftReport
from aimass.errors import InvalidInput, NotFound
from aimass.loop_service import LoopService
from aimass.monitoring.drift import DriftDetector, DriftSettings
from aimass.monitoring.events import record_event
from aimass.monitoring.prediction_log import META
from aimass.monitoring.predictions import read_log

if TYPE_CHECKING:
    import pandas as pd

    from aimass.artifacts.store import ArtifactStore
    from aimass.plugins import Registries
    from aimass.plugins.slots import DriftTest
    from aimass.store.db import Database

log = logging.getLogger("aimass.monitoring")

LABELS = ("target", "label", "y", "class")
#: The tag an uploaded version names its training dataset in: ``"<dataset>:<version>"``.
TRAINING_TAG = "training_dataset"
_CACHE = 16


def load_dataset(
    db: Database, store: ArtifactStore, project: str, name: str, version: int
) -> pd.DataFrame:
    """A stored dataset version as a table (verified against its checksum)."""
    from aimass.datasets.profile import read_table
    from aimass.datasets.service import read_dataset_artifact

    with db.session() as session:
        found, key = read_dataset_artifact(session, project, name, version)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data"
        with path.open("wb") as out:
            store.read_to(key, found.sha256, out)
        return read_table(path, found.format)


def training_dataset(db: Database, project: str, model: str, version: int) -> tuple[str, int]:
    """The dataset version a model version was trained on; InvalidInput when none is on record.

    A job-made version has it in its lineage; an uploaded one may name it in its
    ``training_dataset`` tag (``"<dataset>:<version>"``).
    """
    from aimass.registry.service import read_version

    with db.session() as session:
        found = read_version(session, project, model, version)
    lineage = found.lineage
    if lineage.dataset is not None and lineage.dataset_version is not None:
        return lineage.dataset, lineage.dataset_version
    name, _, number = found.tags.get(TRAINING_TAG, "").rpartition(":")
    if name and number.isdigit():
        return name, int(number)
    raise InvalidInput(
        f"version {version} of model {model!r} has no training dataset on record; "
        f"name a reference dataset, or tag the version {TRAINING_TAG}=<dataset>:<version>"
    )
    return lineage.dataset, lineage.dataset_version


def reference_columns(db: Database, project: str, name: str, version: int) -> list[str]:
    """The column names of a dataset version (from its record, without reading it)."""
    from aimass.datasets.service import read_dataset_version

    with db.session() as session:
        return [c.name for c in read_dataset_version(session, project, name, version).columns]


def _align(window: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The window with the reference's feature names, and the features to compare."""
    label = next((c for c in LABELS if c in columns), None)
    inputs = [
        c
        for c in window.columns
        if c not in META and c != "prediction" and not c.startswith(("proba_", "output."))
    ]
    ref_features = [c for c in columns if c != label]
    features = [c for c in inputs if c in ref_features]
    if not features and len(inputs) == len(ref_features):
        window = window.rename(columns=dict(zip(inputs, ref_features, strict=True)))
        features = list(ref_features)
    if not features:
        raise InvalidInput("the logged inputs share no column with the reference dataset")
    if label is not None and "prediction" in window.columns:
        features.append("prediction")
    return window, features


class DriftService:
    """Drift reports of deployments' logged traffic; detectors are kept per reference."""

    def __init__(
        self,
        db: Database,
        store: ArtifactStore,
        tests: Registries | dict[str, DriftTest],
        settings: DriftSettings | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.tests = tests if isinstance(tests, dict) else {t.name: t for t in tests.drift_tests}
        self.settings = settings or DriftSettings()
        self._detectors: OrderedDict[tuple[object, ...], DriftDetector] = OrderedDict()

    def _detector(
        self, project: str, dataset: str, version: int, features: list[str], settings: DriftSettings
    ) -> DriftDetector:
        key = (project, dataset, version, tuple(features), settings)
        found = self._detectors.get(key)
        if found is None:
            reference = load_dataset(self.db, self.store, project, dataset, version)
            label = next((c for c in LABELS if c in reference.columns), None)
            if label is not None and "prediction" in features:
                reference = reference.assign(prediction=reference[label])
            found = DriftDetector(reference, self.tests, settings, features=features)
            self._detectors[key] = found
            while len(self._detectors) > _CACHE:
                self._detectors.popitem(last=False)
        self._detectors.move_to_end(key)
        return found

    def report(
        self,
        project: str,
        deployment: str,
        *,
        window_s: float = 300.0,
        end: datetime | None = None,
        reference_dataset: str | None = None,
        reference_version: int | None = None,
        alpha: float | None = None,
        numeric_test: str | None = None,
        categorical_test: str | None = None,
    ) -> DriftReport:
        """Drift of the last ``window_s`` seconds of logged rows (up to ``end``, default now).

        ``numeric_test`` and ``categorical_test`` name ``drift_tests`` registry entries (a
        plugin's among them) to use instead of the defaults (``ks`` and ``chi2``).
        """
        if (reference_dataset is None) != (reference_version is None):
            raise InvalidInput("name both reference_dataset and reference_version, or neither")
        if not 0 < window_s <= 7 * 86400:
            raise InvalidInput("window_s must be between 0 and 604800 seconds")
        end = end or datetime.now(UTC)
        start = end - timedelta(seconds=window_s)
        window = read_log(self.store, project, deployment, start=start, end=end)
        if window.empty:
            raise NotFound(
                f"no logged predictions of deployment {deployment!r} in the last {window_s:g} s"
            )
        if reference_dataset is None or reference_version is None:
            top = window.groupby(["_model", "_version"]).size().idxmax()
            reference_dataset, reference_version = training_dataset(
                self.db, project, str(top[0]), int(top[1])
            )
        columns = reference_columns(self.db, project, reference_dataset, reference_version)
        aligned, features = _align(window, columns)
        settings = replace(
            self.settings,
            alpha=alpha or self.settings.alpha,
            numeric_test=numeric_test or self.settings.numeric_test,
            categorical_test=categorical_test or self.settings.categorical_test,
        )
        detector = self._detector(project, reference_dataset, reference_version, features, settings)
        report = detector.check(aligned)
        return report.model_copy(
            update={
                "deployment": deployment,
                "project": project,
                "window_start": start,
                "window_end": end,
                "rows": len(aligned),
            }
        )


class DriftWatcher(LoopService):
    """Checks every deployment's recent traffic for drift; a newly drifted feature is an event."""

    name = "drift-watcher"

    def __init__(
        self,
        service: DriftService,
        *,
        interval: float = 30.0,
        window_s: float = 300.0,
        min_rows: int = 200,
    ) -> None:
        super().__init__(interval)
        self.service = service
        self.window_s = window_s
        self.min_rows = min_rows
        #: The features found drifted at the last check, per (project, deployment).
        self.drifted: dict[tuple[str, str], set[str]] = {}
        #: The largest score/threshold ratio at the last check, per deployment (alerts).
        self.scores: dict[str, float] = {}

    async def run_once(self) -> None:
        """One check of every deployment (off the event loop)."""
        await asyncio.to_thread(self.check_all)

    def check_all(self) -> list[DriftReport]:
        """Check each deployment; record an event per feature that starts drifting."""
        from aimass.store.orm import DeploymentRow

        with self.service.db.session() as session:
            found = [(row.project.name, row.name) for row in session.scalars(select(DeploymentRow))]
        reports = []
        for project, deployment in found:
            try:
                report = self.service.report(project, deployment, window_s=self.window_s)
            except (NotFound, InvalidInput) as exc:
                log.debug("no drift check for %s/%s: %s", project, deployment, exc)
                continue
            if report.rows < self.min_rows:
                continue
            reports.append(report)
            self.scores[deployment] = max(
                (f.score / f.threshold for f in report.features if f.threshold > 0), default=0.0
            )
            self._events(project, deployment, report)
        return reports

    def _events(self, project: str, deployment: str, report: DriftReport) -> None:
        now = set(report.drifted)
        before = self.drifted.get((project, deployment), set())
        self.drifted[(project, deployment)] = now
        started = sorted(now - before)
        if not started:
            return
        by_name = {f.feature: f for f in report.features}
        with self.service.db.session() as session:
            for feature in started:
                drift = by_name[feature]
                record_event(
                    session,
                    project=project,
                    kind="drift",
                    subject=deployment,
                    message=(
                        f"feature {feature!r} of deployment {deployment!r} drifted: "
                        f"{drift.distance} {drift.score:.3g} > {drift.threshold:.3g}, "
                        f"{drift.test} p = {drift.p_value:.2g}"
                    ),
                    details=drift.model_dump(mode="json"),
                )
