"""The example third-party plugin, pip-installed, used end to end by a server process.

``examples/aimass-example-plugin`` is installed with ``pip install --target``;
the server runs with that folder on ``PYTHONPATH``. Its flavor is uploaded and
served, its combiner fuses an ensemble deployment, its data cleaner cleans a
training table in a process that takes its plugins from the installation (as
a job's process does), and its drift test judges a served model's logged
traffic in a drift report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tests.conftest import free_port, start_server_process
from tests.fusion.models import run_onnx, to_onnx
from tests.plugins.wheels import pip_install

import aimass
from aimass.config import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "aimass-example-plugin"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("example")
    # A copy: building it writes build/ and *.egg-info beside the sources.
    source = shutil.copytree(EXAMPLE, folder / "source", ignore=shutil.ignore_patterns("build"))
    pip_install([source], folder / "site")
    return folder / "site"


def _env(site: Path) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": f"{site}{os.pathsep}{path}" if path else str(site)}


@pytest.fixture(scope="module")
def server(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    home = tmp_path_factory.mktemp("home")
    settings = Settings(
        home=home,
        port=free_port(),
        tune_gc=False,
        jobs=True,  # a training job cleans its dataset with the plugin's cleaner
        job_slots=1.0,
        prediction_log_sample=1.0,  # every answer logged, for the drift report
        prediction_log_flush_s=0.2,
    )
    with pytest.MonkeyPatch.context() as mp:
        for key, value in _env(site).items():
            mp.setenv(key, value)
        process = start_server_process(settings)
    try:
        yield f"http://127.0.0.1:{settings.port}", settings.token_file.read_text().strip()
    finally:
        process.kill()
        process.wait(10)


@pytest.fixture(scope="module")
def client(server: tuple[str, str]) -> Iterator[Any]:
    import aimass

    with aimass.Client(url=server[0], token=server[1]) as c:
        yield c


def _infer(server: tuple[str, str], name: str, x: np.ndarray, datatype: str) -> dict[str, Any]:
    body = {"inputs": [{"name": "x", "datatype": datatype, "shape": list(x.shape),
                        "data": x.ravel().tolist()}]}  # fmt: skip
    answer = httpx.post(
        f"{server[0]}/v2/models/{name}/infer",
        json=body,
        headers={"Authorization": f"Bearer {server[1]}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in answer.json()["outputs"]}


def test_the_plugin_is_listed_with_its_four_slots(client: Any) -> None:
    plugin = {p.name: p for p in client.plugins.list()}["example"]

    assert (plugin.status, plugin.package, plugin.version) == (
        "ok",
        "aimass-example-plugin",
        "0.1.0",
    )
    assert plugin.contract == "1.0"
    assert plugin.slots == {
        "flavors": ["linear-json"],
        "data_cleaners": ["example.drop_incomplete"],
        "fusion_strategies": ["example.geometric_mean"],
        "drift_tests": ["example.mean_shift"],
    }


def test_a_file_of_its_flavor_uploads_and_serves(
    client: Any, server: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "price.linear.json"
    path.write_text(json.dumps({"format": "aimass-linear", "coef": [2.0, -1.0], "intercept": 0.5}))

    version = client.models.upload("price", path)
    client.deployments.create("price", version=1)
    client.deployments.wait_ready("price", timeout=60)
    x = np.array([[1.0, 2.0], [3.0, 0.5]])
    answer = _infer(server, "price", x, "FP64")

    assert version.flavor == "linear-json"
    np.testing.assert_array_equal(answer["predict"], x @ [2.0, -1.0] + 0.5)


def test_its_combiner_fuses_an_ensemble_deployment(
    client: Any, server: tuple[str, str], tmp_path: Path
) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    paths = []
    for i, model in enumerate(
        [LogisticRegression(max_iter=500), DecisionTreeClassifier(max_depth=2)]
    ):
        paths.append(to_onnx(model.fit(x, y), 4, tmp_path / f"iris{i}.onnx"))
        client.models.upload(f"iris{i}", paths[-1])
    traffic = [{"model": "iris0", "version": 1, "weight": 2}, {"model": "iris1", "version": 1}]
    client.deployments.create(
        "iris0", name="geo", traffic=traffic, combiner="example.geometric_mean"
    )
    client.deployments.wait_ready("geo", timeout=60)

    answer = _infer(server, "geo", x[::10], "FP32")

    probas = np.stack([run_onnx(p)(x[::10])[1] for p in paths]).astype(np.float64)
    logs = np.log(np.clip(probas, 1e-12, 1))
    expected = np.exp((2 * logs[0] + 100 * logs[1]) / 102)
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(answer["predict_proba"], expected, rtol=1e-9)


def test_its_drift_test_judges_logged_traffic_in_a_drift_report(
    client: Any, server: tuple[str, str], tmp_path: Path
) -> None:
    rng = np.random.default_rng(11)
    reference = tmp_path / "reference.csv"
    reference.write_text(
        "input_0,input_1\n" + "\n".join(f"{a},{b}" for a, b in rng.normal(size=(300, 2)))
    )
    dataset = client.datasets.upload("price-reference", reference)
    path = tmp_path / "drifty.linear.json"
    path.write_text(json.dumps({"format": "aimass-linear", "coef": [1.0, 1.0], "intercept": 0.0}))
    client.models.upload("drifty", path)
    client.deployments.create("drifty", version=1)
    client.deployments.wait_ready("drifty", timeout=60)
    live = rng.normal(size=(200, 2))
    live[:, 1] += 1.0  # the second input moves by one standard deviation
    with httpx.Client(base_url=server[0], headers={"Authorization": f"Bearer {server[1]}"}) as http:
        for start in range(0, len(live), 20):
            rows = live[start : start + 20].tolist()
            reply = http.post("/api/v1/deployments/drifty/predict", json={"inputs": rows})
            assert reply.status_code == 200, reply.text
    deadline = time.monotonic() + 60
    while client.monitoring.predictions("drifty").total < len(live):
        assert time.monotonic() < deadline, "the logged rows never reached the store"
        time.sleep(0.2)

    report = client.monitoring.drift(
        "drifty",
        reference_dataset="price-reference",
        reference_version=dataset.version,
        numeric_test="example.mean_shift",
    )

    tests = {f.feature: f.test for f in report.features}
    assert tests == {"input_0": "example.mean_shift", "input_1": "example.mean_shift"}
    assert report.drifted == ["input_1"]
    with pytest.raises(aimass.errors.InvalidInput, match="no drift test named 'nope'"):
        client.monitoring.drift(
            "drifty",
            reference_dataset="price-reference",
            reference_version=dataset.version,
            numeric_test="nope",
        )


def test_a_training_job_cleans_its_dataset_with_its_cleaner(client: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 2))
    rows = [f"{a},{b},{int(a + b > 0)}" for a, b in x]
    rows[5], rows[17] = "nan,1.0,1", "inf,-2.0,0"  # the rows the cleaner must drop
    path = tmp_path / "dirty.csv"
    path.write_text("a,b,label\n" + "\n".join(rows) + "\n")
    client.datasets.upload("dirty", path)
    params = {"cleaners": ["example.drop_incomplete"], "model_name": "clean-lr"}

    job = client.jobs.submit("classical.logistic_regression", dataset="dirty", params=params)
    done = client.jobs.wait(job.id, timeout=180)

    assert done.state == "succeeded", client.jobs.logs(job.id)
    assert "cleaners example.drop_incomplete: 120 rows -> 118" in client.jobs.logs(job.id)
    version = client.models.get_version("clean-lr", 1)
    assert version.tags["cleaners"] == "example.drop_incomplete"
    assert version.metrics["accuracy"] > 0.9
    with pytest.raises(aimass.errors.InvalidInput, match="no data cleaner named 'nope'"):
        client.jobs.submit(
            "classical.logistic_regression", dataset="dirty", params={"cleaners": ["nope"]}
        )


TRAIN_WITH_THE_CLEANER = """
import json
import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression
from aimass.plugins import default_registries
from aimass.preprocessing import clean_table, fit_pipeline

registries = default_registries()
table = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0, 5.0, np.inf], "y": [2, 4, 6, 8, 10, 12]})
cleaners = ["example.drop_incomplete"]
pipeline = fit_pipeline(table, [{"name": "a", "kind": "numeric", "scale": True}], cleaners)
clean = clean_table(table, cleaners)
model = LinearRegression().fit(pipeline.transform(clean), clean["y"])
drift = registries.drift_tests.get("example.mean_shift")
print(json.dumps({
    "rows": len(clean),
    "cleaners": pipeline.cleaners,
    "fitted_mean": pipeline.columns[0].mean,
    "score": float(model.score(pipeline.transform(clean), clean["y"])),
    "drift_same": drift.p_value(np.arange(100.0), np.arange(100.0)),
    "drift_moved": drift.p_value(np.arange(100.0), np.arange(100.0) + 50),
}))
"""


def test_training_uses_its_cleaner_and_its_drift_test_is_installed(site: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", TRAIN_WITH_THE_CLEANER],
        env={**os.environ, **_env(site)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["rows"] == 4  # the NaN row and the inf row are gone
    assert result["cleaners"] == ["example.drop_incomplete"]  # recorded in the stored pipeline
    assert result["fitted_mean"] == pytest.approx(3.0)  # fitted on the cleaned rows only
    assert result["score"] == pytest.approx(1.0)  # y = 2a exactly, once the bad rows are gone
    assert result["drift_same"] == 1.0 and result["drift_moved"] < 1e-6
