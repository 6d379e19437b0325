"""The demo a fresh ``aimass server --demo`` starts with: real models and a dataset."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

from aimass.config import Settings
from aimass.errors import NotFound
from aimass.registry.projects import DEFAULT_PROJECT

DEMO_MODEL = "iris-classifier"
DEMO_ONNX_MODEL = "breast-cancer-onnx"
DEMO_DATASET = "iris"


def seed_demo(settings: Settings) -> Iterator[str]:
    """Register the demo models and dataset unless they exist; yield what was done."""
    from aimass.api.state import AppState
    from aimass.datasets import service as datasets
    from aimass.datasets.service import DatasetVersionCreate
    from aimass.registry import service as registry
    from aimass.registry.entities import VersionCreate

    state = AppState.from_settings(settings)
    try:
        with state.db.session() as session:
            try:
                registry.read_model(session, DEFAULT_PROJECT, DEMO_MODEL)
                yield f"demo: model {DEMO_MODEL!r} already registered"
                return
            except NotFound:
                pass
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            iris_csv, iris_model, iris_acc, onnx_path, onnx_acc = _train(work)
            dsv = datasets.register_dataset_version(
                state.db,
                state.store,
                project=DEFAULT_PROJECT,
                name=DEMO_DATASET,
                upload=iris_csv,
                filename="iris.csv",
                spec=DatasetVersionCreate(description="sklearn's bundled iris data"),
            )
            yield f"demo: dataset {DEMO_DATASET!r} v{dsv.version} ({dsv.num_rows} rows)"
            version = registry.register_version(
                state.db,
                state.store,
                state.flavors,
                project=DEFAULT_PROJECT,
                name=DEMO_MODEL,
                upload=iris_model,
                filename="model.skops",
                spec=VersionCreate(
                    metrics={"accuracy": iris_acc},
                    tags={"task": "classification"},
                    description="LogisticRegression on iris (skops)",
                ),
                can_trust=False,
            )
            with state.db.session() as session:
                registry.set_alias(session, DEFAULT_PROJECT, DEMO_MODEL, "production", 1)
            yield f"demo: model {DEMO_MODEL!r} v{version.version} -> alias 'production'"
            onnx_version = registry.register_version(
                state.db,
                state.store,
                state.flavors,
                project=DEFAULT_PROJECT,
                name=DEMO_ONNX_MODEL,
                upload=onnx_path,
                filename="model.onnx",
                spec=VersionCreate(
                    metrics={"accuracy": onnx_acc},
                    tags={"task": "classification"},
                    description="LogisticRegression on breast_cancer (ONNX)",
                ),
                can_trust=False,
            )
            yield f"demo: model {DEMO_ONNX_MODEL!r} v{onnx_version.version} (ONNX)"
    finally:
        state.close()


def _train(work: Path) -> tuple[Path, Path, float, Path, float]:
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
    bx_train, bx_test, by_train, by_test = train_test_split(x, y, test_size=0.3, random_state=0)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    pipe.fit(bx_train.astype("float32"), by_train)
    onx = to_onnx(pipe, bx_train[:1].astype("float32"), options={"zipmap": False})
    onnx_path = work / "model.onnx"
    onnx_path.write_bytes(onx.SerializeToString())
    return (
        iris_csv,
        iris_model,
        float(clf.score(x_test, y_test)),
        onnx_path,
        float(pipe.score(bx_test.astype("float32"), by_test)),
    )
