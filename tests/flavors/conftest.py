"""Fixtures for the flavor tests: real data, real fitted models, the built-in registry."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from aimass.flavors.registry import FlavorRegistry
from aimass.plugins import load_plugins


@pytest.fixture
def registry() -> FlavorRegistry:
    """A fresh registry holding the installed plugins' flavors (the built-ins included)."""
    return load_plugins().flavors


@pytest.fixture(scope="session")
def cancer() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """scikit-learn's bundled breast cancer data (569 x 30)."""
    from sklearn.datasets import load_breast_cancer

    features, target = load_breast_cancer(return_X_y=True)
    return features, target


@pytest.fixture(scope="session")
def logreg(cancer: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]) -> Any:
    """A scaled logistic regression fitted on the breast cancer data."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, target = cancer
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(features, target)
