"""The entries every installation has: a no-op, an sklearn trainer, evaluation,
batch prediction and tuning. Each module holds one entry's params and function;
the functions run inside a job's process and import their libraries there.
They reach the catalogue through the ``builtin-jobs`` plugin (:func:`register`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aimass.jobs.builtin.onnx_export import LLM, ExportOnnxParams
from aimass.jobs.builtin.params import (
    BatchPredictParams,
    EvaluateParams,
    NoopParams,
    SgdParams,
    TuneParams,
)
from aimass.plugins.columns import Columns
from aimass.plugins.entries import Entry

if TYPE_CHECKING:
    from aimass.plugins import Registries

__all__ = ["builtin_entries", "register"]


#: The plugin contract this module's ``register`` targets (see ``aimass.plugins.contract``).
AIMASS_PLUGIN_CONTRACT = "1.0"


def register(registries: Registries) -> None:
    """Register the built-in entries (the ``builtin-jobs`` plugin)."""
    for entry in builtin_entries():
        registries.entries.register(entry)


def builtin_entries() -> list[Entry]:
    """The built-in entries, in catalogue order."""
    return [
        Entry(
            name="noop",
            kinds=frozenset({"train"}),
            target="aimass.jobs.builtin.noop:run",
            description="Does nothing (optionally sleeps): to try the platform or measure it.",
            params=NoopParams,
            light=True,
        ),
        Entry(
            name="sklearn.sgd_classifier",
            kinds=frozenset({"train"}),
            target="aimass.jobs.builtin.sgd:train",
            description="A linear classifier (logistic loss) trained epoch by epoch with "
            "scikit-learn's SGDClassifier; logs accuracy and loss per epoch, checkpoints "
            "every epoch and resumes from the last one, registers a skops model.",
            params=SgdParams,
            needs_dataset=True,
            columns=Columns(),
        ),
        Entry(
            name="evaluate",
            kinds=frozenset({"evaluate"}),
            target="aimass.jobs.builtin.evaluate:run",
            description="Evaluate a model version on a dataset; the report (classification "
            "or regression metrics) is stored on the version and its metrics set on it.",
            params=EvaluateParams,
            needs_dataset=True,
        ),
        Entry(
            name="batch_predict",
            kinds=frozenset({"batch_predict"}),
            target="aimass.jobs.builtin.batch_predict:run",
            description="Predict a dataset with a model version, chunk by chunk, into "
            "a CSV file kept as the job's artifact; logs its progress.",
            params=BatchPredictParams,
            needs_dataset=True,
        ),
        Entry(
            name="tune",
            kinds=frozenset({"tune"}),
            target="aimass.jobs.builtin.tune:run",
            description="Hyperparameter search with Optuna: each trial is a child job of "
            "another entry, run in parallel; the best trial's model is registered.",
            params=TuneParams,
            needs_dataset=True,
        ),
        Entry(
            name="transformers.export_onnx",
            kinds=frozenset({"train"}),
            target="aimass.jobs.builtin.onnx_export:run",
            description="Export a transformers version (embeddings or text classification) "
            "to ONNX, optionally int8-quantized, and register it as a new version of the same "
            "model that takes the same text (tokenizer beside the graph); its parity with the "
            "original on sample sentences is checked and stored as metrics.",
            params=ExportOnnxParams,
            needs=LLM,
        ),
    ]
