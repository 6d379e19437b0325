"""Fit a stacking meta-model out-of-fold, and keep it as data (a ``MetaModel``), never a pickle.

``out_of_fold_proba`` gives each member's ``predict_proba`` for every training row
from a copy fitted on the other folds, so the meta-model never sees a member's
answers on rows that member was trained on. ``fit_meta_model`` fits a logistic
regression on those columns and returns its coefficients as a ``MetaModel`` that
a deployment's ``combiner`` carries (``{"strategy": "stacking", "meta": ...}``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from aimass.entities.deployments import MetaModel

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Array = NDArray[Any]


def out_of_fold_proba(
    estimators: Sequence[Any], x: Array, y: Array, folds: int = 5, seed: int = 0
) -> list[Array]:
    """Each (unfitted) scikit-learn classifier's out-of-fold ``predict_proba`` on ``x``."""
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [
        np.asarray(cross_val_predict(clone(e), x, y, cv=split, method="predict_proba"))
        for e in estimators
    ]


def fit_meta_model(member_probas: Sequence[Array], y: Array, c: float = 1.0) -> MetaModel:
    """A logistic regression over the members' probabilities side by side, as data.

    ``y`` holds class indexes ``0..k-1`` (the members' ``predict_proba`` column order).
    """
    from sklearn.linear_model import LogisticRegression

    features = np.concatenate([np.asarray(p, dtype=np.float64) for p in member_probas], axis=1)
    model = LogisticRegression(C=c, max_iter=2000)
    model.fit(features, y)
    if list(model.classes_) != list(range(len(model.classes_))):
        raise ValueError("y must hold class indexes 0..k-1, every one of them present")
    return MetaModel(coef=model.coef_.tolist(), intercept=model.intercept_.tolist())
