"""Metrics against numbers worked out by hand (or, for the harder ones, by scikit-learn)."""

from __future__ import annotations

import math
from itertools import product
from typing import Any

import numpy as np
import pytest

from aimass.errors import Unprocessable
from aimass.evaluation import (
    EvaluationReport,
    classification_report,
    clustering_report,
    infer_task,
    ranking_report,
    regression_report,
)

LABELS = ["ant", "bee", "cat", "dog", "eel", "fox"]
# Rows are the true class, columns the predicted one. Nobody is ever predicted "dog".
MATRIX = [
    [3, 1, 0, 0, 0, 0],
    [0, 2, 0, 0, 1, 0],
    [1, 0, 4, 0, 0, 0],
    [0, 0, 0, 0, 2, 0],
    [0, 0, 1, 0, 1, 0],
    [0, 0, 0, 0, 0, 2],
]


def _rows_from(matrix: list[list[int]], labels: list[str]) -> tuple[list[str], list[str]]:
    """y_true and y_pred holding each (true, predicted) pair as often as the matrix says."""
    pairs = [
        (labels[i], labels[j])
        for i, j in product(range(len(labels)), repeat=2)
        for _ in range(matrix[i][j])
    ]
    order = np.random.default_rng(7).permutation(len(pairs))
    return [pairs[i][0] for i in order], [pairs[i][1] for i in order]


def _auc_by_pairs(positive: list[float], negative: list[float]) -> float:
    """ROC AUC as the share of (positive, negative) pairs ranked right, ties counting half."""
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


def _all_finite(report: EvaluationReport) -> bool:
    return all(type(v) is float and math.isfinite(v) for v in report.metrics.values())


def test_six_class_confusion_matrix_and_macro_metrics() -> None:
    y_true, y_pred = _rows_from(MATRIX, LABELS)

    report = classification_report(y_true, y_pred)

    assert report.task == "classification"
    assert report.n_rows == 18
    assert report.details["confusion_matrix"] == {"labels": LABELS, "matrix": MATRIX}
    precision = [3 / 4, 2 / 3, 4 / 5, 0, 1 / 4, 1]  # "dog" never predicted: counted as 0
    recall = [3 / 4, 2 / 3, 4 / 5, 0, 1 / 2, 1]
    f1 = [3 / 4, 2 / 3, 4 / 5, 0, 1 / 3, 1]
    support = [4, 3, 5, 2, 2, 2]
    assert report.metrics == pytest.approx(
        {
            "accuracy": 12 / 18,
            "precision": sum(precision) / 6,
            "recall": sum(recall) / 6,
            "f1": sum(f1) / 6,
            "f1_weighted": sum(f * s for f, s in zip(f1, support, strict=True)) / 18,
        },
        rel=1e-12,
    )
    assert _all_finite(report)
    per_class = report.details["per_class"]
    assert isinstance(per_class, list)
    assert per_class[4] == pytest.approx(
        {"label": "eel", "precision": 0.25, "recall": 0.5, "f1": 1 / 3, "support": 2}
    )
    assert report.details["zero_division"] == {"precision": ["dog"], "recall": []}


def test_labels_set_the_matrix_order_and_may_name_unseen_classes() -> None:
    y_true, y_pred = _rows_from(MATRIX, LABELS)
    order = [*reversed(LABELS), "gnu"]

    report = classification_report(y_true, y_pred, labels=order)

    expected = [[*reversed(row), 0] for row in reversed(MATRIX)] + [[0] * 7]
    assert report.details["confusion_matrix"] == {"labels": order, "matrix": expected}
    assert report.details["zero_division"] == {"precision": ["dog", "gnu"], "recall": ["gnu"]}
    assert report.metrics["accuracy"] == pytest.approx(12 / 18)


def test_integer_labels_stay_integers_in_the_details() -> None:
    report = classification_report(np.array([2, 0, 1, 1]), np.array([2, 0, 0, 1]))

    assert report.details["confusion_matrix"] == {
        "labels": [0, 1, 2],
        "matrix": [[1, 0, 0], [1, 1, 0], [0, 0, 1]],
    }
    assert report.metrics["accuracy"] == 0.75
    assert "roc_auc" not in report.metrics
    report.model_dump_json()  # details are plain JSON


def test_a_single_class_is_reported_without_warnings() -> None:
    report = classification_report(["cat"] * 3, ["cat"] * 3, y_score=[[1.0]] * 3)

    assert report.metrics == {
        "accuracy": 1.0,
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "f1_weighted": 1.0,
    }
    assert report.details["confusion_matrix"] == {"labels": ["cat"], "matrix": [[3]]}
    assert report.details["skipped"] == {"roc_auc": "roc_auc needs at least two classes"}


def test_binary_roc_auc_from_a_positive_score_or_a_probability_matrix() -> None:
    y_true = ["no", "no", "yes", "yes", "no", "yes"]
    y_pred = ["no", "yes", "no", "yes", "no", "yes"]
    positive = [0.1, 0.4, 0.35, 0.8, 0.2, 0.9]
    expected = _auc_by_pairs([0.35, 0.8, 0.9], [0.1, 0.4, 0.2])
    assert expected == 8 / 9

    from_column = classification_report(y_true, y_pred, y_score=positive)
    from_matrix = classification_report(y_true, y_pred, y_score=[[1 - p, p] for p in positive])

    assert from_column.metrics["roc_auc"] == pytest.approx(8 / 9)
    assert from_matrix.metrics["roc_auc"] == pytest.approx(8 / 9)


def test_multiclass_roc_auc_is_the_one_vs_rest_macro_average() -> None:
    rng = np.random.default_rng(3)
    y_true = np.array([0, 1, 2] * 10)
    raw = rng.random((30, 3)) + np.eye(3)[y_true] * 0.6
    proba = raw / raw.sum(axis=1, keepdims=True)
    y_pred = proba.argmax(axis=1)
    expected = np.mean(
        [_auc_by_pairs(list(proba[y_true == c, c]), list(proba[y_true != c, c])) for c in range(3)]
    )

    report = classification_report(y_true, y_pred, y_score=proba)

    assert report.metrics["roc_auc"] == pytest.approx(expected, rel=1e-12)


def test_score_columns_follow_the_given_label_order() -> None:
    y_true = np.array(["b", "a", "c", "c", "a", "b"])
    proba = np.array(
        [
            [0.7, 0.2, 0.1],
            [0.2, 0.7, 0.1],
            [0.1, 0.3, 0.6],
            [0.3, 0.2, 0.5],
            [0.6, 0.3, 0.1],
            [0.1, 0.6, 0.3],
        ]
    )  # columns: b, a, c
    sorted_columns = proba[:, [1, 0, 2]]

    given = classification_report(y_true, y_true, y_score=proba, labels=["b", "a", "c"])
    default = classification_report(y_true, y_true, y_score=sorted_columns)

    assert given.metrics["roc_auc"] == pytest.approx(default.metrics["roc_auc"])
    assert given.metrics["roc_auc"] < 1.0


def test_roc_auc_is_skipped_with_a_reason_when_a_class_is_absent() -> None:
    report = classification_report(
        [0, 1, 1], [0, 1, 2], y_score=[[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]
    )

    assert "roc_auc" not in report.metrics
    skipped = report.details["skipped"]
    assert isinstance(skipped, dict)
    assert "absent: [2]" in str(skipped["roc_auc"])
    assert _all_finite(report)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "kwargs", "message"),
    [
        ([0, 1, 1], [0, 1], {}, "y_true has 3, y_pred has 2"),
        ([], [], {}, "y_true is empty"),
        (
            [0, 1, 2],
            [0, 1, 2],
            {"y_score": [[0.5, 0.5]] * 3},
            "y_score has 2 columns but there are 3",
        ),
        ([0, 1, 2], [0, 1, 2], {"y_score": [0.1, 0.2, 0.3]}, "y_score has 1 columns"),
        ([0, 1], [0, 1], {"y_score": [0.1, 0.2, 0.3]}, "one row per y_true value"),
        ([0, 1], [0, 1], {"y_score": [0.1, float("nan")]}, "y_score holds missing"),
        ([0.1, 0.2, 0.3], [0.1, 0.2, 0.3], {}, "y_true holds continuous values"),
        (["a", "b"], [1, 2], {}, "not comparable labels"),
        ([0, 1, 2], [0, 1, 1], {"labels": [0, 1]}, "missing from labels: [2]"),
        ([0, 1], [0, 1], {"labels": [0, 1, 1]}, "labels holds a label twice"),
        ([[0, 1], [1, 0]], [0, 1], {}, "one value per row"),
    ],
)
def test_bad_classification_input_is_unprocessable(
    y_true: Any, y_pred: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(Unprocessable, match=message.replace("[", r"\[").replace("]", r"\]")):
        classification_report(y_true, y_pred, **kwargs)


def test_regression_metrics() -> None:
    y_true = [3, -0.5, 2, 7]
    y_pred = np.array([[2.5], [0.0], [2], [8]])  # an (n, 1) column, as ONNX regressors give

    report = regression_report(y_true, y_pred)

    errors = [0.5, -0.5, 0.0, -1.0]
    mean = sum(y_true) / 4
    total = sum((y - mean) ** 2 for y in y_true)
    assert report.metrics == pytest.approx(
        {
            "rmse": math.sqrt(sum(e * e for e in errors) / 4),
            "mae": 0.5,
            "r2": 1 - sum(e * e for e in errors) / total,
        },
        rel=1e-12,
    )
    assert report.n_rows == 4
    assert _all_finite(report)


def test_r2_is_skipped_for_a_constant_target_or_a_single_row() -> None:
    constant = regression_report([2.0, 2.0, 2.0], [1.0, 2.0, 4.0])
    single = regression_report([2.0], [3.0])

    assert constant.metrics == pytest.approx({"rmse": math.sqrt(5 / 3), "mae": 1.0})
    assert constant.details["skipped"] == {
        "r2": "r2 is undefined when every y_true value is the same"
    }
    assert single.metrics == {"rmse": 1.0, "mae": 1.0}
    assert single.details["skipped"] == {"r2": "r2 needs at least two rows"}


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        ([1.0, 2.0], [1.0], "y_true has 2, y_pred has 1"),
        ([], [], "y_true is empty"),
        (["a", "b"], [1.0, 2.0], "y_true must hold numbers"),
        ([1.0, float("nan")], [1.0, 2.0], "y_true holds missing or infinite values"),
        ([1.0, 2.0], [1.0, float("inf")], "y_pred holds missing or infinite values"),
    ],
)
def test_bad_regression_input_is_unprocessable(y_true: Any, y_pred: Any, message: str) -> None:
    with pytest.raises(Unprocessable, match=message):
        regression_report(y_true, y_pred)


def test_a_perfect_ranking_scores_one_and_a_reversed_one_lower() -> None:
    relevant = [{"a", "b", "c"}]

    perfect = ranking_report(relevant, [["a", "b", "c", "x", "y"]], k=5)
    reversed_ = ranking_report(relevant, [["y", "x", "c", "b", "a"]], k=5)

    assert perfect.metrics == {"recall_at_5": 1.0, "ndcg_at_5": 1.0}
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    late = 1 / math.log2(4) + 1 / math.log2(5) + 1 / math.log2(6)
    assert reversed_.metrics["recall_at_5"] == 1.0
    assert reversed_.metrics["ndcg_at_5"] == pytest.approx(late / ideal, rel=1e-12)
    assert reversed_.metrics["ndcg_at_5"] < 1.0


def test_ranking_averages_users_and_skips_those_without_relevant_items() -> None:
    report = ranking_report(
        [{1, 2}, {3}, set(), {4, 5, 6}],
        [[1, 9, 2], [3], [1, 2], [7, 8, 4, 5, 6]],
        k=2,
    )

    # recall@2: 1/2, 1, -, 0; ndcg@2: 1/(1 + 1/log2 3), 1, -, 0
    assert report.metrics == pytest.approx(
        {"recall_at_2": 1.5 / 3, "ndcg_at_2": (1 / (1 + 1 / math.log2(3)) + 1) / 3}
    )
    assert report.details == {"k": 2, "users_evaluated": 3, "users_without_relevant": 1}
    assert report.n_rows == 4


def test_a_repeated_item_earns_nothing_after_its_first_place() -> None:
    report = ranking_report([{"a", "b"}], [["a", "a", "b"]], k=2)

    assert report.metrics["recall_at_2"] == 0.5


def test_ndcg_agrees_with_scikit_learn_on_full_rankings() -> None:
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(11)
    relevance = (rng.random((25, 8)) < 0.3).astype(int)
    relevance[:, 0] = 1  # every user has something relevant
    scores = rng.random((25, 8))
    relevant = [set(np.flatnonzero(row).tolist()) for row in relevance]
    ranked = [np.argsort(-row).tolist() for row in scores]

    for k in (1, 3, 8):
        report = ranking_report(relevant, ranked, k=k)
        assert report.metrics[f"ndcg_at_{k}"] == pytest.approx(
            ndcg_score(relevance, scores, k=k), rel=1e-12
        )


def test_ranking_with_nobody_relevant_skips_both_metrics() -> None:
    report = ranking_report([set(), []], [[1], [2]], k=3)

    assert report.metrics == {}
    assert report.details["skipped"] == {
        "recall_at_3": "no user has any relevant item",
        "ndcg_at_3": "no user has any relevant item",
    }


@pytest.mark.parametrize(
    ("relevant", "ranked", "k", "message"),
    [
        ([{1}], [[1], [2]], 10, "relevant has 1, ranked has 2"),
        ([], [], 10, "relevant is empty"),
        ([{1}], [[1]], 0, "k must be a whole number of at least 1"),
    ],
)
def test_bad_ranking_input_is_unprocessable(
    relevant: Any, ranked: Any, k: int, message: str
) -> None:
    with pytest.raises(Unprocessable, match=message):
        ranking_report(relevant, ranked, k=k)


def test_clustering_silhouette_and_agreement_with_true_labels() -> None:
    X = np.array([[0.0], [1.0], [10.0], [11.0]])

    report = clustering_report(X, ["p", "p", "q", "q"], y_true=[1, 1, 0, 0])

    # For 0 and 11: a = 1, b = 10.5; for 1 and 10: a = 1, b = 9.5.
    silhouette = (9.5 / 10.5 + 8.5 / 9.5) / 2
    assert report.metrics == pytest.approx(
        {"silhouette": silhouette, "adjusted_rand": 1.0, "nmi": 1.0}, rel=1e-12
    )
    assert report.details == {"n_clusters": 2, "silhouette_rows": 4}


def test_clustering_agreement_scores_match_scikit_learn() -> None:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    rng = np.random.default_rng(5)
    X = rng.random((40, 3))
    labels = rng.integers(0, 3, 40)
    truth = rng.integers(0, 4, 40)

    report = clustering_report(X, labels, y_true=truth)

    assert report.metrics["adjusted_rand"] == adjusted_rand_score(truth, labels)
    assert report.metrics["nmi"] == normalized_mutual_info_score(truth, labels)


def test_silhouette_is_skipped_for_one_cluster_and_sampled_when_large(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aimass.evaluation import metrics

    one = clustering_report(np.zeros((5, 2)), [0] * 5)
    assert one.metrics == {}
    assert one.details["skipped"] == {
        "silhouette": "silhouette needs 2 <= clusters < rows; got 1 clusters"
    }

    monkeypatch.setattr(metrics, "SILHOUETTE_SAMPLE", 50)
    X = np.concatenate([np.zeros((100, 2)), np.ones((100, 2))])
    sampled = clustering_report(X, [0] * 100 + [1] * 100)
    assert sampled.details["silhouette_rows"] == 50
    assert sampled.metrics == {"silhouette": 1.0}


@pytest.mark.parametrize(
    ("X", "labels", "y_true", "message"),
    [
        (np.zeros((3, 2)), [0, 1], None, "X has 3, labels has 2"),
        (np.zeros(3), [0, 1, 1], None, "X must be a 2-D array of numbers"),
        (np.zeros((3, 2)), [0, 1, 1], [0, 1], "labels has 3, y_true has 2"),
        (np.array([[0.0], [np.nan], [1.0]]), [0, 1, 1], None, "X holds missing"),
        (np.zeros((0, 2)), [], None, "labels is empty"),
    ],
)
def test_bad_clustering_input_is_unprocessable(
    X: Any, labels: Any, y_true: Any, message: str
) -> None:
    with pytest.raises(Unprocessable, match=message):
        clustering_report(X, labels, y_true=y_true)


@pytest.mark.parametrize(
    ("y_true", "task"),
    [
        ([0, 1, 2, 1], "classification"),
        (["cat", "dog"], "classification"),
        ([True, False, True], "classification"),
        (np.arange(100), "classification"),  # integers are labels unless told otherwise
        ([0.0, 1.0, 1.0, 0.0], "classification"),  # whole floats, few values
        ([0.5, 1.5, 0.5, 1.5, 2.5, 2.5], "classification"),  # few values that repeat
        ([0.5, 1.5, 2.25], "regression"),  # each value once
        (np.linspace(0, 1, 50), "regression"),
        (np.arange(30, dtype=float), "regression"),  # whole floats, too many values
    ],
)
def test_infer_task(y_true: Any, task: str) -> None:
    assert infer_task(y_true) == task


def test_infer_task_calls_the_diabetes_target_regression() -> None:
    from sklearn.datasets import load_diabetes

    _, target = load_diabetes(return_X_y=True)
    assert infer_task(target) == "regression"


def test_infer_task_refuses_empty_or_missing_targets() -> None:
    with pytest.raises(Unprocessable, match="y_true is empty"):
        infer_task([])
    with pytest.raises(Unprocessable, match="missing"):
        infer_task([1.0, float("nan")])
