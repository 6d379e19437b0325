"""A Hugging Face directory whose weights are one ONNX graph: tokenizers, then onnxruntime.

What ``transformers.export_onnx`` registers: ``model.onnx`` (token ids, attention
mask and token types in; the pooled, normalised ``embedding`` or the softmax
``scores`` out), the tokenizer (``tokenizer.json``), ``config.json`` (labels,
width) and ``aimass.json`` with ``"runtime": "onnx"``. It takes BYTES text like
the transformers version of the same model and answers the same outputs, but
needs neither torch nor transformers: the Rust ``tokenizers`` library splits the
text, onnxruntime runs the graph. The graph is checked as an uploaded ``.onnx``
is (no external data, no custom operators, the checker).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from aimass.errors import Unprocessable
from aimass.flavors._hf_files import ONNX_MODEL, TASK_FILE
from aimass.flavors._hf_tokens import count_tokens, encode, load_tokenizer, read_json, texts

if TYPE_CHECKING:
    import zipfile
    from collections.abc import Sequence
    from pathlib import Path

    from aimass.flavors.base import Array, Batch
    from aimass.flavors.signature import Signature

#: The tasks an ONNX directory may serve.
ONNX_TASKS = ("feature-extraction", "text-classification")
_MODULES = ("onnxruntime", "tokenizers")


def unavailable() -> str | None:
    """Why ONNX directories cannot be served here (the ``tokenizers`` module), or None."""
    from importlib.util import find_spec

    missing = [m for m in _MODULES if find_spec(m) is None]
    if not missing:
        return None
    return (
        "an ONNX transformers directory needs the tokenizers library, which is not installed "
        f"on the server (no module {', '.join(missing)}): pip install 'aimass[llm]'"
    )


def check_graph(data: bytes) -> None:
    """Refuse a graph that reads other files or uses custom operators, or fails the checker."""
    import onnx

    from aimass.flavors.onnx import check_domains, check_external_data

    try:
        model = onnx.ModelProto.FromString(data)
        check_external_data(model)
        check_domains(model)
        onnx.checker.check_model(model)
    except Unprocessable:
        raise
    except Exception as exc:
        raise Unprocessable(f"{ONNX_MODEL!r} is not a valid ONNX model: {exc}") from None


def check_archive_graph(archive: zipfile.ZipFile, member: str) -> None:
    """Read the archive's graph member and check it (see :func:`check_graph`)."""
    with archive.open(member) as src:
        check_graph(src.read())


class OnnxTextPredictor:
    """Text in, the graph's answer out: embeddings, or label and scores."""

    def __init__(
        self, folder: Path, signature: Signature, task: str, threads: int | None = None
    ) -> None:
        import onnxruntime as ort

        self.signature: Signature | None = signature
        self.task = task
        length = read_json(folder / TASK_FILE).get("max_length")
        tokenizer = load_tokenizer(folder, length if isinstance(length, int) else None)
        if tokenizer is None:
            raise Unprocessable("an ONNX model directory needs its tokenizer.json")
        self.tokenizer = tokenizer
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads is not None:  # a benchmark measuring one core; serving keeps the default
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(folder / ONNX_MODEL), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.inputs = [i.name for i in self.session.get_inputs()]
        id2label = read_json(folder / "config.json").get("id2label") or {}
        count = len(id2label) if isinstance(id2label, dict) else 0
        self.labels = np.array([str(id2label.get(str(i), i)) for i in range(count)], dtype=object)

    def count_tokens(self, items: list[str]) -> int:
        """The tokens ``items`` make (truncated, unpadded)."""
        return count_tokens(self.tokenizer, items)

    def run(self, batch: Batch) -> Array:
        """The graph's one output for the batch's texts."""
        items = texts(batch)
        if not items:
            width = self.session.get_outputs()[0].shape[-1]
            return np.zeros((0, width if isinstance(width, int) else 0), dtype=np.float32)
        feeds = encode(self.tokenizer, items)
        out: Array = self.session.run(None, {k: feeds[k] for k in self.inputs})[0]
        return out.astype(np.float32, copy=False)

    def predict(self, batch: Batch) -> Array:
        """Embeddings, or the labels of the highest scores."""
        out = self.run(batch)
        if self.task == "text-classification":
            labels: Array = self.labels[out.argmax(axis=1)]
            return labels
        return out

    def predict_proba(self, batch: Batch) -> Array | None:
        """The class scores of a classifier; None for embeddings."""
        return self.run(batch) if self.task == "text-classification" else None

    def predict_named(self, batch: Batch, names: Sequence[str] = ()) -> dict[str, Array]:
        """Every output by name: ``embedding``, or ``label`` and ``scores``."""
        out = self.run(batch)
        if self.task == "text-classification":
            return {"label": self.labels[out.argmax(axis=1)], "scores": out}
        return {"embedding": out}
