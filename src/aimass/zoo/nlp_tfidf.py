"""``nlp.tfidf_linear``: TF-IDF features and a logistic regression, on raw text.

Trains on a table with a text column and a label column (default ``text`` and
``label``, as the built-in ``text_topics`` set has) and registers one ONNX graph
that does the tokenizing, the TF-IDF weighting and the classification, so the
served model takes raw strings: ``text`` BYTES [-1, 1] in, ``label`` (the class
names) and ``probabilities`` out.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aimass.plugins.columns import Columns
from aimass.plugins.entries import Entry

__all__ = ["ENTRIES"]


class TfidfLinearParams(BaseModel):
    """``nlp.tfidf_linear``."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(default="text", min_length=1, description="the raw-text column")
    target: str = Field(default="label", min_length=1, description="the label column")
    ngram_max: int = Field(default=2, ge=1, le=5, description="word n-grams of 1..ngram_max")
    min_df: int = Field(default=1, ge=1, le=1_000_000, description="drop rarer terms")
    max_features: int | None = Field(default=20_000, ge=1, le=10_000_000)
    C: float = Field(default=10.0, gt=0, le=1e6, description="inverse regularization strength")
    max_iter: int = Field(default=1000, ge=1, le=100_000)
    test_size: float = Field(default=0.25, gt=0, lt=1, description="validation share")
    seed: int = Field(default=0, ge=0)
    model_name: str | None = Field(
        default=None, min_length=1, max_length=128, description="default: <dataset>-tfidf-linear"
    )


ENTRIES: list[Entry] = [
    Entry(
        name="nlp.tfidf_linear",
        kinds=frozenset({"train"}),
        target="aimass.zoo.nlp_tfidf:train",
        description="Text classification: TF-IDF word n-grams and a logistic regression "
        "(scikit-learn), exported as one ONNX graph that takes raw strings.",
        params=TfidfLinearParams,
        needs_dataset=True,
        task="classification",
        family="nlp",
        default_dataset="text_topics",
        exports=("onnx",),
        columns=Columns(target_default="label", named={"text": "text"}, numeric_features=False),
        signature={
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1, 1]}],
            "outputs": [
                {"name": "label", "datatype": "BYTES", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, 4]},
            ],
        },
        example_request={
            "inputs": [
                {
                    "name": "text",
                    "datatype": "BYTES",
                    "shape": [2, 1],
                    "data": ["the striker scored in the final", "the storm hit the coast"],
                }
            ]
        },
    )
]


def train(params: dict[str, Any]) -> dict[str, Any]:
    """Train ``nlp.tfidf_linear`` in the job's process."""
    from aimass.zoo._onnx import text_to_onnx
    from aimass.zoo._supervised import Log, Split, run_supervised

    def fit(data: Split, log: Log) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        from aimass.zoo._classical_fit import classification_step

        model = make_pipeline(
            TfidfVectorizer(
                ngram_range=(1, params["ngram_max"]),
                min_df=params["min_df"],
                max_features=params["max_features"],
                sublinear_tf=True,
            ),
            LogisticRegression(C=params["C"], max_iter=params["max_iter"], random_state=data.seed),
        ).fit(data.x_train, data.y_train)
        proba = model.predict_proba(data.x_val)
        log(1, classification_step(data.y_val, proba, model.classes_))
        return model

    return run_supervised(
        params,
        entry="nlp.tfidf_linear",
        task="classification",
        fit=fit,
        export=lambda model, _: text_to_onnx(model),
        text=params["text"],
    )
