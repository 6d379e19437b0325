"""``nlp.embedding_bag``: a neural text classifier (mean of word embeddings, then an MLP).

The served ONNX model takes the raw text, a string tensor ``text`` of shape
``[-1, 1]`` (one sentence a row, as the ``nlp.tfidf_*`` entries take it), and
answers ``label`` (the class as the data writes it) and ``probabilities``. The
text front end is part of the graph: lower-casing (of ASCII letters only:
"ÉCOLE" becomes "École"), a regular-expression tokenizer (runs of letters and
digits, in any script) and the vocabulary lookup, built from the training
texts; training tokenizes the same way (``_torch_export.tokenize``), and the
export is checked against the trained model on the raw validation texts.
Words outside the vocabulary share one id, trained on the words seen fewer
than ``min_count`` times; a text without any known word gets the classes'
prior from the output layer's bias.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from aimass.plugins.columns import Columns
from aimass.plugins.entries import Entry
from aimass.zoo._classify import TextClassifierParams
from aimass.zoo._extras import TORCH

if TYPE_CHECKING:
    from collections.abc import Sequence


class EmbeddingBagParams(TextClassifierParams):
    """``nlp.embedding_bag``."""

    embedding_dim: int = Field(default=32, ge=1, le=1024)
    hidden_size: int = Field(default=32, ge=1, le=4096)
    dropout: float = Field(default=0.2, ge=0, lt=1)
    min_count: int = Field(
        default=2, ge=1, le=1000, description="fewer training occurrences: the unknown word"
    )
    max_vocabulary: int = Field(default=20_000, ge=1, le=1_000_000)
    epochs: int = Field(default=25, ge=1, le=10_000)
    learning_rate: float = Field(default=5e-3, gt=0, le=10)
    batch_size: int = Field(default=32, ge=1, le=65_536)


ENTRIES = [
    Entry(
        name="nlp.embedding_bag",
        kinds=frozenset({"train"}),
        target="aimass.zoo.nlp_neural:train",
        description=(
            "A PyTorch text classifier: the mean of learned word embeddings, then a dense "
            "layer; trained with AdamW epoch by epoch, resumable; exported to ONNX that takes "
            "raw strings (tokenizer and vocabulary inside the graph)."
        ),
        params=EmbeddingBagParams,
        needs_dataset=True,
        task="classification",
        family="nlp",
        default_dataset="text_topics",
        exports=("onnx",),
        columns=Columns(named={"text_column": "text"}, numeric_features=False),
        needs=TORCH,
        signature={
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1, 1]}],
            "outputs": [
                {"name": "label", "datatype": "BYTES", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, -1]},
            ],
        },
        example_request={
            "inputs": [
                {
                    "name": "text",
                    "datatype": "BYTES",
                    "shape": [2, 1],
                    "data": [
                        "the chef baked fresh bread this morning",
                        "a cold storm swept across the valley",
                    ],
                }
            ]
        },
    )
]


def build_vocabulary(texts: Sequence[list[str]], min_count: int, limit: int) -> list[str]:
    """Words seen at least ``min_count`` times, most frequent first (ties by spelling)."""
    from collections import Counter

    counts = Counter(token for tokens in texts for token in tokens)
    kept = sorted((t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t))
    return kept[:limit]


def encode(texts: Sequence[list[str]], vocabulary: Sequence[str]) -> Any:
    """Token ids, one row a text padded with PAD to the longest (at least one column)."""
    import numpy as np

    from aimass.zoo._torch_export import PAD, UNKNOWN

    ids = {token: i + 2 for i, token in enumerate(vocabulary)}
    width = max([len(tokens) for tokens in texts] + [1])
    matrix = np.full((len(texts), width), PAD, dtype=np.int64)
    for row, tokens in enumerate(texts):
        matrix[row, : len(tokens)] = [ids.get(token, UNKNOWN) for token in tokens]
    return matrix


def _mean_embedding(torch: Any, rows: int, dim: int) -> Any:
    from aimass.zoo._torch_export import PAD

    class MeanEmbedding(torch.nn.Module):  # type: ignore[misc]
        """The mean embedding of a row's tokens, padding left out."""

        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(rows, dim, padding_idx=PAD)

        def forward(self, ids: Any) -> Any:
            mask = (ids != PAD).unsqueeze(-1).to(torch.float32)
            total = (self.embedding(ids) * mask).sum(dim=1)
            return total / mask.sum(dim=1).clamp(min=1.0)

    return MeanEmbedding()


def train(raw: dict[str, Any]) -> dict[str, Any]:
    """Tokenize, build the vocabulary, train and checkpoint each epoch; export and register."""
    import numpy as np

    from aimass import runtime
    from aimass.zoo._classify import Split, fit_classifier, probabilities_module, text_rows
    from aimass.zoo._classify import register_classifier as register
    from aimass.zoo._torch import record_pid, setup
    from aimass.zoo._torch_export import tokenize

    params = EmbeddingBagParams.model_validate(raw)
    ctx = runtime.context()
    record_pid(ctx)
    torch, device = setup(params.seed)
    rows = text_rows(ctx, params)
    texts = [tokenize(text) for text in rows.texts]
    classes, index, train_rows, val_rows = rows.classes, rows.index, rows.train_rows, rows.val_rows
    vocabulary = build_vocabulary(
        [texts[i] for i in train_rows], params.min_count, params.max_vocabulary
    )
    ids = encode(texts, vocabulary)
    print(f"{len(vocabulary)} words in the vocabulary, {ids.shape[1]} tokens at most", flush=True)
    nn = torch.nn
    body = nn.Sequential(
        _mean_embedding(torch, len(vocabulary) + 2, params.embedding_dim),
        nn.Dropout(params.dropout),
        nn.Linear(params.embedding_dim, params.hidden_size),
        nn.ReLU(),
        nn.Linear(params.hidden_size, len(classes)),
    )
    model = probabilities_module(torch, body).to(device)
    split = Split(
        *(
            torch.from_numpy(a).to(device)
            for a in (ids[train_rows], index[train_rows], ids[val_rows], index[val_rows])
        )
    )
    resumed_from, seconds = fit_classifier(ctx, params, model, split)
    outputs = register(
        ctx,
        params,
        model,
        split,
        classes,
        entry="nlp.embedding_bag",
        suffix="embedding-bag",
        input_name="ids",
        input_axes=[0, 1],
        description=f"nlp.embedding_bag on {ctx.dataset}: {len(vocabulary)} words, "
        f"{params.embedding_dim}-d embeddings",
        vocabulary=vocabulary,
        served_inputs=np.array(rows.texts, dtype=object)[val_rows].reshape(-1, 1),
    )
    return {
        **outputs,
        "vocabulary_size": len(vocabulary),
        "epochs": params.epochs,
        "resumed_from": resumed_from,
        "train_seconds": seconds,
    }
