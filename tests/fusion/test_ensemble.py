"""Ensembles served as ONE model: combiners checked against numpy, stacking beats its members.

Members are scikit-learn models exported to ONNX and uploaded; the ensemble is
one deployment (``combiner``) answered at ``/v2/models/{name}/infer``, its
members batched by their own runners. The numpy references run the same ONNX
files with onnxruntime on the same rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tests.conftest import LiveServer, free_port, start_server
from tests.fusion.models import run_onnx, to_onnx

from aimass.config import Settings
from aimass.errors import InvalidInput
from aimass.fusion.stacking import fit_meta_model, out_of_fold_proba

FEATURES = 12


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("fusion")
    settings = Settings(
        home=home / "home", artifacts=str(home / "artifacts"), port=free_port(),
        tune_gc=False, jobs=False, reconcile_interval=0.1,
    )  # fmt: skip
    yield from start_server(settings)


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[Any]:
    import aimass

    with aimass.Client(url=server.url, token=server.admin_token) as c:
        yield c


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    x, y = make_classification(
        n_samples=3000, n_features=FEATURES, n_informative=6, n_redundant=2, n_classes=3,
        n_clusters_per_class=2, flip_y=0.03, random_state=0,
    )  # fmt: skip
    x = x.astype(np.float32)
    split = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    return split[0], split[1], split[2], split[3]


def _classifiers() -> list[Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.tree import DecisionTreeClassifier

    return [
        LogisticRegression(max_iter=500),
        DecisionTreeClassifier(max_depth=6, random_state=0),
        GaussianNB(),
    ]


@pytest.fixture(scope="module")
def members(
    client: Any, data: tuple[np.ndarray, ...], tmp_path_factory: pytest.TempPathFactory
) -> list[Path]:
    """Three classifiers fitted on the training split, uploaded as models m0, m1, m2."""
    x_train, _, y_train, _ = data
    folder = tmp_path_factory.mktemp("members")
    paths = []
    for i, estimator in enumerate(_classifiers()):
        path = to_onnx(estimator.fit(x_train, y_train), FEATURES, folder / f"m{i}.onnx")
        client.models.upload(f"m{i}", path)
        paths.append(path)
    return paths


def _infer(server: LiveServer, name: str, x: np.ndarray) -> dict[str, np.ndarray]:
    body = {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}
        ]
    }
    answer = httpx.post(
        f"{server.url}/v2/models/{name}/infer",
        json=body,
        headers={"Authorization": f"Bearer {server.admin_token}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in answer.json()["outputs"]}


def _deploy(client: Any, name: str, combiner: Any, weights: list[float]) -> None:
    traffic = [{"model": f"m{i}", "version": 1, "weight": w} for i, w in enumerate(weights)]
    client.deployments.create("m0", name=name, traffic=traffic, combiner=combiner)
    client.deployments.wait_ready(name, timeout=60)


def test_soft_vote_equals_numpys_weighted_mean_of_the_members_probabilities(
    server: LiveServer, client: Any, members: list[Path], data: tuple[np.ndarray, ...]
) -> None:
    x = data[1][:200]
    weights = [1.0, 2.0, 3.0]
    _deploy(client, "soft", "soft_vote", weights)

    answer = _infer(server, "soft", x)

    probas = np.stack([run_onnx(p)(x)[1] for p in members]).astype(np.float64)
    expected = np.average(probas, axis=0, weights=weights)
    np.testing.assert_allclose(answer["predict_proba"], expected, rtol=1e-6, atol=1e-7)
    assert (answer["predict"] == expected.argmax(axis=1)).all()


def test_hard_vote_takes_the_heaviest_label(
    server: LiveServer, client: Any, members: list[Path], data: tuple[np.ndarray, ...]
) -> None:
    x = data[1][:200]
    _deploy(client, "hard", "hard_vote", [1.0, 1.0, 1.5])

    answer = _infer(server, "hard", x)

    labels = np.stack([run_onnx(p)(x)[0] for p in members])
    scores = np.stack([((labels == c) * np.array([[1.0], [1.0], [1.5]])).sum(0) for c in range(3)])
    assert (answer["predict"] == scores.argmax(axis=0)).all()


def test_weighted_mean_of_regressors_equals_numpy(
    server: LiveServer, client: Any, data: tuple[np.ndarray, ...], tmp_path: Path
) -> None:
    from sklearn.linear_model import Ridge
    from sklearn.tree import DecisionTreeRegressor

    x_train, x_test, _, _ = data
    target = x_train[:, 0] * 3 + x_train[:, 1] ** 2
    paths = []
    for i, model in enumerate([Ridge(), DecisionTreeRegressor(max_depth=5, random_state=0)]):
        path = to_onnx(model.fit(x_train, target), FEATURES, tmp_path / f"r{i}.onnx")
        client.models.upload(f"r{i}", path)
        paths.append(path)
    traffic = [
        {"model": "r0", "version": 1, "weight": 3},
        {"model": "r1", "version": 1, "weight": 1},
    ]
    client.deployments.create("r0", name="wmean", traffic=traffic, combiner="weighted_mean")
    client.deployments.wait_ready("wmean", timeout=60)

    answer = _infer(server, "wmean", x_test[:100])

    outputs = np.stack([run_onnx(p)(x_test[:100])[0] for p in paths]).astype(np.float64)
    expected = np.average(outputs, axis=0, weights=[3, 1])
    np.testing.assert_allclose(answer["predict"], expected, rtol=1e-6)


def test_stacking_out_of_fold_beats_its_best_member_on_held_out_rows(
    server: LiveServer, client: Any, members: list[Path], data: tuple[np.ndarray, ...]
) -> None:
    x_train, x_test, y_train, y_test = data
    # Out-of-fold: each row's member answers come from copies that never trained on it.
    meta = fit_meta_model(out_of_fold_proba(_classifiers(), x_train, y_train), y_train)
    _deploy(client, "stack", {"strategy": "stacking", "meta": meta.model_dump()}, [1, 1, 1])

    accuracy = {}
    for i in range(3):
        client.deployments.create(f"m{i}", version=1)
        client.deployments.wait_ready(f"m{i}", timeout=60)
        accuracy[f"m{i}"] = float((_infer(server, f"m{i}", x_test)["label"] == y_test).mean())
    stacked = float((_infer(server, "stack", x_test)["predict"] == y_test).mean())

    best = max(accuracy, key=lambda k: accuracy[k])
    print(
        f"\nheld-out accuracy ({len(y_test)} rows): members {accuracy}, stacking {stacked:.4f}, "
        f"margin over best ({best}) {stacked - accuracy[best]:+.4f}"
    )
    assert stacked > accuracy[best]


def test_members_are_counted_under_their_own_labels(
    server: LiveServer, client: Any, members: list[Path], data: tuple[np.ndarray, ...]
) -> None:
    _deploy(client, "counted", "soft_vote", [1, 1, 1])
    _infer(server, "counted", data[1][:5])

    text = httpx.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.admin_token}"}
    ).text

    counted = [
        line
        for line in text.splitlines()
        if line.startswith("aimass_inference_requests_total{") and 'deployment="counted"' in line
    ]
    for i in range(3):  # each member answered the one request, under its own model label
        assert any(f'model="m{i}"' in line and line.endswith(" 1.0") for line in counted), counted
    assert any('model="counted"' in line for line in counted)  # and the ensemble itself


def test_an_unknown_combiner_or_a_lone_foreign_member_is_a_400(client: Any) -> None:
    with pytest.raises(InvalidInput, match=r"unknown combiner strategy 'median'.*soft_vote"):
        client.deployments.create("m0", name="bad", traffic=[{"version": 1}], combiner="median")
    with pytest.raises(InvalidInput, match="only in an ensemble"):
        client.deployments.create("m0", name="bad", traffic=[{"model": "m1", "version": 1}])


def test_an_ensemble_is_made_on_the_command_line_and_changed_through_the_sdk(
    server: LiveServer, client: Any, members: list[Path], data: tuple[np.ndarray, ...]
) -> None:
    from typer.testing import CliRunner

    from aimass.cli import app

    x = data[1][:50]
    done = CliRunner().invoke(
        app,
        ["--url", server.url, "--token", server.admin_token, "deploy", "m0", "--name", "cli",
         "--combiner", "soft_vote", "--traffic", "m0:1=1", "--traffic", "m1:1=1", "--json"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    soft = _infer(server, "cli", x)
    assert "predict_proba" in soft

    changed = client.deployments.update("cli", combiner="hard_vote")
    # Same members, so wait_ready (which compares versions) cannot see the swap: poll.
    deadline = time.monotonic() + 30
    while "predict_proba" in (hard := _infer(server, "cli", x)) and time.monotonic() < deadline:
        time.sleep(0.1)

    assert changed.combiner is not None and changed.combiner.strategy == "hard_vote"
    assert [r.model for r in changed.routes] == ["m0", "m1"]
    assert set(hard) == {"predict"}  # a hard vote gives labels only
    labels = np.stack([run_onnx(p)(x)[0] for p in members[:2]])
    scores = np.stack([(labels == c).sum(0) for c in range(3)])
    assert (hard["predict"] == scores.argmax(axis=0)).all()
