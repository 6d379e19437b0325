"""Preprocessing pipelines: fitted on a training table, kept as JSON, applied alike at serving.

A spec names each input column and what to do with it; ``fit_pipeline`` learns
the numbers (fill values, clip bounds, scale, categories) and returns a
:class:`FittedPipeline`, plain data that ``to_json``/``from_json`` round-trip
exactly (never a pickle). ``FittedPipeline.transform`` turns columns (a pandas
frame at training time, arrays by name at serving time) into one float64
feature matrix with the same code, so the features are bitwise the same.

Column kinds and their steps:

- ``numeric``: ``impute`` (``mean``, ``median`` or a number) for missing values,
  ``clip`` (quantiles ``[lo, hi]``: outlier clipping), ``scale`` (standardise);
- ``category``: one-hot over the most frequent training values (``max_categories``),
  plus an ``other`` column for anything else (missing included);
- ``text``: hashed bag of lowercased words (``buckets`` columns, CRC32: stable
  across processes and machines);
- ``date``: parts of an ISO date-time (year, month, day, weekday, hour; missing: -1).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aimass.errors import InvalidInput

if TYPE_CHECKING:
    from aimass.plugins import Registries

FORMAT = "aimass-preprocessing"
_WORD = re.compile(r"[a-z0-9]+")
DATE_PARTS = ("year", "month", "day", "weekday", "hour")


class ColumnSpec(BaseModel):
    """What to do with one input column (the fitted numbers are filled in by ``fit``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    kind: Literal["numeric", "category", "text", "date"]
    impute: Literal["mean", "median"] | float | None = None
    clip: tuple[float, float] | None = None
    scale: bool = False
    max_categories: int = Field(default=20, ge=1, le=1000)
    buckets: int = Field(default=16, ge=1, le=4096)
    # Fitted
    fill: float | None = None
    low: float | None = None
    high: float | None = None
    mean: float | None = None
    std: float | None = None
    categories: list[str] | None = None


class FittedPipeline(BaseModel):
    """A fitted pipeline: the JSON stored with (uploaded as) a model version."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["aimass-preprocessing"] = "aimass-preprocessing"
    columns: list[ColumnSpec] = Field(min_length=1, max_length=1024)
    #: The data cleaners the training table went through first (by name; training only,
    #: since serving answers every row it is sent).
    cleaners: list[str] = Field(default_factory=list, max_length=64)

    def feature_names(self) -> list[str]:
        """The output columns, in order."""
        names: list[str] = []
        for c in self.columns:
            if c.kind == "numeric":
                names.append(c.name)
            elif c.kind == "category":
                names += [f"{c.name}={v}" for v in c.categories or []] + [f"{c.name}=<other>"]
            elif c.kind == "text":
                names += [f"{c.name}#{i}" for i in range(c.buckets)]
            else:
                names += [f"{c.name}.{p}" for p in DATE_PARTS]
        return names

    def transform(self, columns: Mapping[str, Any]) -> np.ndarray:
        """The float64 features of these rows; ``columns`` maps each input name to its values."""
        blocks = []
        for c in self.columns:
            if c.name not in columns:
                raise InvalidInput(f"missing input column {c.name!r}")
            values = np.asarray(columns[c.name])
            if values.ndim != 1:
                values = values.reshape(len(values))
            blocks.append(_TRANSFORMS[c.kind](c, values))
        return np.concatenate(blocks, axis=1)

    def to_json(self) -> str:
        """The pipeline as JSON text (float values round-trip exactly)."""
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> FittedPipeline:
        """Parse and check a pipeline; InvalidInput says what is wrong."""
        try:
            return cls.model_validate(json.loads(text))
        except ValueError as exc:
            raise InvalidInput(f"not an aimass preprocessing pipeline: {exc}") from None


def _numbers(values: np.ndarray) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float64)  # None -> nan
    except (TypeError, ValueError):
        raise InvalidInput("a numeric column holds values that are not numbers") from None


def _strings(values: np.ndarray) -> list[str | None]:
    out: list[str | None] = []
    for v in values.tolist():
        if v is None or (isinstance(v, float) and v != v):
            out.append(None)
        else:
            out.append(v.decode() if isinstance(v, bytes) else str(v))
    return out


def _numeric(c: ColumnSpec, values: np.ndarray) -> np.ndarray:
    x = _numbers(values)
    if c.fill is not None:
        x = np.where(np.isnan(x), c.fill, x)
    if c.low is not None and c.high is not None:
        x = np.clip(x, c.low, c.high)
    if c.mean is not None and c.std is not None:
        x = (x - c.mean) / c.std
    return x.reshape(-1, 1)


def _category(c: ColumnSpec, values: np.ndarray) -> np.ndarray:
    index = {v: i for i, v in enumerate(c.categories or [])}
    other = len(index)
    out = np.zeros((len(values), other + 1), dtype=np.float64)
    for row, v in enumerate(_strings(values)):
        out[row, index.get(v, other) if v is not None else other] = 1.0
    return out


def _text(c: ColumnSpec, values: np.ndarray) -> np.ndarray:
    out = np.zeros((len(values), c.buckets), dtype=np.float64)
    for row, v in enumerate(_strings(values)):
        for word in _WORD.findall((v or "").lower()):
            out[row, zlib.crc32(word.encode()) % c.buckets] += 1.0
    return out


def _date(c: ColumnSpec, values: np.ndarray) -> np.ndarray:
    import pandas as pd

    when = pd.to_datetime(pd.Series(_strings(values), dtype=object), errors="coerce", utc=True)
    parts = [when.dt.year, when.dt.month, when.dt.day, when.dt.day_of_week, when.dt.hour]
    return np.column_stack([p.to_numpy(dtype=np.float64, na_value=-1.0) for p in parts])


_TRANSFORMS = {"numeric": _numeric, "category": _category, "text": _text, "date": _date}


def known_cleaners(names: list[str]) -> list[str]:
    """``names`` if each is an installed data cleaner; a ValueError naming the first that is not.

    A pydantic validator for job params (so an unknown cleaner is a 422 at submit).
    """
    if names:
        from aimass.plugins import default_registries

        registry = default_registries().data_cleaners
        known = registry.names()
        for name in names:
            if name not in registry:
                raise ValueError(
                    f"no data cleaner named {name!r} (installed: {', '.join(known) or 'none'};"
                    " `aimass plugins list` shows them)"
                )
    return names


def clean_table(table: Any, cleaners: Sequence[str], registries: Registries | None = None) -> Any:
    """``table`` through each named data cleaner in turn (built-in or a plugin's)."""
    if cleaners and registries is None:
        from aimass.plugins import default_registries

        registries = default_registries()
    for name in cleaners:
        assert registries is not None
        table = registries.data_cleaners.get(name).clean(table)
    return table


def fit_pipeline(
    table: Any,
    spec: list[ColumnSpec] | list[dict[str, Any]],
    cleaners: Sequence[str] = (),
    registries: Registries | None = None,
) -> FittedPipeline:
    """Learn each column's numbers from a training table (a pandas DataFrame).

    ``cleaners`` (data-cleaner names) clean the table first; they are recorded in the
    pipeline. Transform the same cleaned rows (``clean_table``) to train on them.
    """
    table = clean_table(table, cleaners, registries)
    fitted: list[ColumnSpec] = []
    for raw in spec:
        c = ColumnSpec.model_validate(raw if isinstance(raw, dict) else raw.model_dump())
        if c.name not in table:
            raise InvalidInput(f"the training table has no column {c.name!r}")
        values = table[c.name].to_numpy()
        if c.kind == "numeric":
            x = _numbers(values)
            if c.impute is not None:
                if c.impute == "mean":
                    fill = float(np.nanmean(x))
                elif c.impute == "median":
                    fill = float(np.nanmedian(x))
                else:
                    fill = float(c.impute)
                c.fill = fill
                x = np.where(np.isnan(x), fill, x)
            if c.clip is not None:
                c.low, c.high = (float(q) for q in np.nanquantile(x, c.clip))
                x = np.clip(x, c.low, c.high)
            if c.scale:
                std = float(np.nanstd(x))
                c.mean, c.std = float(np.nanmean(x)), std if std > 0 else 1.0
        elif c.kind == "category":
            seen = [v for v in _strings(values) if v is not None]
            kinds, counts = np.unique(np.asarray(seen, dtype=object), return_counts=True)
            order = sorted(
                zip(kinds.tolist(), counts.tolist(), strict=True), key=lambda kc: (-kc[1], kc[0])
            )
            c.categories = [k for k, _ in order[: c.max_categories]]
        fitted.append(c)
    return FittedPipeline(columns=fitted, cleaners=list(cleaners))
