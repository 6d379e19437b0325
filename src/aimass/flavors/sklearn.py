"""The scikit-learn flavor: estimators and pipelines stored with skops.

skops builds only allow-listed types, so a file of default types loads here, in
the server. A file holding other types (loadable only when trusted) could run
their code while it loads, so it loads in the sandboxed model host instead.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from aimass.errors import InvalidInput, Unprocessable
from aimass.flavors.base import Flavor, error_detail
from aimass.flavors.signature import NUMPY_TO_DATATYPE, Signature, TensorSpec

if TYPE_CHECKING:
    from pathlib import Path

    from aimass.flavors.base import Array, Batch, Predictor


class EstimatorPredictor:
    """A predictor over a fitted scikit-learn estimator (or anything with its predict API)."""

    def __init__(self, estimator: object, signature: Signature | None) -> None:
        self.estimator = estimator
        self.signature = signature
        names = getattr(estimator, "feature_names_in_", None)
        #: The column names it was fitted with: a 2-D batch is handed over as a table of them.
        self.columns = [str(n) for n in names] if isinstance(names, np.ndarray) else None

    def predict(self, batch: Batch) -> Array:
        """Return ``estimator.predict`` of the batch."""
        return np.asarray(self.estimator.predict(self._features(batch)))  # type: ignore[attr-defined]

    def predict_proba(self, batch: Batch) -> Array | None:
        """Return ``estimator.predict_proba`` of the batch, or None when it has none."""
        # hasattr honours sklearn's available_if (SVC without probability=True has none).
        if not hasattr(self.estimator, "predict_proba"):
            return None
        return np.asarray(self.estimator.predict_proba(self._features(batch)))

    def _features(self, batch: Batch) -> object:
        if not isinstance(batch, Mapping):
            return batch
        if len(batch) == 1:
            array = next(iter(batch.values()))
            if self.columns is None or array.ndim != 2 or array.shape[1] != len(self.columns):
                return array
            import pandas as pd

            # Fitted on a named table: give it one (as a bare array, sklearn warns on each call).
            return pd.DataFrame(array, columns=self.columns, copy=False)
        names = self.columns
        if names is None or set(batch) != set(names):
            raise InvalidInput(
                "this model takes one input tensor, or one tensor per named feature column; "
                f"got {', '.join(batch)}"
            )
        import pandas as pd

        return pd.DataFrame({n: np.asarray(batch[n]).reshape(-1) for n in names})


def estimator_signature(estimator: object) -> Signature | None:
    """Infer a signature from a fitted estimator's features, classes and NaN tolerance."""
    n_features = getattr(estimator, "n_features_in_", None)
    if not isinstance(n_features, int | np.integer):
        return None
    classes = getattr(estimator, "classes_", None)
    predict_type = "FP64"
    if isinstance(classes, np.ndarray) and classes.ndim == 1:
        predict_type = NUMPY_TO_DATATYPE.get(classes.dtype.name, "BYTES")
    outputs = [TensorSpec(name="predict", datatype=predict_type, shape=[-1])]
    if (
        hasattr(estimator, "predict_proba")
        and isinstance(classes, np.ndarray)
        and classes.ndim == 1
    ):
        outputs.append(TensorSpec(name="predict_proba", datatype="FP64", shape=[-1, len(classes)]))
    names = getattr(estimator, "feature_names_in_", None)
    columns = None
    if isinstance(names, np.ndarray) and len(names) == int(n_features):
        columns = [str(n) for n in names]
    spec = TensorSpec(name="input", datatype="FP64", shape=[-1, int(n_features)], columns=columns)
    return Signature(inputs=[spec], outputs=outputs, allows_missing=_allows_nan(estimator))


def _allows_nan(estimator: object) -> bool:
    """Whether scikit-learn's tags say the estimator accepts NaN in its input."""
    try:
        from sklearn.utils import get_tags

        return bool(get_tags(estimator).input_tags.allow_nan)
    except Exception:  # not a scikit-learn estimator, or tags it cannot read
        return False


def require_predict(obj: object, what: str) -> None:
    """Raise Unprocessable unless the object has a callable ``predict``."""
    if not callable(getattr(obj, "predict", None)):
        raise Unprocessable(f"{what} holds a {type(obj).__name__}, which has no predict method")


class SklearnFlavor(Flavor):
    """scikit-learn models in the skops format: safe to inspect, since skops loads no code."""

    name: ClassVar[str] = "sklearn"
    requires_trust: ClassVar[bool] = False

    def sniff(self, path: Path, filename: str) -> bool:
        """Recognise a skops file: a zip archive with ``schema.json`` at its root."""
        if not zipfile.is_zipfile(path):
            return False
        try:
            with zipfile.ZipFile(path) as archive:
                return "schema.json" in archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return False

    def inspect(self, path: Path, trusted: bool) -> Signature | None:
        """Load with skops (default types here; others, trusted only, in the host); signature."""
        if self._untrusted_types(path, trusted):
            from aimass.flavors.sandboxed import inspect_in_host

            return inspect_in_host(self.name, path, trusted)
        return estimator_signature(self._read(path, trusted))

    def load(self, path: Path, trusted: bool) -> Predictor:
        """Load the estimator with skops into a predictor (in the host when it needs trust)."""
        if self._untrusted_types(path, trusted):
            from aimass.flavors.sandboxed import start_host

            return start_host(self.name, path, trusted)
        return self.load_in_process(path, trusted)

    def load_in_process(self, path: Path, trusted: bool) -> EstimatorPredictor:
        """Load the estimator with skops in this process (the host's loader for other types)."""
        estimator = self._read(path, trusted)
        return EstimatorPredictor(estimator, estimator_signature(estimator))

    def _untrusted_types(self, path: Path, trusted: bool) -> list[str]:
        import skops.io as sio

        try:
            untrusted: list[str] = sio.get_untrusted_types(file=path)
        except Exception as exc:
            raise Unprocessable(f"not a valid skops file: {error_detail(exc, path)}") from exc
        if untrusted and not trusted:
            raise Unprocessable(
                "this skops file holds types that are not trusted by default, and loading "
                f"them could run code: {', '.join(sorted(untrusted))}. Mark the upload trusted "
                "(an admin on all projects may) to load them."
            )
        return untrusted

    def _read(self, path: Path, trusted: bool) -> object:
        import skops.io as sio

        untrusted = self._untrusted_types(path, trusted)
        try:
            estimator: object = sio.load(path, trusted=untrusted if trusted else None)
        except Exception as exc:
            raise Unprocessable(f"not a valid skops file: {error_detail(exc, path)}") from exc
        require_predict(estimator, "the skops file")
        return estimator
