"""The entries a job can run by name, each with its kinds, its target and its params schema.

An entry is a function ``target(params: dict) -> dict | None`` that runs inside
an attempt's process (see ``aimass.runtime``). Its params are checked against a
pydantic model when the job is submitted, so a bad field is refused before
anything is queued. ``script`` jobs run the user's own code instead: their
``entry`` names a function in the uploaded source (``module:function``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, JsonValue

from aimass.errors import Unprocessable
from aimass.jobs.entities import JobKind

#: What a script job's ``entry`` looks like: ``package.module:function`` or ``train.py:main``.
SCRIPT_ENTRY = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(\.py)?:[A-Za-z_]\w*")
#: The target that runs a script job's user code (it imports the entry from the source).
SCRIPT_TARGET = "aimass.runtime.script:run_script"


@dataclass(frozen=True)
class Entry:
    """A runnable entry: ``target`` is ``"module:function"``; ``params`` checks its params."""

    name: str
    kinds: frozenset[JobKind]
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
        }


@dataclass
class EntryCatalog:
    """Every entry by name; plugins add theirs through ``add``."""

    entries: dict[str, Entry] = field(default_factory=dict)

    def add(self, entry: Entry) -> None:
        """Register an entry; a second one under the same name replaces the first."""
        self.entries[entry.name] = entry

    def get(self, name: str) -> Entry | None:
        """The entry, or None."""
        return self.entries.get(name)

    def all(self) -> list[Entry]:
        """Every entry, by name."""
        return sorted(self.entries.values(), key=lambda e: e.name)

    def targets(self) -> Mapping[str, str]:
        """Entry name → ``module:function``, for executors (script jobs included)."""
        return {**{e.name: e.target for e in self.entries.values()}, "script": SCRIPT_TARGET}

    def check(self, kind: JobKind, name: str, params: dict[str, JsonValue]) -> dict[str, JsonValue]:
        """Validate a submission's entry and params; returns the params with defaults.

        Raises ``Unprocessable`` naming what is wrong: an unknown entry, an entry
        that does not do ``kind``, or a param that does not fit the schema.
        """
        from pydantic import ValidationError

        if kind == "script":
            if not SCRIPT_ENTRY.fullmatch(name):
                raise Unprocessable(
                    f"entry: {name!r} is not a function in your code; "
                    "write it as 'module:function' or 'train.py:main'"
                )
            return params
        entry = self.entries.get(name)
        if entry is None:
            known = ", ".join(sorted(self.entries)) or "none"
            raise Unprocessable(f"entry: unknown entry {name!r} (known: {known})")
        if kind not in entry.kinds:
            raise Unprocessable(
                f"kind: entry {name!r} runs {', '.join(sorted(entry.kinds))} jobs, not {kind!r}"
            )
        try:
            return entry.validate(params)
        except ValidationError as exc:
            problems = "; ".join(
                f"params.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                for err in exc.errors()
            )
            raise Unprocessable(f"entry {name!r}: {problems}") from exc


def default_catalog() -> EntryCatalog:
    """The built-in entries (``aimass.jobs.builtin``) and the model library's (``aimass.zoo``)."""
    from aimass.jobs.builtin import builtin_entries
    from aimass.zoo import zoo_entries

    catalog = EntryCatalog()
    for entry in [*builtin_entries(), *zoo_entries()]:
        catalog.add(entry)
    return catalog
