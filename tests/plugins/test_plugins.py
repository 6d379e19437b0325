"""The plugin mechanism: entry points register into the registries; broken ones are skipped."""

from __future__ import annotations

import logging
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from aimass.errors import InvalidInput
from aimass.plugins import GROUP, PluginWarning, Registries, load_plugins

BUILTIN = EntryPoint(name="builtin-flavors", value="aimass.flavors:register", group=GROUP)
BUILTIN_FLAVORS = {"transformers", "torchscript", "torch-pickle", "sklearn", "pickle", "onnx"}

PLUGIN_SOURCE = """
from __future__ import annotations

from pathlib import Path

from aimass.flavors.base import Flavor


class CsvFlavor(Flavor):
    name = "csv-model"

    def sniff(self, path: Path, filename: str) -> bool:
        return filename.endswith(".csvmodel")

    def inspect(self, path, trusted):
        return None

    def load(self, path, trusted):
        raise NotImplementedError


class OnnxImpostor(CsvFlavor):
    name = "onnx"


def register(registries):
    registries.flavors.register(CsvFlavor())


def register_then_fail(registries):
    raise RuntimeError("the plugin's own bug")


def register_taken_name(registries):
    registries.flavors.register(OnnxImpostor())


not_callable = 42
"""


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real importable third-party plugin module; returns its name."""
    name = f"aimass_test_plugin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def _entry_point(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=GROUP)


def test_installed_entry_points_register_the_builtin_flavors() -> None:
    registries = load_plugins()

    assert set(registries.flavors.names()) >= BUILTIN_FLAVORS


def test_a_missing_plugin_module_warns_naming_it_and_builtins_still_load(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = _entry_point("broken-plugin", "nonexistent.module:register")

    with pytest.warns(PluginWarning, match="'broken-plugin'.*nonexistent.module:register"):
        registries = load_plugins([broken, BUILTIN])

    assert set(registries.flavors.names()) == BUILTIN_FLAVORS
    assert any(
        r.levelno == logging.WARNING and "broken-plugin" in r.getMessage() for r in caplog.records
    )


def test_a_plugin_raising_in_register_is_skipped(plugin_module: str) -> None:
    failing = _entry_point("failing", f"{plugin_module}:register_then_fail")

    with pytest.warns(PluginWarning, match="'failing'.*RuntimeError: the plugin's own bug"):
        registries = load_plugins([BUILTIN, failing])

    assert set(registries.flavors.names()) == BUILTIN_FLAVORS


def test_a_plugin_that_is_not_callable_is_skipped(plugin_module: str) -> None:
    odd = _entry_point("odd", f"{plugin_module}:not_callable")

    with pytest.warns(PluginWarning, match="'odd'.*not callable"):
        load_plugins([odd])


def test_a_third_party_flavor_registers_after_the_builtins(
    plugin_module: str, tmp_path: Path
) -> None:
    third_party = _entry_point("csv", f"{plugin_module}:register")

    registries = load_plugins([third_party, BUILTIN])  # listed first, still ordered after

    assert registries.flavors.names()[-1] == "csv-model"
    path = tmp_path / "upload"
    path.write_bytes(b"a,b\n1,2\n")
    assert registries.flavors.detect(path, "m.csvmodel").name == "csv-model"


def test_a_plugin_cannot_replace_a_builtin_flavor(plugin_module: str) -> None:
    impostor = _entry_point("impostor", f"{plugin_module}:register_taken_name")

    with pytest.warns(PluginWarning, match="'impostor'.*already registered"):
        registries = load_plugins([impostor, BUILTIN])

    assert type(registries.flavors.get("onnx")).__module__ == "aimass.flavors.onnx"


def test_registries_start_empty_without_plugins() -> None:
    registries = load_plugins([])

    assert isinstance(registries, Registries)
    assert registries.flavors.names() == []
    with pytest.raises(InvalidInput, match="known flavors: none"):
        registries.flavors.get("onnx")
