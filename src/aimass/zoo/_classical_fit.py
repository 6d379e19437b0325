"""The classical entries' fit functions: build the model, fit it, log per iteration.

Each takes the entry's (validated) params, the data split and a ``log``
callback, and returns the fitted model; ``zoo._supervised`` does the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aimass.zoo._supervised import Array, Log, Split


def classification_step(y_val: Array, proba: Array, classes: Array) -> dict[str, float]:
    """Validation accuracy, log loss and (binary) ROC AUC from probabilities."""
    import numpy as np
    from sklearn.metrics import log_loss, roc_auc_score

    metrics = {
        "accuracy": float(np.mean(classes[np.argmax(proba, axis=1)] == y_val)),
        "log_loss": float(log_loss(y_val, proba, labels=classes)),
    }
    if len(classes) == 2:
        metrics["roc_auc"] = float(roc_auc_score(y_val == classes[1], proba[:, 1]))
    return metrics


def fit_logistic_regression(params: dict[str, Any], data: Split, log: Log) -> Any:
    """Standard scaling + logistic regression; final validation metrics at step 1."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=params["C"], max_iter=params["max_iter"], random_state=data.seed),
    ).fit(data.x_train, data.y_train)
    log(1, classification_step(data.y_val, model.predict_proba(data.x_val), model.classes_))
    return model


def fit_random_forest(params: dict[str, Any], data: Split, log: Log) -> Any:
    """A forest grown ``trees_per_step`` trees at a time (warm start), logged after each."""
    from sklearn.ensemble import RandomForestClassifier

    from aimass.zoo._supervised import threads

    total, per = params["n_estimators"], params["trees_per_step"]
    model = RandomForestClassifier(
        n_estimators=0,
        warm_start=True,
        max_depth=params["max_depth"],
        min_samples_leaf=params["min_samples_leaf"],
        random_state=data.seed,
        n_jobs=threads(),
    )
    for step, trees in enumerate(range(per, total + per, per), start=1):
        model.set_params(n_estimators=min(trees, total))
        model.fit(data.x_train, data.y_train)
        metrics = classification_step(data.y_val, model.predict_proba(data.x_val), model.classes_)
        log(step, {**metrics, "trees": float(model.n_estimators)})
    return model


def fit_hist_gradient_boosting(params: dict[str, Any], data: Split, log: Log) -> Any:
    """All rounds (no early stopping), then each round's validation metrics from staged scores."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        max_iter=params["max_iter"],
        learning_rate=params["learning_rate"],
        max_leaf_nodes=params["max_leaf_nodes"],
        l2_regularization=params["l2_regularization"],
        early_stopping=False,
        random_state=data.seed,
    ).fit(data.x_train, data.y_train)
    for step, proba in enumerate(model.staged_predict_proba(data.x_val), start=1):
        log(step, classification_step(data.y_val, proba, model.classes_))
    return model


def fit_ridge(params: dict[str, Any], data: Split, log: Log) -> Any:
    """Standard scaling + ridge regression; validation R², RMSE and MAE at step 1."""
    from sklearn.linear_model import Ridge
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), Ridge(alpha=params["alpha"]))
    model.fit(data.x_train, data.y_train.astype("float64"))
    predicted = model.predict(data.x_val)
    log(
        1,
        {
            "r2": float(r2_score(data.y_val, predicted)),
            "rmse": float(root_mean_squared_error(data.y_val, predicted)),
            "mae": float(mean_absolute_error(data.y_val, predicted)),
        },
    )
    return model


def _log_rounds(history: dict[str, list[float]], names: dict[str, str], log: Log) -> None:
    """Log a booster's per-round evaluation history under our metric names."""
    rounds = len(next(iter(history.values()), []))
    for step in range(rounds):
        log(step + 1, {ours: float(history[theirs][step]) for theirs, ours in names.items()})


def fit_lightgbm(params: dict[str, Any], data: Split, log: Log) -> Any:
    """LightGBM's scikit-learn classifier, its validation history logged per round."""
    import lightgbm

    from aimass.zoo._supervised import threads

    model = lightgbm.LGBMClassifier(
        n_estimators=params["n_estimators"],
        learning_rate=params["learning_rate"],
        max_depth=params["max_depth"],
        random_state=data.seed,
        n_jobs=threads(),
        verbose=-1,
    )
    binary = len(set(data.y_train.tolist())) == 2
    loss = "binary_logloss" if binary else "multi_logloss"
    metrics: Any = [loss, "auc"] if binary else [loss]
    # eval_X/eval_y, not eval_set: LightGBM 4.7 warns on eval_set in every job's log.
    model.fit(data.x_train, data.y_train, eval_X=data.x_val, eval_y=data.y_val, eval_metric=metrics)
    names = {loss: "log_loss", **({"auc": "roc_auc"} if binary else {})}
    _log_rounds(model.evals_result_["valid_0"], names, log)
    return model


def fit_xgboost(params: dict[str, Any], data: Split, log: Log) -> Any:
    """XGBoost's scikit-learn classifier (labels 0..k-1), validation history logged per round."""
    import xgboost

    from aimass.zoo._supervised import threads

    binary = len(set(data.y_train.tolist())) == 2
    model = xgboost.XGBClassifier(
        n_estimators=params["n_estimators"],
        learning_rate=params["learning_rate"],
        max_depth=params["max_depth"],
        random_state=data.seed,
        n_jobs=threads(),
        eval_metric=["logloss", "auc"] if binary else ["mlogloss"],
    )
    model.fit(data.x_train, data.y_train, eval_set=[(data.x_val, data.y_val)], verbose=False)
    names = {"logloss": "log_loss", "auc": "roc_auc"} if binary else {"mlogloss": "log_loss"}
    _log_rounds(model.evals_result()["validation_0"], names, log)
    return model
