"""``graph.gcn`` and ``graph.graphsage``: node classification with PyTorch Geometric.

The dataset is a node table (``zoo._graph_io`` documents the format: ``node``, ``label``,
``split``, ``neighbors`` and feature columns). Training is full-batch and transductive: the
whole graph goes through the network each epoch, the loss is taken on the ``train`` nodes and
the accuracy on the ``test`` nodes. Each epoch logs ``loss``, ``train_accuracy``, ``accuracy``
and ``test_loss`` and checkpoints the state. The registered version is TorchScript that takes
the graph — ``features`` FP32 ``[nodes, F]`` and ``edge_index`` INT64 ``[2, edges]`` — and
answers ``label`` and ``probabilities`` for every node.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from aimass.plugins.entries import BuiltinDataset, Entry
from aimass.zoo._extras import GRAPH, GRAPH_DATA

if TYPE_CHECKING:
    from aimass.evaluation import EvaluationReport
    from aimass.flavors.base import Predictor
    from aimass.registry.entities import ModelVersion
    from aimass.runtime import JobContext


class GraphParams(BaseModel):
    """``graph.gcn`` / ``graph.graphsage``."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(default=100, ge=1, le=10_000)
    hidden: int = Field(default=16, ge=1, le=4096, description="units of each hidden layer")
    layers: int = Field(default=2, ge=1, le=8, description="graph convolutions")
    learning_rate: float = Field(default=0.01, gt=0, le=10)
    weight_decay: float = Field(default=5e-4, ge=0, le=1, description="L2 penalty (Adam)")
    dropout: float = Field(default=0.5, ge=0, lt=1)
    seed: int = Field(default=0, ge=0)
    model_name: str | None = Field(
        default=None, min_length=1, max_length=256, description="default: <dataset>-<model>"
    )
    sleep_s: float = Field(default=0.0, ge=0, le=60, description="pause after each epoch")


def _signature(features: int, classes: int) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "features", "datatype": "FP32", "shape": [-1, features]},
            {"name": "edge_index", "datatype": "INT64", "shape": [2, -1]},
        ],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, classes]},
        ],
    }


#: Two members of the karate club (one-hot identities of nodes 0 and 1) and their link.
_EXAMPLE = {
    "inputs": [
        {
            "name": "features",
            "datatype": "FP32",
            "shape": [2, 34],
            "data": [1.0 if i in (0, 35) else 0.0 for i in range(68)],
        },
        {"name": "edge_index", "datatype": "INT64", "shape": [2, 2], "data": [0, 1, 1, 0]},
    ]
}


def _entry(name: str, model: str, what: str) -> Entry:
    return Entry(
        name=name,
        kinds=frozenset({"train"}),
        target=f"aimass.zoo.graph:train_{model}",
        description=(
            f"Node classification with a {what} (PyTorch Geometric), trained full-batch on a "
            "node table's train split, scored on its test split each epoch, resumable; "
            "exported to TorchScript taking features and edge_index."
        ),
        params=GraphParams,
        needs_dataset=True,
        task="node_classification",
        family="graph",
        default_dataset="karate_club",
        exports=("torchscript",),
        needs=GRAPH,
        signature=_signature(-1, -1),
        example_request=_EXAMPLE,
        evaluate="aimass.zoo.graph:evaluate",
    )


ENTRIES = [
    _entry("graph.gcn", "gcn", "graph convolutional network (GCNConv)"),
    _entry("graph.graphsage", "graphsage", "GraphSAGE network (SAGEConv, mean aggregation)"),
]


def _build_karate_club(directory: Path) -> Path:
    from aimass.zoo._graph_io import build_karate_club

    return build_karate_club(directory)


def _build_sbm(directory: Path) -> Path:
    from aimass.zoo._graph_io import build_sbm

    return build_sbm(directory)


#: Graphs as node tables (``zoo._graph_io`` describes the columns).
DATASETS = [
    BuiltinDataset(
        "karate_club",
        "Zachary's karate club: 34 members linked by friendship, labelled by the club each "
        "joined after the split ('Mr. Hi' or 'Officer'); one-hot node features, a stratified "
        "half of the members in the test split. A node table: node, label, split, neighbors "
        "(space-separated ids), f0..f33.",
        "node_classification",
        "karate_club.csv",
        _build_karate_club,
        "34 nodes, 78 edges, 34 features, 2 classes",
        "networkx",
        GRAPH_DATA,
    ),
    BuiltinDataset(
        "sbm",
        "A stochastic block model graph (networkx, seeded): 3 blocks of 40 nodes, links with "
        "probability 0.2 inside a block and 0.02 across; 8 features, the block's one-hot plus "
        "Gaussian noise. A node table: node, label (the block), split, neighbors, f0..f7.",
        "node_classification",
        "sbm.csv",
        _build_sbm,
        "120 nodes, 8 features, 3 classes",
        "networkx",
        GRAPH_DATA,
    ),
]


def train_gcn(params: dict[str, Any]) -> dict[str, Any]:
    """Train ``graph.gcn`` in the job's process."""
    return _train(GraphParams.model_validate(params), gcn=True)


def train_graphsage(params: dict[str, Any]) -> dict[str, Any]:
    """Train ``graph.graphsage`` in the job's process."""
    return _train(GraphParams.model_validate(params), gcn=False)


def _train(params: GraphParams, gcn: bool) -> dict[str, Any]:
    from aimass import runtime
    from aimass.flavors.signature import Signature
    from aimass.zoo._graph_io import PygNetwork, parse_graph, served_classes, serving_network
    from aimass.zoo._torch import record_pid, run_epochs, setup

    ctx = runtime.context()
    record_pid(ctx)
    torch, device = setup(params.seed)
    graph = parse_graph(ctx.load_dataset())
    if not graph.train.any() or not graph.test.any():
        raise ValueError("the graph needs labelled nodes in both the train and the test split")
    served, tags = served_classes(graph.classes)
    x, edges, y, train, test = (
        torch.from_numpy(a).to(device)
        for a in (graph.features, graph.edge_index, graph.y, graph.train, graph.test)
    )
    dims = [x.shape[1], *[params.hidden] * (params.layers - 1), len(graph.classes)]
    model = PygNetwork(dims, gcn, params.dropout).to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
    )
    loss_fn = torch.nn.functional.cross_entropy
    metrics: dict[str, float] = {}  # the last epoch's, for the outputs

    def train_epoch(epoch: int) -> dict[str, float]:
        loss = loss_fn(model(x, edges)[train], y[train])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        metrics["loss"] = float(loss)
        return {"loss": metrics["loss"]}

    def score() -> dict[str, float]:
        logits = model(x, edges)
        predicted = logits.argmax(dim=-1)
        scores = {
            "train_accuracy": float((predicted[train] == y[train]).float().mean()),
            "accuracy": float((predicted[test] == y[test]).float().mean()),
            "test_loss": float(loss_fn(logits[test], y[test])),
        }
        metrics.update(scores)
        return scores

    ctx.log_params(params.model_dump(mode="json"))
    start, seconds = run_epochs(ctx, params, model, optimizer, train_epoch, score)
    if not metrics:  # resumed after the last epoch: score the checkpointed model
        model.eval()
        with torch.no_grad():
            predicted = model(x, edges).argmax(dim=-1)
        metrics = {"accuracy": float((predicted[test] == y[test]).float().mean())}
    model, x, edges = model.cpu(), x.cpu(), edges.cpu()  # served on the CPU
    network = serving_network(model.convs, gcn, served)
    with torch.no_grad():
        expected = torch.softmax(model(x, edges), dim=-1)
        _, answered = network(x, edges)
    if not torch.allclose(expected, answered, atol=1e-5):
        raise RuntimeError("the exported network disagrees with the trained one")
    kind = "gcn" if gcn else "graphsage"
    signature = Signature.model_validate(_signature(x.shape[1], len(graph.classes)))
    quality = {"accuracy": metrics["accuracy"]}
    version = ctx.register_model(
        params.model_name or f"{ctx.dataset}-{kind}",
        network,
        signature=signature,
        metrics={**quality, "train_seconds": seconds},
        tags={"task": "node_classification", "entry": f"graph.{kind}", **tags},
        description=f"graph.{kind} on {ctx.dataset}: {params.layers} layers of {params.hidden}",
    )
    return {
        **quality,
        "loss": metrics.get("loss"),
        "epochs": params.epochs,
        "resumed_from": start,
        "train_seconds": round(seconds, 3),
        "classes": [str(c) for c in graph.classes],
        "model": version.model,
        "model_version": version.version,
    }


def evaluate(
    ctx: JobContext, loaded: Predictor, version: ModelVersion, params: dict[str, Any]
) -> EvaluationReport:
    """Node classification accuracy (and the rest) on the job's graph's test nodes.

    The whole graph goes through the model; the labelled ``test`` nodes are scored (all the
    labelled nodes when the table has no test split).
    """
    import numpy as np

    from aimass.evaluation import classification_report
    from aimass.zoo._graph_io import parse_graph, served_classes

    graph = parse_graph(ctx.load_dataset())
    served, _ = served_classes(graph.classes)
    batch: dict[str, np.ndarray[Any, Any]] = {
        "features": graph.features,
        "edge_index": graph.edge_index,
    }
    predicted = np.asarray(loaded.predict(batch))
    probabilities = loaded.predict_proba(batch)
    chosen = graph.test if graph.test.any() else graph.y >= 0
    truth = served[graph.y[chosen]]
    scores = None if probabilities is None else np.asarray(probabilities)[chosen]
    labels = served.tolist() if scores is not None and scores.shape[1] == len(served) else None
    return classification_report(truth, predicted[chosen], scores if labels else None, labels)
