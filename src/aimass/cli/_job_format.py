"""Text for ``aimass jobs``: params from options, durations, outcomes, sparklines, schemas."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from aimass.cli._session import parse_pairs

if TYPE_CHECKING:
    from rich.text import Text

    from aimass.entities.jobs import Job, JobMetric

_BARS = "▁▂▃▄▅▆▇█"

# The options that say what a job runs on, shared by `jobs submit` and `schedules create`.
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", metavar="KEY=VALUE", help="A param; JSON values parse."),
]
ParamsJsonOpt = Annotated[
    str | None, typer.Option("--params-json", help="All params as one JSON object.")
]
DatasetOpt = Annotated[str | None, typer.Option("--dataset", help="Dataset to run on.")]
DatasetVersionOpt = Annotated[
    int | None, typer.Option("--dataset-version", min=1, help="Its version (default latest).")
]


def parse_params(pairs: Sequence[str] | None, params_json: str | None) -> dict[str, object]:
    """``--params-json`` then each ``--param k=v``; a value is JSON when it parses, else text."""
    params: dict[str, object] = {}
    if params_json:
        try:
            loaded = json.loads(params_json)
        except ValueError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="--params-json") from None
        if not isinstance(loaded, dict):
            raise typer.BadParameter("expected a JSON object", param_hint="--params-json")
        params.update(loaded)
    for key, raw in parse_pairs(pairs, "--param").items():
        try:
            params[key] = json.loads(raw, parse_constant=_not_json)
        except ValueError:
            params[key] = raw
    return params


def _not_json(word: str) -> object:
    raise ValueError(word)  # NaN and Infinity are not JSON: keep them as text


def trend(values: Sequence[float], width: int = 24) -> str:
    """A sparkline of values (lowest ▁, highest █), at most ``width`` evenly spaced points."""
    points = [v for v in values if math.isfinite(v)]
    if len(points) < 2:
        return ""
    if len(points) > width:
        points = [points[round(i * (len(points) - 1) / (width - 1))] for i in range(width)]
    low, high = min(points), max(points)
    if high == low:
        return _BARS[3] * len(points)
    return "".join(_BARS[round((v - low) / (high - low) * (len(_BARS) - 1))] for v in points)


def format_duration(job: Job) -> str:
    """How long the job ran (so far, when still running); empty before it started."""
    if job.started_at is None:
        return ""
    end = job.finished_at or datetime.now(UTC)
    seconds = max(0.0, (end - job.started_at).total_seconds())
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    return f"{minutes // 60}h {minutes % 60:02d}m"


def outcome(job: Job) -> str:
    """One line saying how a job ended, or where it stands."""
    line = f"job {job.id} {job.state}"
    if job.state == "succeeded":
        line += f" in {format_duration(job)}"
        model, version = job.outputs.get("model"), job.outputs.get("model_version")
        # Evaluate and batch_predict name the model they used; the others made one.
        if job.kind in ("train", "tune", "script") and model and version:
            line += f", registered model {model} version {version}"
    elif job.attempt > 1:
        line += f" after {job.attempt} attempts"
    return line + (f": {job.reason}" if job.reason and job.state != "succeeded" else "")


def metric_series(points: Sequence[JobMetric]) -> dict[str, tuple[JobMetric, list[float]]]:
    """Per metric name: its latest point and its values by step (a later attempt's win)."""
    grouped: dict[str, list[JobMetric]] = {}
    for p in points:
        grouped.setdefault(p.name, []).append(p)
    series: dict[str, tuple[JobMetric, list[float]]] = {}
    for name, found in sorted(grouped.items()):
        by_step: dict[int, float] = {}
        for p in sorted(found, key=lambda p: (p.attempt, p.at)):
            by_step[p.step] = p.value
        latest = max(found, key=lambda p: (p.attempt, p.at, p.step))
        series[name] = (latest, [by_step[step] for step in sorted(by_step)])
    return series


def describe_params(schema: Mapping[str, object]) -> list[str]:
    """``name: type = default  (description)`` for each param of a JSON schema."""
    props = schema.get("properties")
    required = schema.get("required")
    lines = []
    for name, spec in (props if isinstance(props, dict) else {}).items():
        spec = spec if isinstance(spec, dict) else {}
        line = f"{name}: {_type_name(spec)}"
        if isinstance(required, list) and name in required:
            line += " (required)"
        elif "default" in spec:
            line += f" = {json.dumps(spec['default'])}"
        if spec.get("description"):
            line += f"  ({spec['description']})"
        lines.append(line)
    return lines


def _type_name(spec: Mapping[str, object]) -> str:
    if "enum" in spec and isinstance(spec["enum"], list):
        return "|".join(json.dumps(v) for v in spec["enum"])
    options = spec.get("anyOf")
    if isinstance(options, list):
        return " | ".join(_type_name(o) for o in options if isinstance(o, dict))
    if isinstance(spec.get("$ref"), str):
        return str(spec["$ref"]).rsplit("/", 1)[-1]
    return str(spec.get("type", "any"))


def cells(*values: str, one_line: bool = False) -> list[Text]:
    """Table cells shown as they are (never read as rich markup); ``one_line`` cuts with …."""
    from rich.text import Text

    if one_line:
        return [Text(v, no_wrap=True, overflow="ellipsis") for v in values]
    return [Text(v) for v in values]
