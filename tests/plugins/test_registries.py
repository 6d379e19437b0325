"""Job entries, built-in datasets and the next wave's slots register through ``aimass.plugins``."""

from __future__ import annotations

import textwrap
from dataclasses import fields
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from aimass.errors import Conflict, NotFound
from aimass.jobs.builtin import builtin_entries
from aimass.jobs.catalog import EntryCatalog, default_catalog
from aimass.plugins import (
    GROUP,
    PluginWarning,
    Registries,
    Registry,
    load_plugins,
    slot_names,
)
from aimass.zoo.families import builtin_datasets, zoo_entries

BUILTIN_JOBS = EntryPoint(name="builtin-jobs", value="aimass.jobs.builtin:register", group=GROUP)
BUILTIN_ZOO = EntryPoint(name="builtin-zoo", value="aimass.zoo.families:register", group=GROUP)

PLUGIN_SOURCE = """
from __future__ import annotations

from pydantic import BaseModel

from aimass.plugins.entries import BuiltinDataset, Entry


class ShoutParams(BaseModel):
    loud: bool = True


def shout(params):
    return {"shouted": params["loud"]}


def register(registries):
    registries.entries.register(
        Entry("acme.shout", frozenset({"train"}), f"{__name__}:shout", "shouts", ShoutParams)
    )


def register_a_taken_entry(registries):
    registries.entries.register(Entry("noop", frozenset({"train"}), f"{__name__}:shout", "no"))


def register_half_then_fail(registries):
    raise ImportError("acme needs a library that is not installed")
"""


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real importable third-party plugin module; returns its name."""
    name = f"aimass_test_entries_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_a_plugin_entry_point_adds_a_job_entry_the_catalogue_serves(plugin_module: str) -> None:
    acme = EntryPoint(name="acme", value=f"{plugin_module}:register", group=GROUP)

    registries = load_plugins([acme, BUILTIN_JOBS])
    catalog = EntryCatalog.of(registries.entries)

    entry = catalog.get("acme.shout")
    assert entry is not None and entry.target == f"{plugin_module}:shout"
    assert catalog.check("train", "acme.shout", {}) == {"loud": True}
    assert catalog.targets()["acme.shout"] == f"{plugin_module}:shout"
    assert registries.entries.names()[-1] == "acme.shout"  # after the built-ins


def test_every_builtin_entry_and_dataset_comes_through_registration() -> None:
    registries = load_plugins([BUILTIN_ZOO, BUILTIN_JOBS])

    expected = [e.name for e in builtin_entries()] + [e.name for e in zoo_entries()]
    assert registries.entries.names() == expected
    assert set(registries.datasets.names()) == set(builtin_datasets())
    assert {e.name for e in default_catalog().all()} >= set(expected)


def test_a_plugin_cannot_take_a_builtin_entry_name(plugin_module: str) -> None:
    impostor = EntryPoint(
        name="impostor", value=f"{plugin_module}:register_a_taken_entry", group=GROUP
    )

    with pytest.warns(PluginWarning, match="'impostor'.*already registered"):
        registries = load_plugins([impostor, BUILTIN_JOBS])

    assert registries.entries.get("noop").target == "aimass.jobs.builtin.noop:run"


def test_a_broken_entry_plugin_is_a_warning_and_the_rest_still_load(plugin_module: str) -> None:
    broken = EntryPoint(name="acme", value=f"{plugin_module}:register_half_then_fail", group=GROUP)
    missing = EntryPoint(name="gone", value="acme_not_installed:register", group=GROUP)

    with pytest.warns(PluginWarning) as warned:
        registries = load_plugins([broken, missing, BUILTIN_JOBS, BUILTIN_ZOO])

    assert {str(w.message).split("'")[1] for w in warned} == {"acme", "gone"}
    assert "noop" in registries.entries and "classical.logistic_regression" in registries.entries


def test_the_next_waves_slots_exist_and_start_empty() -> None:
    registries = load_plugins([BUILTIN_JOBS, BUILTIN_ZOO])

    slots = set(slot_names())
    assert slots == {f.name for f in fields(Registries)} - {"statuses"}
    assert slots >= {
        "flavors",
        "entries",
        "datasets",
        "feature_extractors",
        "data_cleaners",
        "fusion_strategies",
        "drift_tests",
        "alert_sinks",
        "executors",
    }
    for slot in slots - {"flavors", "entries", "datasets"}:
        registry = getattr(registries, slot)
        assert isinstance(registry, Registry) and len(registry) == 0, slot


def test_a_registry_refuses_a_taken_name_and_names_the_known_ones() -> None:
    class Cleaner:
        name = "drop_nulls"

        def clean(self, table: object) -> object:
            return table

    registries = load_plugins([])
    registries.data_cleaners.register(Cleaner())  # type: ignore[arg-type]

    with pytest.raises(Conflict, match="data cleaner named 'drop_nulls'"):
        registries.data_cleaners.register(Cleaner())  # type: ignore[arg-type]
    with pytest.raises(NotFound, match=r"known: drop_nulls"):
        registries.data_cleaners.get("dedupe")
    assert registries.data_cleaners.names() == ["drop_nulls"]
