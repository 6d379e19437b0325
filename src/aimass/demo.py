"""The demo a fresh ``aimass server --demo`` starts with: real models, deployed, and a dataset."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aimass.config import Settings
from aimass.errors import NotFound
from aimass.registry.projects import DEFAULT_PROJECT

if TYPE_CHECKING:
    from aimass.platform import Platform

DEMO_MODEL = "iris-classifier"
DEMO_ONNX_MODEL = "breast-cancer-onnx"
DEMO_DATASET = "iris"


@dataclass(frozen=True)
class _DemoModel:
    name: str
    path: Path
    accuracy: float
    description: str


def seed_demo(settings: Settings) -> Iterator[str]:
    """Register and deploy the demo models and dataset unless present; yield what was done."""
    from aimass.datasets import service as datasets
    from aimass.datasets.service import DatasetVersionCreate
    from aimass.deployments import service as deployments
    from aimass.deployments.entities import DeploymentCreate
    from aimass.platform import Platform
    from aimass.registry import service as registry
    from aimass.registry.entities import VersionCreate

    platform = Platform.from_settings(settings)
    try:
        with platform.db.session() as session:
            try:
                registry.read_model(session, DEFAULT_PROJECT, DEMO_MODEL)
                yield f"demo: model {DEMO_MODEL!r} already registered"
                return
            except NotFound:
                pass
        with tempfile.TemporaryDirectory() as tmp:
            iris_csv, models = _train(Path(tmp))
            dsv = datasets.register_dataset_version(
                platform.db,
                platform.store,
                project=DEFAULT_PROJECT,
                name=DEMO_DATASET,
                upload=iris_csv,
                filename="iris.csv",
                spec=DatasetVersionCreate(description="sklearn's bundled iris data"),
            )
            yield f"demo: dataset {DEMO_DATASET!r} v{dsv.version} ({dsv.num_rows} rows)"
            for demo in models:
                version = registry.register_version(
                    platform.db,
                    platform.store,
                    platform.flavors,
                    project=DEFAULT_PROJECT,
                    name=demo.name,
                    upload=demo.path,
                    filename=demo.path.name,
                    spec=VersionCreate(
                        metrics={"accuracy": demo.accuracy},
                        tags={"task": "classification", "demo": "true"},
                        description=demo.description,
                    ),
                    can_trust=False,
                )
                with platform.db.session() as session:
                    registry.set_alias(session, DEFAULT_PROJECT, demo.name, "production", 1)
                    deployments.create_deployment(
                        session,
                        DEFAULT_PROJECT,
                        DeploymentCreate(model=demo.name, alias="production"),
                    )
                yield (
                    f"demo: model {demo.name!r} v{version.version} ({version.flavor}) "
                    "deployed, following alias 'production'"
                )
            yield _queue_training(platform)
    finally:
        platform.close()


def _queue_training(platform: Platform) -> str:
    """Queue a training job on the demo dataset: it runs as soon as the scheduler starts."""
    from aimass.jobs import service as jobs
    from aimass.jobs.entities import JobCreate

    spec = JobCreate(
        kind="train",
        entry="sklearn.sgd_classifier",
        dataset=DEMO_DATASET,
        params={"epochs": 30, "learning_rate": 0.1, "model_name": "iris-sgd"},
    )
    with platform.db.session() as session:
        job = jobs.submit_job(session, DEFAULT_PROJECT, spec, platform.catalog)
    return f"demo: training job {job.id} queued (watch it: aimass jobs logs {job.id} -f)"


def _train(work: Path) -> tuple[Path, list[_DemoModel]]:
    import skops.io
    from skl2onnx import to_onnx
    from sklearn.datasets import load_breast_cancer, load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    iris = load_iris(as_frame=True)
    iris_csv = work / "iris.csv"
    iris.frame.to_csv(iris_csv, index=False)
    x_train, x_test, y_train, y_test = train_test_split(
        iris.data.to_numpy(), iris.target.to_numpy(), test_size=0.3, random_state=0
    )
    clf = LogisticRegression(max_iter=500).fit(x_train, y_train)
    iris_model = work / "model.skops"
    skops.io.dump(clf, iris_model)

    x, y = load_breast_cancer(return_X_y=True)
    x = x.astype("float32")
    bx_train, bx_test, by_train, by_test = train_test_split(x, y, test_size=0.3, random_state=0)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(bx_train, by_train)
    onnx_path = work / "model.onnx"
    onx = to_onnx(pipe, bx_train[:1], options={"zipmap": False})
    onnx_path.write_bytes(onx.SerializeToString())
    return iris_csv, [
        _DemoModel(
            DEMO_MODEL,
            iris_model,
            float(clf.score(x_test, y_test)),
            "LogisticRegression on iris (skops)",
        ),
        _DemoModel(
            DEMO_ONNX_MODEL,
            onnx_path,
            float(pipe.score(bx_test, by_test)),
            "LogisticRegression on breast_cancer (ONNX)",
        ),
    ]
