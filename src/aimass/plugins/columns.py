"""The columns an entry reads from its dataset, checked against a version's schema at submit.

A table entry names its label column through a param (``target``; default: the
last column, or a fixed name) and may read other named columns (a ``text``
param) and take every other column as numeric features. :meth:`Columns.problem`
says, before anything is queued, what a dataset lacks: a missing column or a
text column where numbers are needed, instead of a traceback at run time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import JsonValue

__all__ = ["Columns"]

#: pandas dtype names that are numbers (what ``to_numpy(dtype=float32)`` takes).
_NUMERIC_PREFIXES = ("int", "uint", "float", "bool", "Int", "UInt", "Float", "boolean")


def _numeric(dtype: str) -> bool:
    return dtype.startswith(_NUMERIC_PREFIXES)


@dataclass(frozen=True)
class Columns:
    """What an entry needs of its table: a label column, named columns, numeric features."""

    #: The param naming the label column.
    target_param: str = "target"
    #: The label's name when the param is unset (None: the last column).
    target_default: str | None = None
    #: Params naming other columns it reads, with their defaults (``{"text": "text"}``).
    named: Mapping[str, str] = field(default_factory=dict)
    #: Whether every other column is a numeric feature.
    numeric_features: bool = True

    def problem(
        self, params: Mapping[str, JsonValue], columns: Sequence[tuple[str, str]], dataset: str
    ) -> str | None:
        """What ``dataset`` (its columns: name, dtype) lacks for these params; None if it fits."""
        names = [name for name, _ in columns]
        if not names:
            return f"dataset {dataset} has no columns"
        target = params.get(self.target_param) or self.target_default or names[-1]
        wanted = {p: str(params.get(p) or default) for p, default in self.named.items()}
        wanted[self.target_param] = str(target)
        for param, column in wanted.items():
            if column not in names:
                return (
                    f"params.{param}: dataset {dataset} has no column {column!r} "
                    f"(columns: {', '.join(names)})"
                )
        if self.numeric_features:
            used = set(wanted.values())
            text = [name for name, dtype in columns if name not in used and not _numeric(dtype)]
            if text:
                return (
                    f"dataset {dataset}: the features must be numbers, and "
                    f"{', '.join(repr(t) for t in text)} {'is' if len(text) == 1 else 'are'} "
                    f"not (label column: {target!r}; set params.{self.target_param} "
                    "to the label, or upload the table without text columns)"
                )
        return None
