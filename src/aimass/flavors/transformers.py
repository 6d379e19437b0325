"""The transformers flavor: a Hugging Face model directory, uploaded as a ZIP archive.

What the archive may hold is checked without importing anything heavy
(:mod:`aimass.flavors._hf_files`): safetensors weights, JSON configs and tokenizer
files; code, ``auto_map``/``trust_remote_code``, file names leaving the folder and
(unless trusted) pickled weights are refused. The task comes from ``aimass.json``
(``{"task": ...}``) or the config's ``architectures``; the signature follows from
the task (BYTES ``text`` in). Loading needs the ``llm`` extra and never touches
the network (``local_files_only`` and a folder, everywhere). A server holding or
receiving such a model imports torch and transformers in the background
(:meth:`TransformersFlavor.warm`), so a deployment created later skips that cost.

It loads in the server process, unlike pickle or TorchScript: safetensors and
JSON are data (DESIGN decision 6), and the code that runs is transformers' own
for the architecture the config names, installed with the server, never code
from the upload.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import TYPE_CHECKING, ClassVar

from aimass.errors import Unprocessable
from aimass.flavors._hf_files import extract_model_archive, is_model_archive, read_model_archive
from aimass.flavors.base import Flavor
from aimass.flavors.signature import Signature, TensorSpec

if TYPE_CHECKING:
    from pathlib import Path

    from aimass.flavors._hf_files import ModelDirectory
    from aimass.flavors.base import Predictor

#: The tasks this flavor serves.
TASKS = (
    "feature-extraction",
    "text-classification",
    "token-classification",
    "fill-mask",
    "text-generation",
    "image-classification",
)
#: Tokens a fill-mask model answers, unless ``aimass.json`` says ``top_k``.
DEFAULT_TOP_K = 5
#: The command that installs what the flavor needs.
INSTALL = "pip install 'aimass[llm]'"
_MODULES = ("torch", "transformers", "tokenizers", "safetensors")
#: OpenAI route families each task answers.
OPENAI_ROUTES = {
    "feature-extraction": ("embeddings",),
    "text-generation": ("completions", "chat.completions"),
}


def unavailable() -> str | None:
    """Why the flavor cannot load models here, with the install command; None when it can."""
    missing = []
    for module in _MODULES:
        try:
            found = find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module)
    if not missing:
        return None
    return (
        "the transformers flavor needs the llm extra, which is not installed on the server "
        f"(no module {', '.join(missing)}): {INSTALL}"
    )


def detect_task(directory: ModelDirectory) -> str:
    """The task named in ``aimass.json``, else the one the config's architectures imply."""
    named = directory.task
    if named is not None:
        if named not in TASKS:
            raise Unprocessable(f"unknown task {named!r} in aimass.json; one of {', '.join(TASKS)}")
        return named
    architectures = directory.config.get("architectures") or []
    if not isinstance(architectures, list):
        architectures = []
    for arch in (a for a in architectures if isinstance(a, str)):
        if arch.endswith("ForSequenceClassification"):
            return "text-classification"
        if arch.endswith("ForTokenClassification"):
            return "token-classification"
        if arch.endswith("ForMaskedLM"):
            return "fill-mask"
        if arch.endswith("ForImageClassification"):
            return "image-classification"
        if arch.endswith(("ForCausalLM", "LMHeadModel")):
            return "text-generation"
        if arch.endswith("Model") and "For" not in arch:
            return "feature-extraction"
    raise Unprocessable(
        f"cannot tell the task from config.json (architectures {architectures!r}); "
        f'add aimass.json with {{"task": ...}}, one of {", ".join(TASKS)}'
    )


def task_signature(directory: ModelDirectory, task: str) -> Signature:
    """BYTES text (or image) in; embeddings, label and scores, entities, top tokens or text
    out."""
    text = TensorSpec(name="text", datatype="BYTES", shape=[-1])
    config = directory.config
    labels = config.get("id2label")
    count = len(labels) if isinstance(labels, dict) else int(config.get("num_labels", 2))
    if task == "image-classification":
        image = TensorSpec(name="image", datatype="BYTES", shape=[-1])
        return Signature(
            inputs=[image],
            outputs=[
                TensorSpec(name="label", datatype="BYTES", shape=[-1]),
                TensorSpec(name="scores", datatype="FP32", shape=[-1, count]),
            ],
        )
    if task == "token-classification":
        entities = TensorSpec(name="entities", datatype="BYTES", shape=[-1])
        return Signature(inputs=[text], outputs=[entities])
    if task == "fill-mask":
        k = _setting(directory, "top_k", 1, 100, DEFAULT_TOP_K)
        return Signature(
            inputs=[text],
            outputs=[
                TensorSpec(name="tokens", datatype="BYTES", shape=[-1, k]),
                TensorSpec(name="scores", datatype="FP32", shape=[-1, k]),
            ],
        )
    if task == "feature-extraction":
        width = config.get("hidden_size") or config.get("d_model") or config.get("n_embd")
        dim = int(width) if isinstance(width, int) else -1
        outputs = [TensorSpec(name="embedding", datatype="FP32", shape=[-1, dim])]
    elif task == "text-classification":
        outputs = [
            TensorSpec(name="label", datatype="BYTES", shape=[-1]),
            TensorSpec(name="scores", datatype="FP32", shape=[-1, count]),
        ]
    else:
        outputs = [TensorSpec(name="generated_text", datatype="BYTES", shape=[-1])]
    return Signature(inputs=[text], outputs=outputs)


def cls_pooling(directory: ModelDirectory) -> bool:
    """Whether a sentence-transformers pooling config asks for the CLS token (else mean)."""
    pooling = directory.json_files.get("1_Pooling/config.json")
    return isinstance(pooling, dict) and bool(pooling.get("pooling_mode_cls_token"))


def _setting(directory: ModelDirectory, key: str, low: int, high: int, default: int) -> int:
    """An integer of ``aimass.json`` between ``low`` and ``high``, else ``default``."""
    value = directory.json_files.get("aimass.json", {})
    number = value.get(key) if isinstance(value, dict) else None
    return number if isinstance(number, int) and low <= number <= high else default


class TransformersFlavor(Flavor):
    """Hugging Face directories (ZIP): embeddings, text, token and image classification,
    fill-mask, generation."""

    name: ClassVar[str] = "transformers"
    requires_trust: ClassVar[bool] = False

    def sniff(self, path: Path, filename: str) -> bool:
        """Recognise a ZIP with ``config.json`` at its root or in its one top folder."""
        return is_model_archive(path)

    def inspect(self, path: Path, trusted: bool) -> Signature | None:
        """Check the archive (no code, no pickles unless trusted) and derive the signature."""
        directory = read_model_archive(path, trusted)
        problem = _unavailable_for(directory)
        if problem is not None:
            raise Unprocessable(problem)
        task = detect_task(directory)
        if directory.runtime == "onnx":
            _check_onnx_directory(path, directory, task)
        else:
            self.warm("a transformers model was uploaded")  # it is likely deployed next
        return task_signature(directory, task)

    def warm(self, reason: str) -> None:
        """Import torch and transformers on a background thread, once, when installed."""
        if unavailable() is None:
            from aimass.flavors._hf_libraries import warm_in_background

            warm_in_background(reason)

    def load(self, path: Path, trusted: bool) -> Predictor:
        """Extract the checked archive beside its verified copy and load it offline."""
        from aimass.flavors._hf_predictors import (
            DEFAULT_NEW_TOKENS,
            ClassificationPredictor,
            EmbeddingPredictor,
            GenerationPredictor,
            TextModel,
        )
        from aimass.flavors._hf_tasks import (
            FillMaskPredictor,
            ImageClassificationPredictor,
            TokenClassificationPredictor,
        )

        folder = path.with_name(f"{path.name}.d")
        directory = extract_model_archive(path, folder, trusted)
        problem = _unavailable_for(directory)
        if problem is not None:
            raise Unprocessable(problem)
        task = detect_task(directory)
        signature = task_signature(directory, task)
        if directory.runtime == "onnx":
            from aimass.flavors._hf_onnx import OnnxTextPredictor

            _check_onnx_directory(path, directory, task)
            return OnnxTextPredictor(folder, signature, task)
        if task == "image-classification":
            return ImageClassificationPredictor(folder, signature, trusted)
        predictor: TextModel
        if task == "feature-extraction":
            predictor = EmbeddingPredictor(folder, signature, trusted, cls_pooling(directory))
        elif task == "text-classification":
            predictor = ClassificationPredictor(folder, signature, trusted)
        elif task == "token-classification":
            predictor = TokenClassificationPredictor(folder, signature, trusted)
        elif task == "fill-mask":
            k = _setting(directory, "top_k", 1, 100, DEFAULT_TOP_K)
            predictor = FillMaskPredictor(folder, signature, trusted, k)
        else:
            tokens = _setting(directory, "max_new_tokens", 1, 4096, DEFAULT_NEW_TOKENS)
            predictor = GenerationPredictor(folder, signature, trusted, tokens)
        predictor.task = task
        return predictor


def _unavailable_for(directory: ModelDirectory) -> str | None:
    """What this server lacks to run the directory: onnxruntime and tokenizers, or the extra."""
    if directory.runtime == "onnx":
        from aimass.flavors._hf_onnx import unavailable as onnx_unavailable

        return onnx_unavailable()
    return unavailable()


def _check_onnx_directory(path: Path, directory: ModelDirectory, task: str) -> None:
    """An ONNX directory serves embeddings or classes, with a graph that passes the checks."""
    import zipfile

    from aimass.flavors._hf_files import ONNX_MODEL
    from aimass.flavors._hf_onnx import ONNX_TASKS, check_archive_graph

    if task not in ONNX_TASKS:
        raise Unprocessable(
            f"an ONNX transformers directory serves {' or '.join(ONNX_TASKS)}, not {task!r}"
        )
    with zipfile.ZipFile(path) as archive:
        member = f"{directory.root}/{ONNX_MODEL}" if directory.root else ONNX_MODEL
        check_archive_graph(archive, member)
