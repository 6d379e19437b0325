"""The SDK's registry calls against a real server."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from tests.client.files import write_onnx
from tests.conftest import LiveServer

from aimass import Client
from aimass.errors import AimassError, Conflict, NotFound
from aimass.flavors.signature import Signature, TensorSpec


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    return write_onnx(tmp_path / "scale.onnx")


def test_create_get_update_delete_model(client: Client) -> None:
    created = client.models.create("iris", description="flowers", tags={"team": "bio"})
    assert created.name == "iris"
    assert created.tags == {"team": "bio"}
    with pytest.raises(Conflict):
        client.models.create("iris")
    updated = client.models.update("iris", description="irises")
    assert updated.description == "irises"
    assert updated.tags == {"team": "bio"}
    assert [m.name for m in client.models.list(tag={"team": "bio"})] == ["iris"]
    assert client.models.list(name="nothing-like-it") == []
    client.models.delete("iris")
    with pytest.raises(NotFound) as info:
        client.models.get("iris")
    assert "iris" in info.value.message
    assert info.value.request_id  # type: ignore[attr-defined]


def test_upload_streams_with_progress_and_download_is_identical(
    client: Client, onnx_file: Path, tmp_path: Path
) -> None:
    seen: list[tuple[int, int]] = []
    version = client.models.upload(
        "scale",
        onnx_file,
        metrics={"accuracy": 0.93},
        tags={"stage": "dev"},
        description="doubles",
        progress=lambda done, total: seen.append((done, total)),
    )
    data = onnx_file.read_bytes()
    assert version.version == 1
    assert version.flavor == "onnx"
    assert version.filename == "scale.onnx"
    assert version.sha256 == hashlib.sha256(data).hexdigest()
    assert version.metrics == {"accuracy": 0.93}
    assert seen[-1] == (len(data), len(data))

    out = tmp_path / "out"
    out.mkdir()
    got: list[tuple[int, int]] = []
    path = client.models.download("scale", 1, out, progress=lambda d, t: got.append((d, t)))
    assert path == out / "scale.onnx"
    assert path.read_bytes() == data
    assert got[-1][0] == len(data)
    named = client.models.download("scale", "1", tmp_path / "copy.onnx")
    assert named.read_bytes() == data


def test_versions_aliases_and_search(client: Client, onnx_file: Path) -> None:
    client.models.upload("scale", onnx_file, metrics={"accuracy": 0.8})
    client.models.upload("scale", onnx_file, metrics={"accuracy": 0.95}, tags={"k": "v"})
    assert [v.version for v in client.models.versions("scale")] == [2, 1]

    model = client.models.set_alias("scale", "production", 2)
    assert model.aliases == {"production": 2}
    assert client.models.get_version("scale", "production").version == 2

    best = client.models.search(metrics=["accuracy>=0.9"])
    assert [(v.model, v.version) for v in best] == [("scale", 2)]
    assert [v.version for v in client.models.search(alias="production")] == [2]
    assert [v.version for v in client.models.search(tags={"k": "v"})] == [2]

    client.models.delete_alias("scale", "production")
    assert client.models.get("scale").aliases == {}

    changed = client.models.update_version(
        "scale", 1, description="old", tags={"x": "1"}, metrics={"f1": 0.5}
    )
    assert changed.description == "old"
    assert changed.tags == {"x": "1"}
    assert client.models.update_version("scale", 1, tags={"x": None}).tags == {}
    assert client.models.archive_version("scale", 1).status == "archived"
    assert [v.version for v in client.models.versions("scale", status="archived")] == [1]

    client.models.delete_version("scale", 1)
    with pytest.raises(NotFound):
        client.models.get_version("scale", 1)


def test_upload_with_signature(client: Client, onnx_file: Path) -> None:
    signature = Signature(
        inputs=[TensorSpec(name="x", datatype="FP32", shape=[-1, 2])],
        outputs=[TensorSpec(name="y", datatype="FP32", shape=[-1, 2])],
    )
    version = client.models.upload("sig", onnx_file, signature=signature)
    assert version.signature is not None
    assert version.signature.inputs[0].name == "x"


def test_export_and_import_bundle(client: Client, onnx_file: Path, tmp_path: Path) -> None:
    client.models.upload("scale", onnx_file)
    bundle = client.models.export("scale", 1, tmp_path)
    assert bundle.is_file()
    assert bundle.name.endswith(".aimass")
    imported = client.models.import_bundle(bundle, name="scale-copy")
    assert imported.model == "scale-copy"
    assert imported.sha256 == hashlib.sha256(onnx_file.read_bytes()).hexdigest()


def test_log_serializes_an_in_memory_sklearn_model(client: Client) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.1, 0.9], [0.9, 0.2]], dtype=np.float64)
    model = LogisticRegression().fit(x, [0, 1, 0, 1])
    version = client.models.log("logreg", model, example=x[:2], metrics={"accuracy": 1.0})
    assert version.model == "logreg"
    assert version.flavor == "sklearn"
    assert version.metrics == {"accuracy": 1.0}


@pytest.mark.torch
def test_log_serializes_a_torch_module_as_torchscript(client: Client, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    import numpy as np

    from aimass.plugins import default_registries

    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    example = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    version = client.models.log("mlp", net, example=example)
    assert version.flavor == "torchscript"
    assert version.signature is not None
    assert version.signature.inputs[0].shape == [-1, 4]
    path = client.models.download("mlp", version.version, tmp_path / "mlp.pt")
    predictor = default_registries().flavors.get("torchscript").load(path, trusted=False)
    with torch.no_grad():
        expected = net(torch.from_numpy(example)).numpy()
    np.testing.assert_allclose(predictor.predict(example), expected, rtol=1e-5)


def test_unknown_model_raises_not_found_with_request_id(client: Client) -> None:
    with pytest.raises(NotFound) as info:
        client.models.get_version("missing", "production")
    assert info.value.status == 404
    assert info.value.request_id  # type: ignore[attr-defined]


def test_corrupted_artifact_never_lands_on_disk(
    client: Client, live_server: LiveServer, onnx_file: Path, tmp_path: Path
) -> None:
    client.models.upload("scale", onnx_file)
    stored = [p for p in Path(str(live_server.settings.artifacts)).rglob("*") if p.is_file()]
    assert len(stored) == 1
    data = bytearray(stored[0].read_bytes())
    data[-1] ^= 0xFF
    stored[0].write_bytes(bytes(data))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(AimassError):
        client.models.download("scale", 1, out)
    assert list(out.iterdir()) == []
