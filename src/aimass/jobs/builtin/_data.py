"""Shared helpers of the built-in entries: features and labels, and loading a version."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from aimass.flavors.base import Predictor
    from aimass.registry.entities import ModelVersion
    from aimass.runtime import JobContext


def split_target(
    frame: pd.DataFrame, target: str | None, required: bool = True
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None, str | None]:
    """Features as float32 and the label column (default: the last one)."""
    import numpy as np

    name = target or (str(frame.columns[-1]) if required else None)
    if name is not None and name not in frame.columns:
        if required:
            raise ValueError(f"the dataset has no column {name!r} (columns: {list(frame.columns)})")
        name = None
    features = frame.drop(columns=[name]) if name is not None else frame
    x = features.to_numpy(dtype=np.float32)
    y = frame[name].to_numpy() if name is not None else None
    return x, y, name


def load_version(ctx: JobContext, model: str, ref: str) -> tuple[Predictor, ModelVersion]:
    """Download a version into the scratch folder and load it through its flavor."""
    from aimass.plugins import default_registries

    client = ctx.client
    version = client.models.get_version(model, ref)
    folder = ctx.scratch / "models"
    folder.mkdir(exist_ok=True)
    path = Path(client.models.download(model, version.version, f"{folder}/"))
    flavor = default_registries().flavors.get(version.flavor)
    return flavor.load(path, trusted=version.trusted), version
