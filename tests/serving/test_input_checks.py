"""Bad prediction input is a 400 that says where; table columns are matched by name.

Unit checks of the parsers, then one live server (SQLite) serving a model of
each flavor: skops (fitted on a named table), a NaN-accepting skops
HistGradientBoosting, ONNX and TorchScript.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from aimass.config import Settings
from aimass.errors import InvalidInput
from aimass.flavors.signature import Signature, TensorSpec
from aimass.flavors.sklearn import estimator_signature
from aimass.serving.protocol import parse_infer_request, parse_predict
from tests_support import deploy, oip_json, upload

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
NAMED = Signature(inputs=[TensorSpec(name="input", datatype="FP64", shape=[-1, 4], columns=NAMES)])
ROW = [5.1, 3.5, 1.4, 0.2]


def _predict(body: object, signature: Signature | None = NAMED) -> Any:
    return parse_predict(orjson.dumps(body), signature, 10_000)


def test_a_null_in_rows_is_a_400_naming_input_row_and_column() -> None:
    with pytest.raises(InvalidInput) as caught:
        _predict({"inputs": [ROW, ROW, [5.0, 3.0, 1.0, None]]})
    assert caught.value.message == (
        "input 'input' has a missing value at row 2, column 'petal_width' (column 3) "
        "(counting from 0); this model does not accept missing values"
    )


def test_a_null_in_an_oip_tensor_is_a_400_unless_the_model_accepts_missing_values() -> None:
    spec = TensorSpec(name="X", datatype="FP32", shape=[-1, 4])
    doc = oip_json([ROW])
    doc["inputs"][0]["data"][1] = None
    with pytest.raises(InvalidInput, match=r"input 'X' .* at row 0, column 1 \(counting"):
        parse_infer_request(orjson.dumps(doc), None, Signature(inputs=[spec]), 100)
    accepting = Signature(inputs=[spec], allows_missing=True)
    parsed = parse_infer_request(orjson.dumps(doc), None, accepting, 100)
    assert np.isnan(parsed.inputs["X"][0, 1])


def test_records_are_matched_by_name_and_extra_columns_reported() -> None:
    record = dict(zip(reversed(NAMES), reversed(ROW), strict=True)) | {"species": 0}
    parsed = _predict({"inputs": [record]})
    assert parsed.inputs["input"].tolist() == [ROW]
    assert parsed.ignored_columns == ["species"]
    with pytest.raises(InvalidInput, match="lacks the column 'petal_width'; the model takes"):
        _predict({"inputs": [{n: 1.0 for n in NAMES[:3]} | {"species": 0}]})


def test_without_column_names_records_stay_positional() -> None:
    unnamed = Signature(inputs=[TensorSpec(name="input", datatype="FP64", shape=[-1, 4])])
    parsed = _predict({"inputs": [dict(zip("abcd", ROW, strict=True))]}, unnamed)
    assert parsed.inputs["input"].tolist() == [ROW]
    assert parsed.ignored_columns == []


def test_one_input_per_column_models_name_the_missing_one() -> None:
    specs = [TensorSpec(name=n, datatype="FP32", shape=[-1, 1]) for n in NAMES]
    signature = Signature(inputs=specs)
    with pytest.raises(InvalidInput, match="lack the column 'sepal_width'"):
        _predict({"inputs": [{"sepal_length": 1, "petal_length": 1, "petal_width": 1}]}, signature)
    parsed = _predict({"inputs": [dict(zip(NAMES, ROW, strict=True)) | {"x": 1}]}, signature)
    assert parsed.ignored_columns == ["x"]
    with pytest.raises(InvalidInput, match="input 'petal_width' has a missing value at row 0"):
        _predict({"inputs": [dict(zip(NAMES, [*ROW[:3], None], strict=True))]}, signature)


def test_sklearn_signatures_carry_column_names_and_nan_tolerance() -> None:
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame([ROW, [6.7, 3.0, 5.2, 2.3]] * 5, columns=NAMES)
    y = [0, 1] * 5
    hgb = estimator_signature(HistGradientBoostingClassifier(max_iter=5).fit(frame, y))
    assert hgb is not None and hgb.allows_missing and hgb.inputs[0].columns == NAMES
    plain = estimator_signature(LogisticRegression().fit(frame.to_numpy(), y))
    assert plain is not None and not plain.allows_missing and plain.inputs[0].columns is None
    # An older signature's JSON is unchanged: the new fields stay out when unset.
    assert "columns" not in orjson.dumps(plain.model_dump(mode="json")).decode()
    assert "allows_missing" not in plain.model_dump()


# --- live: one server for the module, a model of each flavor -------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model_files: Any) -> Iterator[httpx.Client]:
    import pandas as pd
    import skops.io
    from sklearn.datasets import load_iris
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from conftest import free_port, sqlite_url, start_server

    tmp = tmp_path_factory.mktemp("input-checks")
    x, y = load_iris(return_X_y=True)
    frame = pd.DataFrame(x, columns=NAMES)
    lr, hgb = tmp / "lr.skops", tmp / "hgb.skops"
    skops.io.dump(LogisticRegression(max_iter=500).fit(frame, y), lr)
    skops.io.dump(HistGradientBoostingClassifier(max_iter=10).fit(frame, y), hgb)
    settings = Settings(
        home=tmp / "home", database_url=sqlite_url(tmp), artifacts=str(tmp / "artifacts"),
        port=free_port(), jobs=False, tune_gc=False,
    )  # fmt: skip
    server = start_server(settings)
    live = next(server)
    with httpx.Client(
        base_url=live.url, headers={"Authorization": f"Bearer {live.admin_token}"}, timeout=60
    ) as http:
        upload(http, "iris-lr", lr)
        upload(http, "iris-hgb", hgb, {"trusted": True})  # its tree type is not default-safe
        upload(http, "cancer-onnx", model_files.onnx)
        deploy(http, {"name": "lr", "model": "iris-lr", "version": 1})
        deploy(http, {"name": "hgb", "model": "iris-hgb", "version": 1})
        deploy(http, {"name": "onnx", "model": "cancer-onnx", "version": 1})
        yield http
    server.close()


def _message(answer: httpx.Response) -> str:
    """The error text: an object on the plain routes, a string on /v2 (as the protocol has it)."""
    error = answer.json()["error"]
    return str(error["message"] if isinstance(error, dict) else error)


def _plain(http: httpx.Client, name: str, inputs: list[Any]) -> httpx.Response:
    return http.post(f"/api/v1/deployments/{name}/predict", json={"inputs": inputs})


def test_live_sklearn_null_and_empty_csv_cell_are_400s_naming_the_place(
    served: httpx.Client,
) -> None:
    answer = _plain(served, "lr", [ROW, [5.0, None, 1.0, 0.2]])
    assert answer.status_code == 400, answer.text
    assert "at row 1, column 'sepal_width' (column 1)" in _message(answer)
    # ``aimass predict`` reads an empty CSV cell as null in a record.
    empty_cell = dict(zip(NAMES, ROW, strict=True)) | {"petal_length": None}
    answer = _plain(served, "lr", [empty_cell])
    assert answer.status_code == 400
    assert "column 'petal_length' (column 2)" in _message(answer)
    oip = oip_json([[*ROW[:3], float("nan")]], name="input", datatype="FP64")
    oip["inputs"][0]["data"][3] = None
    answer = served.post("/v2/models/lr/infer", json=oip)
    assert answer.status_code == 400
    assert "column 'petal_width'" in _message(answer)


def test_live_sklearn_records_by_name_missing_and_extra_columns(served: httpx.Client) -> None:
    setosa = dict(zip(NAMES, ROW, strict=True))
    shuffled = {k: setosa[k] for k in reversed(NAMES)} | {"species": 2}
    answer = _plain(served, "lr", [shuffled])
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == [0]
    assert answer.json()["ignored_columns"] == ["species"]
    assert "ignored_columns" not in _plain(served, "lr", [setosa]).json()
    # The case: one feature missing, the label present: the count fits, the names do not.
    wrong = {k: v for k, v in setosa.items() if k != "petal_width"} | {"species": 0}
    answer = _plain(served, "lr", [wrong])
    assert answer.status_code == 400
    assert "lacks the column 'petal_width'" in _message(answer)


def test_live_a_nan_accepting_model_takes_missing_values(served: httpx.Client) -> None:
    answer = _plain(served, "hgb", [[*ROW[:3], None], ROW])
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == [0, 0]
    record = dict(zip(NAMES, [None, *ROW[1:]], strict=True))
    assert _plain(served, "hgb", [record]).json()["predictions"] == [0]


def test_live_onnx_null_is_a_400_not_label_0(served: httpx.Client, model_files: Any) -> None:
    row: list[Any] = model_files.x[0].tolist()
    row[7] = None
    answer = _plain(served, "onnx", [row])
    assert answer.status_code == 400, answer.text
    assert "at row 0, column 7" in _message(answer)
    oip = oip_json([model_files.x[0].tolist()])
    oip["inputs"][0]["data"][7] = None
    answer = served.post("/v2/models/onnx/infer", json=oip)
    assert answer.status_code == 400
    assert "has a missing value at row 0, column 7" in _message(answer)


@pytest.mark.torch
def test_live_torchscript_null_is_a_400(served: httpx.Client, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from aimass.flavors.serialize import serialize_model

    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1))
    path, _ = serialize_model(module, tmp_path, example=np.zeros((2, 4), dtype=np.float32))
    upload(served, "mlp", path)
    deploy(served, {"name": "mlp", "model": "mlp", "version": 1})
    answer = _plain(served, "mlp", [[1.0, None, 0.0, 0.0]])
    assert answer.status_code == 400, answer.text
    assert "input 'input' has a missing value at row 0, column 1" in _message(answer)
    assert _plain(served, "mlp", [[1.0, 2.0, 0.0, 0.0]]).status_code == 200
