"""``graph.gcn`` and ``graph.graphsage``: node classification through a job on the built-in
graphs, served as TorchScript taking a whole graph (features and an INT64 edge_index)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from zoo.conftest import bad_params, evaluate, infer, serve, train
from zoo.torch_jobs import kill_mid_training

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True)
def _graph_family(monkeypatch: pytest.MonkeyPatch) -> None:
    """List the graph family in the catalogue and the built-in datasets if it is not yet."""
    import aimass.zoo.families
    from aimass.zoo import graph

    if graph not in aimass.zoo.families.FAMILIES:
        monkeypatch.setattr(aimass.zoo.families, "FAMILIES", (*aimass.zoo.families.FAMILIES, graph))


def _graph(builder: str, tmp_path: Path) -> pd.DataFrame:
    from aimass.zoo import _graph_io

    path: Path = getattr(_graph_io, builder)(tmp_path)
    return pd.read_csv(path)


def _tensors(frame: pd.DataFrame) -> tuple[Any, Any, Any]:
    from aimass.zoo._graph_io import parse_graph

    graph = parse_graph(frame)
    return graph.features, graph.edge_index, graph


def _inputs(features: Any, edge_index: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": "features",
            "datatype": "FP32",
            "shape": list(features.shape),
            "data": features.ravel().tolist(),
        },
        {
            "name": "edge_index",
            "datatype": "INT64",
            "shape": list(edge_index.shape),
            "data": edge_index.ravel().tolist(),
        },
    ]


def test_a_node_table_becomes_an_undirected_graph() -> None:
    from aimass.zoo._graph_io import parse_graph

    frame = pd.DataFrame(
        {
            "node": [10, 11, 12, 13],
            "label": ["a", "b", None, "a"],
            "split": ["train", "test", "train", "TEST"],
            "neighbors": ["11 10", "", "11", None],  # a self-link, one-sided links, none
        }
    )
    graph = parse_graph(frame)
    assert graph.features.shape == (4, 4)  # no feature columns: one-hot identities
    assert sorted(map(tuple, graph.edge_index.T.tolist())) == [(0, 1), (1, 0), (1, 2), (2, 1)]
    assert graph.classes == ["a", "b"]
    assert graph.y.tolist() == [0, 1, -1, 0]
    assert graph.train.tolist() == [True, False, False, False]
    assert graph.test.tolist() == [False, True, False, True]
    with pytest.raises(ValueError, match="unknown neighbor '99'"):
        parse_graph(frame.assign(neighbors=["99", "", "", ""]))
    with pytest.raises(ValueError, match="numeric"):
        parse_graph(frame.assign(f0=["x", 1, 2, 3]))


@pytest.mark.parametrize("gcn", [True, False], ids=["gcn", "graphsage"])
def test_the_served_network_computes_what_pyg_computes(gcn: bool) -> None:
    import torch

    from aimass.flavors.torchscript import quiet_jit
    from aimass.zoo._graph_io import PygNetwork, serving_network

    torch.manual_seed(0)
    trained = PygNetwork([5, 8, 8, 3], gcn, dropout=0.5).eval()
    x = torch.randn(6, 5)
    # A self-loop, a duplicated edge, one direction only, and node 5 isolated.
    edges = torch.tensor([[0, 1, 1, 2, 3, 3, 4], [1, 0, 1, 3, 4, 4, 2]])
    with quiet_jit():
        scripted = torch.jit.script(serving_network(trained.convs, gcn, np.array([7, 8, 9])))
    labels, probabilities = scripted(x, edges)
    with torch.no_grad():
        expected = torch.softmax(trained(x, edges), dim=-1)
    assert torch.allclose(probabilities, expected, atol=1e-5)
    assert labels.tolist() == (expected.argmax(dim=-1) + 7).tolist()


def test_gcn_classifies_the_karate_club_serves_it_and_evaluates_it(
    api: httpx.Client, tmp_path: Path
) -> None:
    job = train(api, "graph.gcn", {"epochs": 60})
    outputs = job["outputs"]
    assert job["dataset"] == "karate_club"
    assert outputs["accuracy"] >= 0.8, outputs
    assert outputs["classes"] == ["Mr. Hi", "Officer"]
    steps = api.get(f"/api/v1/jobs/{job['id']}/metrics", params={"name": "accuracy"}).json()
    assert [m["step"] for m in steps] == list(range(1, 61))
    assert len(api.get(f"/api/v1/jobs/{job['id']}/checkpoints").json()) == 60
    version = api.get(f"/api/v1/models/{outputs['model']}/versions/{outputs['model_version']}")
    body = version.json()
    assert body["flavor"] == "torchscript"
    assert body["tags"]["entry"] == "graph.gcn"
    assert body["signature"]["inputs"][1] == {
        "name": "edge_index",
        "datatype": "INT64",
        "shape": [2, -1],
    }

    features, edge_index, graph = _tensors(_graph("build_karate_club", tmp_path))
    name = serve(api, job, "karate")
    answer = infer(api, name, _inputs(features, edge_index))
    assert answer["label"]["shape"] == [34]
    assert answer["probabilities"]["shape"] == [34, 2]
    labels = np.asarray(answer["label"]["data"])
    assert (labels[graph.test] == graph.y[graph.test]).mean() >= 0.8
    # A small subgraph answers too: members 0 and 1 with their link.
    example = api.get("/api/v1/jobs/entries").json()
    request = next(e for e in example if e["name"] == "graph.gcn")["example_request"]
    small = api.post(f"/v2/models/{name}/infer", json=request)
    assert small.status_code == 200, small.text
    out_of_range = _inputs(features[:2], np.array([[0, 1], [1, 5]]))
    refused = api.post(f"/v2/models/{name}/infer", json={"inputs": out_of_range})
    assert refused.status_code == 400, refused.text

    metrics = evaluate(api, job, "karate_club")
    assert metrics["accuracy"] == pytest.approx(outputs["accuracy"])


def test_graphsage_classifies_the_block_model(api: httpx.Client, tmp_path: Path) -> None:
    job = train(api, "graph.graphsage", {"epochs": 40}, dataset="sbm")
    outputs = job["outputs"]
    assert outputs["accuracy"] >= 0.8, outputs
    assert outputs["classes"] == ["0", "1", "2"]
    features, edge_index, graph = _tensors(_graph("build_sbm", tmp_path))
    answer = infer(api, serve(api, job, "blocks"), _inputs(features, edge_index))
    assert answer["probabilities"]["shape"] == [120, 3]
    labels = np.asarray(answer["label"]["data"])
    assert set(labels.tolist()) <= {0, 1, 2}  # integer labels are served as themselves
    assert (labels[graph.test] == graph.y[graph.test]).mean() >= 0.8


def test_a_killed_gcn_job_resumes_from_its_last_checkpoint(api: httpx.Client) -> None:
    body = {"kind": "train", "entry": "graph.gcn", "params": {"epochs": 12, "sleep_s": 0.3}}
    response = api.post("/api/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    done = kill_mid_training(api, response.json()["id"], after_epochs=3)
    assert done["state"] == "succeeded", done
    assert done["outputs"]["resumed_from"] >= 3
    assert done["outputs"]["accuracy"] >= 0.8


def test_bad_params_are_refused_naming_the_field(api: httpx.Client) -> None:
    cases = [
        ({"learning_rate": -0.1}, "params.learning_rate"),
        ({"epochs": "many"}, "params.epochs"),
        ({"dropout": 1.0}, "params.dropout"),
        ({"heads": 4}, "params.heads"),
    ]
    for params, field in cases:
        assert field in bad_params(api, "graph.gcn", params)
