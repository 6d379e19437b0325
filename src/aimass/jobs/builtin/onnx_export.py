"""``transformers.export_onnx``: a transformers version exported to ONNX (optionally int8),
registered as a new version of the same model, its parity with the original stored as metrics.

The job downloads the version (feature-extraction or text-classification),
loads it as the server would, wraps it so the graph does the pooling and
normalising (embeddings) or the softmax (classes), exports it with
``torch.onnx.export`` and, when ``quantize`` is on, quantizes the weights of its
matrix products to int8 (``onnxruntime.quantization.quantize_dynamic``). The new
directory holds the graph, the tokenizer and the config, and ``aimass.json``
says ``"runtime": "onnx"``: the transformers flavor serves it with the
``tokenizers`` library and onnxruntime (no torch), taking the same BYTES text.
Before it is registered, both run on a sample of sentences: the mean cosine
similarity of the embeddings (``parity_cosine_mean``, ``parity_cosine_min``) or
the share of equal labels (``parity_label_agreement``) must reach ``min_parity``.
"""

from __future__ import annotations

import json
import shutil
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from aimass.plugins.needs import Needs

if TYPE_CHECKING:
    from pathlib import Path

    from aimass.entities.registry import ModelVersion
    from aimass.flavors._hf_files import ModelDirectory
    from aimass.runtime import JobContext

__all__ = ["LLM", "ExportOnnxParams", "run"]

#: What the export needs: the llm extra (torch and transformers load the source version).
LLM = Needs("llm", ("torch", "transformers", "tokenizers", "safetensors"))

_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "config.json",
)
_OPSET = 17
#: The sentences parity is checked on unless the job names its own: varied topics and lengths.
SAMPLE = [
    "The chef baked fresh bread this morning.",
    "A cold storm swept across the valley last night.",
    "The striker scored twice in the final minutes of the match.",
    "My laptop crashed right after the software update.",
    "Stir the soup slowly and add a pinch of salt.",
    "Heavy rain is expected over the weekend, with strong winds.",
    "The goalkeeper saved a penalty and the crowd cheered.",
    "The new phone has a faster chip and a brighter screen.",
    "How do I reset my password?",
    "Where is the nearest train station?",
    "Interest rates rose again this quarter, worrying investors.",
    "The museum opens a new exhibition of modern sculpture in May.",
    "She planted tomatoes, basil and peppers in the garden.",
    "The committee postponed its decision until next month.",
    "Our flight was delayed by three hours because of fog.",
    "Photosynthesis turns light, water and carbon dioxide into sugar.",
    "The quick brown fox jumps over the lazy dog.",
    "Please send the invoice to the accounting department by Friday.",
    "He has been learning to play the violin since he was six.",
    "The database migration finished without errors.",
    "Fresh snow covered the mountains overnight.",
    "Add two eggs, then whisk until the batter is smooth.",
    "The team signed a young midfielder from a rival club.",
    "A security patch fixes a bug in the network driver.",
    "yes",
    "no thanks",
    "héllo wörld, ünïcode too",
    "Ein kurzer Satz auf Deutsch über das Wetter.",
    "Une phrase en français sur la cuisine.",
    "The model platform serves embeddings, labels and generated text over HTTP.",
    "After a long and tiring week of meetings, deadlines and unexpected problems with the "
    "servers, the whole team finally went out for dinner together on Friday evening.",
    "",
]


class ExportOnnxParams(BaseModel):
    """``transformers.export_onnx``."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=256, description="the model to export")
    version: str = Field(
        default="latest", min_length=1, max_length=64, description="a version number or alias"
    )
    quantize: bool = Field(default=True, description="int8 dynamic quantisation of the weights")
    max_length: int | None = Field(
        default=None, ge=4, le=512, description="tokens kept of a text (default: the model's)"
    )
    sample: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=10_000,
        description="sentences the parity check runs on (default: 32 built-in ones)",
    )
    min_parity: float = Field(
        default=0.95, ge=0, le=1, description="least mean cosine, or label agreement, accepted"
    )


def run(raw: dict[str, Any]) -> dict[str, Any]:
    """Export, quantize, check parity, register; the new version and its parity metrics."""
    from aimass import runtime
    from aimass.flavors._hf_files import zip_folder
    from aimass.flavors.transformers import detect_task

    params = ExportOnnxParams.model_validate(raw)
    ctx = runtime.context()
    source, folder, directory = fetch_version(ctx, params.model, params.version, "source")
    task = detect_task(directory)
    if directory.runtime == "onnx" or task not in ("feature-extraction", "text-classification"):
        raise ValueError(
            f"{params.model} version {source.version} ({task}, runtime {directory.runtime}) "
            "is not a transformers embedding or text-classification model"
        )
    out = ctx.scratch / "onnx"
    max_length, metrics = export_directory(
        folder, directory, source.trusted, out, params.quantize, params.max_length,
        params.sample or SAMPLE,
    )  # fmt: skip
    shown = " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
    print(f"parity with version {source.version}: {shown}", flush=True)
    key = "parity_cosine_mean" if task == "feature-extraction" else "parity_label_agreement"
    if metrics[key] < params.min_parity:
        raise ValueError(
            f"the ONNX graph's {key} is {metrics[key]:.4f}, under min_parity {params.min_parity}"
        )
    packed = zip_folder(out, ctx.scratch / "onnx.zip")
    precision = "int8" if params.quantize else "fp32"
    version = ctx.register_model(
        params.model,
        packed,
        metrics={**source.metrics, **metrics},
        tags={
            **{k: v for k, v in source.tags.items() if k in ("task", "base", "source")},
            "entry": "transformers.export_onnx",
            "runtime": "onnx",
            "precision": precision,
            "exported_from": str(source.version),
        },
        description=f"version {source.version} as ONNX ({precision}, {max_length} tokens)",
    )
    return {
        **metrics,
        "model": version.model,
        "model_version": version.version,
        "exported_from": source.version,
        "precision": precision,
        "size": version.size,
    }


def fetch_version(
    ctx: JobContext, model: str, version: str, name: str
) -> tuple[ModelVersion, Path, ModelDirectory]:
    """A registered transformers version (number, alias or ``latest``), downloaded and extracted
    into ``ctx.scratch / name``: the version, the folder and what it holds."""
    from aimass.flavors._hf_files import extract_model_archive

    models = ctx.client.models
    ref: int | str = int(version) if version.isdigit() else version
    if ref == "latest":
        found = models.versions(model)
        if not found:
            raise ValueError(f"model {model!r} has no version")
        ref = found[0].version
    source = models.get_version(model, ref)
    if source.flavor != "transformers":
        raise ValueError(
            f"{model} version {source.version} is a {source.flavor} model, not a transformers one"
        )
    archive = models.download(model, source.version, ctx.scratch / f"{name}.zip")
    folder = ctx.scratch / name
    return source, folder, extract_model_archive(archive, folder, source.trusted)


def export_directory(
    folder: Path,
    directory: ModelDirectory,
    trusted: bool,
    out: Path,
    quantize: bool,
    max_length: int | None,
    sample: list[str],
) -> tuple[int, dict[str, float]]:
    """Write the ONNX directory of the extracted transformers ``folder`` into ``out``.

    Returns the tokens kept of a text and the parity metrics on ``sample``.
    """
    from aimass.flavors._hf_libraries import import_libraries
    from aimass.flavors.transformers import detect_task, task_signature
    from aimass.job_environment import job_threads

    torch, _ = import_libraries()

    torch.set_num_threads(job_threads())
    task = detect_task(directory)
    signature = task_signature(directory, task)
    reference = _reference(folder, signature, task, trusted, directory)
    length = max_length or int(reference.max_length)
    reference.max_length = length
    out.mkdir(parents=True)
    fp32 = out.with_name(f"{out.name}.fp32.onnx")
    _export(torch, reference, task, fp32)
    graph = out / "model.onnx"
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # Per-channel scales: the mean cosine to fp32 rises from 0.956 to 0.991 on MiniLM.
        quantize_dynamic(str(fp32), str(graph), weight_type=QuantType.QInt8, per_channel=True)
        fp32.unlink()
    else:
        fp32.replace(graph)
    for name in _TOKENIZER_FILES:
        if (folder / name).is_file():
            shutil.copyfile(folder / name, out / name)
    settings = {"task": task, "runtime": "onnx", "max_length": length}
    (out / "aimass.json").write_text(json.dumps(settings))
    return length, _parity(reference, out, signature, task, sample)


def _reference(
    folder: Path, signature: Any, task: str, trusted: bool, directory: ModelDirectory
) -> Any:
    from aimass.flavors._hf_predictors import ClassificationPredictor, EmbeddingPredictor
    from aimass.flavors.transformers import cls_pooling

    if task == "feature-extraction":
        return EmbeddingPredictor(folder, signature, trusted, cls_pooling(directory))
    return ClassificationPredictor(folder, signature, trusted)


def _export(torch: Any, reference: Any, task: str, path: Path) -> None:
    """Trace the model with its pooling (embeddings) or softmax (classes) into one graph."""
    from aimass.flavors._hf_predictors import mean_pool

    model = reference.model
    cls = bool(getattr(reference, "cls", False))

    class Graph(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            if task == "text-classification":
                return torch.softmax(out.logits, dim=-1)
            states = out.last_hidden_state
            if cls:
                return torch.nn.functional.normalize(states[:, 0], p=2, dim=1)
            return mean_pool(torch, states, attention_mask)

    encoded = reference.encode(["an example sentence", "and a second, longer one to pad"])
    types = encoded.get("token_type_ids")
    if types is None:
        types = torch.zeros_like(encoded["input_ids"])
    example = (encoded["input_ids"], encoded["attention_mask"], types)
    output = "scores" if task == "text-classification" else "embedding"
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    axes[output] = {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(
            Graph().eval(),
            example,
            str(path),
            input_names=names,
            output_names=[output],
            dynamic_axes=axes,
            opset_version=_OPSET,
            dynamo=False,
        )


def _parity(
    reference: Any, folder: Path, signature: Any, task: str, sample: list[str]
) -> dict[str, float]:
    """Run both on ``sample`` (64 at a time): cosine similarities, or label agreement."""
    import numpy as np

    from aimass.flavors._hf_onnx import OnnxTextPredictor

    exported = OnnxTextPredictor(folder, signature, task)
    batch = 64
    chunks = [np.array(sample[i : i + batch], dtype=object) for i in range(0, len(sample), batch)]
    if task == "feature-extraction":
        cosines = np.concatenate(
            [(reference.predict(c) * exported.predict(c)).sum(axis=1) for c in chunks]
        )
        return {
            "parity_cosine_mean": float(cosines.mean()),
            "parity_cosine_min": float(cosines.min()),
        }
    same = np.concatenate([reference.predict(c) == exported.predict(c) for c in chunks])
    return {"parity_label_agreement": float(same.mean())}
