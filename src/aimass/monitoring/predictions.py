"""Reading the prediction logs back: by time range, version and sample; export to a dataset."""

from __future__ import annotations

import io
import math
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass.entities.monitoring import PredictionPage, PredictionRecord
from aimass.errors import InvalidInput, NotFound
from aimass.monitoring.prediction_log import META, PREFIX, hour_folder

if TYPE_CHECKING:
    import pandas as pd

    from aimass.artifacts.store import ArtifactStore
    from aimass.entities.datasets import DatasetVersion
    from aimass.store.db import Database

#: At most this many log rows are read for one query.
MAX_ROWS = 1_000_000


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def read_log(
    store: ArtifactStore,
    project: str,
    deployment: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    version: int | None = None,
) -> pd.DataFrame:
    """Every logged row of ``deployment`` in ``[start, end)``, oldest first (one frame)."""
    import pandas as pd
    import pyarrow.parquet as pq

    start, end = _utc(start), _utc(end)
    if start is not None and end is not None and end <= start:
        raise InvalidInput("end must be after start")
    first = hour_folder(start) if start else None
    last = hour_folder(end) if end else None
    keys = store.list_keys(f"{PREFIX}/{project}/{deployment}")
    frames = []
    total = 0
    for key in sorted(keys):
        hour = key.split("/")[-2]
        if (first and hour < first) or (last and hour > last):
            continue
        table = pq.read_table(io.BytesIO(b"".join(store.open(key))))
        total += table.num_rows
        if total > MAX_ROWS:
            raise InvalidInput(f"the range holds over {MAX_ROWS} rows; ask for a shorter one")
        frames.append(table.to_pandas())
    if not frames:
        return pd.DataFrame(columns=list(META))
    frame = pd.concat(frames, ignore_index=True)
    if start is not None:
        frame = frame[frame["_time"] >= pd.Timestamp(start)]
    if end is not None:
        frame = frame[frame["_time"] < pd.Timestamp(end)]
    if version is not None:
        frame = frame[frame["_version"] == version]
    return frame.sort_values(["_time", "_request_id", "_row"], kind="stable").reset_index(drop=True)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def to_records(frame: pd.DataFrame, project: str, deployment: str) -> list[PredictionRecord]:
    """Rows of a log frame as records (inputs and outputs split by column name)."""
    outputs = [c for c in frame.columns if c == "prediction" or c.startswith(("proba_", "output."))]
    inputs = [c for c in frame.columns if c not in META and c not in outputs]
    records = []
    for row in frame.to_dict("records"):
        records.append(
            PredictionRecord(
                request_id=str(row["_request_id"]),
                row=int(row["_row"]),
                time=row["_time"].to_pydatetime(),
                project=project,
                deployment=deployment,
                model=str(row["_model"]),
                version=int(row["_version"]),
                latency_ms=float(row["_latency_ms"]),
                inputs={c: _clean(row[c]) for c in inputs if _clean(row[c]) is not None},
                outputs={c: _clean(row[c]) for c in outputs if _clean(row[c]) is not None},
            )
        )
    return records


def query_predictions(
    store: ArtifactStore,
    project: str,
    deployment: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    version: int | None = None,
    limit: int = 100,
    sample: int | None = None,
    seed: int | None = None,
) -> PredictionPage:
    """Logged rows in a range: the first ``limit``, or a random ``sample`` of them."""
    if not 1 <= limit <= 10_000:
        raise InvalidInput("limit must be between 1 and 10000")
    frame = read_log(store, project, deployment, start=start, end=end, version=version)
    total = len(frame)
    if sample is not None:
        if not 1 <= sample <= 10_000:
            raise InvalidInput("sample must be between 1 and 10000")
        if total > sample:
            frame = frame.sample(n=sample, random_state=seed).sort_index()
    frame = frame.head(limit)
    return PredictionPage(records=to_records(frame, project, deployment), total=total)


def export_predictions(
    db: Database,
    store: ArtifactStore,
    project: str,
    deployment: str,
    dataset: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    version: int | None = None,
    description: str = "",
) -> DatasetVersion:
    """Write the logged rows (features and ``prediction``) as a new dataset version (Parquet)."""
    from aimass.datasets.service import DatasetVersionCreate, register_dataset_version

    frame = read_log(store, project, deployment, start=start, end=end, version=version)
    if frame.empty:
        raise NotFound(f"no logged predictions of deployment {deployment!r} in that range")
    frame = frame.drop(columns=[c for c in META if c in frame.columns])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "predictions.parquet"
        frame.to_parquet(path, index=False)
        return register_dataset_version(
            db,
            store,
            project=project,
            name=dataset,
            upload=path,
            filename="predictions.parquet",
            spec=DatasetVersionCreate(
                format="parquet",
                description=description or f"predictions of deployment {deployment}",
            ),
        )
