"""The entries a job can run by name, each with its kinds, its target and its params schema.

An entry (:class:`aimass.plugins.entries.Entry`) is a function
``target(params: dict) -> dict | None`` that runs inside an attempt's process
(see ``aimass.runtime``). Its params are checked against a pydantic model when
the job is submitted, so a bad field is refused before anything is queued.
Entries come from the plugin registries (built-ins and the model library
register like any plugin); nothing here imports them. ``script`` jobs run the
user's own code instead: their ``entry`` names a function in the uploaded
source (``module:function``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydantic import JsonValue

from aimass.errors import Unprocessable
from aimass.jobs.entities import JobKind
from aimass.plugins import default_registries
from aimass.plugins.entries import Entry

__all__ = ["SCRIPT_ENTRY", "SCRIPT_TARGET", "Entry", "EntryCatalog", "default_catalog"]

#: What a script job's ``entry`` looks like: ``package.module:function`` or ``train.py:main``.
SCRIPT_ENTRY = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(\.py)?:[A-Za-z_]\w*")
#: The target that runs a script job's user code (it imports the entry from the source).
SCRIPT_TARGET = "aimass.runtime.script:run_script"


@dataclass
class EntryCatalog:
    """Every entry by name; plugins add theirs through ``add``."""

    entries: dict[str, Entry] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: Iterable[Entry]) -> EntryCatalog:
        """A catalogue of these entries (e.g. ``Registries.entries``, in registration order)."""
        catalog = cls()
        for entry in entries:
            catalog.add(entry)
        return catalog

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

    def light(self) -> list[str]:
        """The entries declared ``light``: forked from a zygote without the heavy libraries.

        Script jobs are not among them: user code usually imports numpy or pandas,
        which the full zygote has already imported.
        """
        return sorted(e.name for e in self.entries.values() if e.light)

    def check(self, kind: JobKind, name: str, params: dict[str, JsonValue]) -> dict[str, JsonValue]:
        """Validate a submission's entry and params; returns the params with defaults.

        Raises ``Unprocessable`` naming what is wrong: an unknown entry, an entry
        that does not do ``kind``, one whose extra is not installed (with the
        command that installs it), or a param that does not fit the schema.
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
        problem = entry.unavailable()
        if problem is not None:
            raise Unprocessable(problem)
        try:
            return entry.validate(params)
        except ValidationError as exc:
            problems = "; ".join(
                f"params.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                for err in exc.errors()
            )
            raise Unprocessable(f"entry {name!r}: {problems}") from exc


def default_catalog() -> EntryCatalog:
    """A fresh catalogue of the installed plugins' entries (built-ins and the model library)."""
    return EntryCatalog.of(default_registries().entries)
