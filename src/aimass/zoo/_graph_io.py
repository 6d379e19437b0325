"""Graphs as one node table, the built-in graphs, and the plain-torch networks that serve them.

A graph dataset is ONE CSV or Parquet file with a row per node:

``node``
    the node's integer id (unique).
``label``
    its class; a node with no label takes part in the graph but not in the loss or the score.
``split``
    ``train`` or ``test``; any other value (or none) leaves the node out of both.
``neighbors``
    the ids of the nodes it is linked to, separated by spaces. Edges are undirected: a link may
    be listed in either row or in both; self-links are ignored (GCN adds its own).
every other column
    a numeric node feature; a table with none gets one-hot node identities as features.

Serving takes the same graph as two tensors: ``features`` (FP32 ``[nodes, F]``, rows in node
order) and ``edge_index`` (INT64 ``[2, edges]``, row indices of source and target, both
directions). The networks below recompute PyG's ``GCNConv`` and ``SAGEConv`` (mean) with
plain torch ops, so the TorchScript archive needs no PyG to load.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

RESERVED = ("node", "label", "split", "neighbors")


@dataclass(frozen=True)
class Graph:
    """A parsed node table: features, undirected edges (both directions), labels and splits."""

    features: npt.NDArray[np.float32]
    edge_index: npt.NDArray[np.int64]
    y: npt.NDArray[np.int64]  # -1 where a node has no label
    classes: list[Any]
    train: npt.NDArray[np.bool_]
    test: npt.NDArray[np.bool_]


def parse_graph(frame: Any) -> Graph:
    """Read a node table (a DataFrame); ValueError names what is wrong with it."""
    import pandas as pd

    missing = [c for c in ("node", "label", "neighbors") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"a graph dataset needs the columns node, label, neighbors (and split); "
            f"missing: {', '.join(missing)}"
        )
    ids = pd.to_numeric(frame["node"], errors="coerce")
    if ids.isna().any() or (ids % 1 != 0).any() or ids.duplicated().any():
        raise ValueError("'node' must hold unique integer ids")
    index = {int(node): row for row, node in enumerate(ids)}
    links: list[tuple[int, int]] = []
    for row, cell in enumerate(frame["neighbors"].fillna("").astype(str)):
        for token in cell.replace(",", " ").split():
            try:
                other = index[int(float(token))]
            except (KeyError, ValueError):
                node = int(ids.iloc[row])
                raise ValueError(f"node {node} lists an unknown neighbor {token!r}") from None
            if other != row:
                links.append((min(row, other), max(row, other)))
    pairs = np.array(sorted(set(links)), dtype=np.int64).reshape(-1, 2)
    edge_index = np.concatenate([pairs.T, pairs.T[::-1]], axis=1)
    labelled = frame["label"].notna().to_numpy()
    classes = sorted(frame.loc[labelled, "label"].unique().tolist())
    if all(isinstance(c, float) and c.is_integer() for c in classes):  # ints read beside gaps
        classes = [int(c) for c in classes]
    position = {c: i for i, c in enumerate(classes)}
    y = np.array(
        [position[v] if ok else -1 for v, ok in zip(frame["label"], labelled, strict=True)],
        np.int64,
    )
    split = frame["split"].astype(str).str.lower() if "split" in frame.columns else None
    train = labelled & (split == "train").to_numpy() if split is not None else labelled
    test = labelled & (split == "test").to_numpy() if split is not None else labelled & False
    columns = [c for c in frame.columns if c not in RESERVED]
    if columns:
        values = frame[columns].apply(pd.to_numeric, errors="coerce")
        bad = [str(c) for c in columns if values[c].isna().any()]
        if bad:
            raise ValueError(f"feature columns must be numeric with no gaps: {', '.join(bad)}")
        features = values.to_numpy(dtype=np.float32)
    else:
        features = np.eye(len(frame), dtype=np.float32)
    return Graph(features, edge_index, y, classes, np.asarray(train), np.asarray(test))


def served_classes(classes: list[Any]) -> tuple[npt.NDArray[np.int64], dict[str, str]]:
    """What the model answers for each class index, and the version's tags.

    Integer labels are answered as themselves; any other labels as their index, and the
    ``classes`` tag lists them in index order (TorchScript answers tensors, not strings).
    """
    import json

    if all(isinstance(c, int | np.integer) and not isinstance(c, bool) for c in classes):
        return np.array(classes, dtype=np.int64), {}
    names = json.dumps([str(c) for c in classes])
    return np.arange(len(classes), dtype=np.int64), {"classes": names}


def _table(graph: Any, labels: list[Any], split: list[str], features: Any) -> Any:
    import pandas as pd

    frame = pd.DataFrame({"node": list(graph.nodes), "label": labels, "split": split})
    frame["neighbors"] = [" ".join(str(n) for n in sorted(graph.adj[v])) for v in graph.nodes]
    for k in range(features.shape[1]):
        frame[f"f{k}"] = np.round(features[:, k], 4)
    return frame


def stratified_split(labels: list[Any], test_fraction: float, seed: int) -> list[str]:
    """``train``/``test`` per node, ``test_fraction`` of each class in test (seeded)."""
    rng = np.random.default_rng(seed)
    split = np.array(["train"] * len(labels), dtype=object)
    values = np.array(labels, dtype=object)
    for label in sorted(set(labels), key=str):
        members = rng.permutation(np.flatnonzero(values == label))
        split[members[: round(len(members) * test_fraction)]] = "test"
    return [str(s) for s in split]


def build_karate_club(directory: Path) -> Path:
    """Zachary's karate club: 34 members, labelled by the club each joined; one-hot features."""
    import networkx as nx

    graph = nx.karate_club_graph()
    labels = [graph.nodes[v]["club"] for v in graph.nodes]
    frame = _table(graph, labels, stratified_split(labels, 0.5, 0), np.eye(len(labels)))
    path = directory / "karate_club.csv"
    frame.to_csv(path, index=False)
    return path


def build_sbm(directory: Path) -> Path:
    """A 3-block stochastic block model (120 nodes); features: the block one-hot plus noise."""
    import networkx as nx

    sizes, inside, across = [40, 40, 40], 0.2, 0.02
    p = [[inside if i == j else across for j in range(3)] for i in range(3)]
    graph = nx.stochastic_block_model(sizes, p, seed=0)
    blocks = [int(graph.nodes[v]["block"]) for v in graph.nodes]
    rng = np.random.default_rng(0)
    features = rng.normal(0.0, 1.0, (len(blocks), 8))
    features[np.arange(len(blocks)), blocks] += 1.0
    frame = _table(graph, blocks, stratified_split(blocks, 0.5, 0), features)
    path = directory / "sbm.csv"
    frame.to_csv(path, index=False)
    return path


class PygNetwork(nn.Module):
    """What trains: PyG ``GCNConv`` or ``SAGEConv`` layers, ReLU and dropout between them."""

    def __init__(self, dims: list[int], gcn: bool, dropout: float) -> None:
        from aimass.flavors.torchscript import quiet_jit

        with quiet_jit():  # PyG scripts some of its classes when imported
            from torch_geometric.nn import GCNConv, SAGEConv

        super().__init__()
        conv = GCNConv if gcn else SAGEConv
        self.convs = nn.ModuleList(conv(a, b) for a, b in itertools.pairwise(dims))
        self.dropout = dropout

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        for i, conv in enumerate(self.convs):
            x = conv(x, edge_index)
            if i < len(self.convs) - 1:
                x = nn.functional.dropout(x.relu(), self.dropout, self.training)
        return x


class _GCNLayer(nn.Module):
    def __init__(self, weight: Tensor, bias: Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone())
        self.bias = nn.Parameter(bias.detach().clone())

    def forward(self, x: Tensor, src: Tensor, dst: Tensor, norm: Tensor) -> Tensor:
        h = x @ self.weight.t()
        out = torch.zeros(h.size(0), h.size(1), dtype=h.dtype)
        return out.index_add_(0, dst, h.index_select(0, src) * norm.unsqueeze(1)) + self.bias


class _SAGELayer(nn.Module):
    def __init__(self, weight_l: Tensor, bias_l: Tensor, weight_r: Tensor) -> None:
        super().__init__()
        self.weight_l = nn.Parameter(weight_l.detach().clone())
        self.bias_l = nn.Parameter(bias_l.detach().clone())
        self.weight_r = nn.Parameter(weight_r.detach().clone())

    def forward(self, x: Tensor, src: Tensor, dst: Tensor, norm: Tensor) -> Tensor:
        total = torch.zeros(x.size(0), x.size(1), dtype=x.dtype)
        total = total.index_add_(0, dst, x.index_select(0, src))
        mean = total * norm.unsqueeze(1)
        return mean @ self.weight_l.t() + self.bias_l + x @ self.weight_r.t()


class GraphClassifier(nn.Module):
    """Serving network: (features [N, F], edge_index [2, E]) -> (label [N], probabilities [N, C]).

    ``label`` is ``classes[argmax]``: the class as served (see ``zoo._torch.classifier_labels``).
    """

    def __init__(self, layers: list[nn.Module], gcn: bool, classes: Tensor) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.classes = classes  # a plain attribute: TorchScript keeps it, mypy knows its type
        self.depth = len(layers)
        self.gcn = gcn

    def forward(self, features: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
        n = features.size(0)
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError("edge_index must have shape [2, edges]")
        if edge_index.numel() > 0 and (edge_index.min() < 0 or edge_index.max() >= n):
            raise ValueError("edge_index holds a node index outside the features' rows")
        src, dst = edge_index[0], edge_index[1]
        if self.gcn:  # PyG's gcn_norm: drop self-loops, add one per node, symmetric degree norm
            keep = src != dst
            loops = torch.arange(n, dtype=torch.long)
            src, dst = torch.cat([src[keep], loops]), torch.cat([dst[keep], loops])
        degree = torch.zeros(n, dtype=features.dtype).index_add_(
            0, dst, torch.ones(dst.size(0), dtype=features.dtype)
        )
        if self.gcn:
            inverse = degree.pow(-0.5)
            norm = inverse.index_select(0, src) * inverse.index_select(0, dst)
        else:  # the mean over in-neighbors, as a per-row factor
            norm = 1.0 / degree.clamp(min=1.0)
        h = features
        for i, layer in enumerate(self.layers):
            h = layer(h, src, dst, norm)
            if i < self.depth - 1:
                h = torch.relu(h)
        probabilities = torch.softmax(h, dim=-1)
        return self.classes.index_select(0, probabilities.argmax(dim=-1)), probabilities


def serving_network(convs: Any, gcn: bool, classes: Any) -> GraphClassifier:
    """Copy trained PyG ``GCNConv`` or ``SAGEConv`` layers' weights into a ``GraphClassifier``."""
    layers: list[nn.Module] = []
    for conv in convs:
        if gcn:
            layers.append(_GCNLayer(conv.lin.weight, conv.bias))
        else:
            layers.append(_SAGELayer(conv.lin_l.weight, conv.lin_l.bias, conv.lin_r.weight))
    return GraphClassifier(layers, gcn, torch.as_tensor(classes, dtype=torch.long)).eval()
