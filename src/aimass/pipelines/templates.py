"""Job templates: a ``JobCreate`` stored now and submitted later (by a schedule or a step).

A template is refused up front for what ``jobs.service.submit_job`` would
refuse later: an unknown entry, a kind the entry does not run, params that do
not fit its schema, a missing dataset. Params named in ``deferred`` are filled
in at submit time (pipeline placeholders), so only their presence is assumed.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import JsonValue, ValidationError
from sqlalchemy.orm import Session

from aimass.datasets.service import read_dataset, read_dataset_version
from aimass.errors import NotFound, Unprocessable
from aimass.jobs.catalog import EntryCatalog
from aimass.jobs.entities import JobCreate
from aimass.validation import describe_errors

ParamsCheck = Callable[[dict[str, JsonValue]], dict[str, JsonValue]]


def check_job_template(
    session: Session,
    project: str,
    spec: JobCreate,
    catalog: EntryCatalog,
    where: str = "job",
    deferred: frozenset[str] = frozenset(),
) -> None:
    """Raise Unprocessable (or NotFound for a dataset) naming ``where`` the template is wrong."""
    if spec.kind == "script":
        raise Unprocessable(
            f"{where}.kind: a script job carries uploaded code, so it cannot be a template; "
            "schedules and pipelines start catalogue entries"
        )
    entry = catalog.get(spec.entry)
    try:
        if not deferred or entry is None or spec.kind not in entry.kinds:
            catalog.check(spec.kind, spec.entry, dict(spec.params))
        else:
            _check_known_params(spec, entry.validate, deferred)
    except Unprocessable as exc:
        raise Unprocessable(f"{where}: {exc.message}") from exc
    if entry is not None and entry.needs_dataset and spec.dataset is None:
        raise Unprocessable(f"{where}.dataset: entry {spec.entry!r} needs a dataset to work on")
    if spec.dataset is None:
        if spec.dataset_version is not None:
            raise Unprocessable(f"{where}.dataset_version: given without a dataset")
        return
    try:
        if spec.dataset_version is None:
            read_dataset(session, project, spec.dataset)
        else:
            read_dataset_version(session, project, spec.dataset, spec.dataset_version)
    except NotFound as exc:
        raise NotFound(f"{where}.dataset: {exc.message}") from exc


def _check_known_params(spec: JobCreate, validate: ParamsCheck, deferred: frozenset[str]) -> None:
    """Validate the params given now; a deferred one may only be reported missing."""
    known = {k: v for k, v in spec.params.items() if k not in deferred}
    try:
        validate(known)
    except ValidationError as exc:
        problems = [
            err
            for err in exc.errors()
            if not (err["loc"] and str(err["loc"][0]) in deferred and err["type"] == "missing")
        ]
        if problems:
            located = [{**err, "loc": ("params", *err["loc"])} for err in problems]
            raise Unprocessable(f"entry {spec.entry!r}: {describe_errors(located)}") from exc
