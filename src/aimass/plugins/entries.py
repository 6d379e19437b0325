"""The job-entry and built-in-dataset slots: what jobs run by name, and the sets they train on.

An :class:`Entry` is a function ``target(params: dict) -> dict | None`` that runs
inside an attempt's process (see ``aimass.runtime``), with a pydantic model that
checks its params when the job is submitted. A :class:`BuiltinDataset` is a set
that needs no download: ``build(folder)`` writes its one file there. Built-in
entries (``aimass.jobs.builtin``) and the model library (``aimass.zoo``) register
theirs like any plugin; ``aimass.jobs.catalog`` serves them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, JsonValue

from aimass.plugins.columns import Columns
from aimass.plugins.needs import Needs


@dataclass(frozen=True)
class Entry:
    """A runnable entry: ``target`` is ``"module:function"``; ``params`` checks its params."""

    name: str
    #: The job kinds it runs (``aimass.jobs.entities.JobKind`` values).
    kinds: frozenset[str]
    target: str
    description: str
    params: type[BaseModel] | None = None
    needs_dataset: bool = False
    #: Model-library metadata (``aimass.zoo``); empty for plain entries.
    task: str | None = None
    family: str | None = None
    default_dataset: str | None = None
    exports: tuple[str, ...] = ()
    signature: dict[str, Any] | None = None
    example_request: dict[str, Any] | None = None
    #: ``module:function`` the ``evaluate`` job calls for versions tagged ``entry=<name>``.
    evaluate: str | None = None
    #: The extra it needs beyond the core install (None: the core runs it).
    needs: Needs | None = None
    #: The columns it reads from its dataset, checked at submit (None: not checked).
    columns: Columns | None = None
    #: True when it needs none of the heavy libraries (numpy, pandas, sklearn...) at
    #: start: the local executor then forks it from a zygote that did not pre-import them.
    light: bool = False

    def unavailable(self) -> str | None:
        """Why it cannot run on this installation, with the install command; None if it can."""
        return self.needs.problem(f"entry {self.name!r}") if self.needs else None

    def validate(self, params: dict[str, JsonValue]) -> dict[str, JsonValue]:
        """Params with defaults filled in; raises pydantic's ValidationError naming the field."""
        if self.params is None:
            return params
        model = self.params.model_validate(params)
        dumped: dict[str, JsonValue] = model.model_dump(mode="json")
        return dumped

    def describe(self) -> dict[str, Any]:
        """What the catalogue shows: name, kinds, description and the params' JSON schema."""
        return {
            "name": self.name,
            "kinds": sorted(self.kinds),
            "description": self.description,
            "needs_dataset": self.needs_dataset,
            "params_schema": self.params.model_json_schema() if self.params else {},
            "task": self.task,
            "family": self.family,
            "default_dataset": self.default_dataset,
            "exports": list(self.exports),
            "signature": self.signature,
            "example_request": self.example_request,
            **_availability(self.needs, self.unavailable()),
        }


@dataclass(frozen=True)
class BuiltinDataset:
    """A dataset that needs no download: ``build(folder)`` writes ``filename`` there."""

    name: str
    description: str
    task: str
    filename: str
    build: Callable[[Path], Path]
    #: What it holds, for listings: "150 rows, 4 features, 3 classes".
    size: str = ""
    #: Where it comes from: "scikit-learn", "networkx", "gymnasium", "generated".
    source: str = "generated"
    #: The extra it needs beyond the core install (None: the core builds it).
    needs: Needs | None = None

    def unavailable(self) -> str | None:
        """Why it cannot be built on this installation, with the install command; or None."""
        return self.needs.problem(f"built-in dataset {self.name!r}") if self.needs else None

    def describe(self) -> dict[str, Any]:
        """What the catalogue lists: name, task, size, source and description."""
        return {
            "name": self.name,
            "task": self.task,
            "size": self.size,
            "source": self.source,
            "format": Path(self.filename).suffix.lstrip("."),
            "description": self.description,
            **_availability(self.needs, self.unavailable()),
        }


def _availability(needs: Needs | None, problem: str | None) -> dict[str, Any]:
    """The catalogue's availability fields: available, the extra, and how to install it."""
    return {
        "available": problem is None,
        "extra": needs.extra if needs else None,
        "install": needs.install if needs else None,
    }
