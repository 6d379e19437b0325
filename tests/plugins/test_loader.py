"""``load_plugins`` fences each plugin off: contract, signature, deadline, item types, names."""

from __future__ import annotations

import importlib
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from aimass.plugins import (
    CONTRACT_VERSION,
    GROUP,
    PluginError,
    PluginLoad,
    PluginWarning,
    load_plugins,
)

BUILTIN = EntryPoint(name="builtin-flavors", value="aimass.flavors:register", group=GROUP)

SOURCE = """
import threading

import numpy as np

AIMASS_PLUGIN_CONTRACT = {contract!r}


class Mean:
    name = "acme.mean"

    def fuse(self, outputs, weights):
        return np.mean(np.stack(outputs), axis=0)


class Clipper:
    name = "acme.clip"

    def clean(self):  # one argument short
        return None


class Onnx:
    name = "onnx"

    def fuse(self, outputs, weights):
        return outputs[0]


def register(registries):
    registries.fusion_strategies.register(Mean())


def register_half_then_clash(registries):
    registries.fusion_strategies.register(Mean())
    registries.flavors.register(object())


def register_bad_cleaner(registries):
    registries.data_cleaners.register(Clipper())


def register_hangs(registries):
    threading.Event().wait()


MET = threading.Event()


def register_waits(registries):
    if not MET.wait(10):  # only another plugin, loading at the same time, sets it
        raise TimeoutError("nobody came")
    registries.fusion_strategies.register(Mean())


def register_meets(registries):
    MET.set()
"""


def _plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, contract: object = "1.0") -> str:
    name = f"acme_loader_{tmp_path.name.replace('-', '_')}_{abs(hash(repr(contract)))}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(SOURCE.format(contract=contract)))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def _ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=GROUP)


def test_a_good_plugin_is_ok_with_its_contract_and_slots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _plugin(tmp_path, monkeypatch, contract=CONTRACT_VERSION)

    registries = load_plugins([_ep("acme", f"{module}:register"), BUILTIN])

    assert registries.fusion_strategies.names() == ["acme.mean"]
    status = registries.statuses[-1]
    assert (status.name, status.status, status.contract) == ("acme", "ok", "1.0")
    assert status.slots == {"fusion_strategies": ["acme.mean"]}
    assert registries.statuses[0].contract == "1.0"  # the built-ins declare theirs too


def test_a_newer_minor_loads_and_another_major_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    minor = _plugin(tmp_path, monkeypatch, contract="1.7")
    major = _plugin(tmp_path, monkeypatch, contract="0.9")

    with pytest.warns(PluginWarning, match="'old'.*built for plugin contract 0.9") as warned:
        registries = load_plugins(
            [_ep("new", f"{minor}:register"), _ep("old", f"{major}:register")]
        )

    assert len(warned) == 1
    assert [s.status for s in registries.statuses] == ["ok", "failed"]


def test_a_contract_that_is_not_a_version_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _plugin(tmp_path, monkeypatch, contract="latest")

    with pytest.warns(PluginWarning, match="'latest' is not a version like '1.0'"):
        registries = load_plugins([_ep("odd", f"{module}:register")])

    assert registries.statuses[0].status == "failed"


def test_a_plugin_that_fails_half_way_registers_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _plugin(tmp_path, monkeypatch)

    with pytest.warns(PluginWarning, match="'half'.*slot flavors takes Flavor items, not object"):
        registries = load_plugins([_ep("half", f"{module}:register_half_then_clash")])

    assert len(registries.fusion_strategies) == 0


def test_an_item_without_its_slots_method_signature_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _plugin(tmp_path, monkeypatch)

    with pytest.warns(PluginWarning, match=r"clean\(self\)|clean\(\) must take 1 argument"):
        registries = load_plugins([_ep("clip", f"{module}:register_bad_cleaner")])

    assert registries.statuses[0].reason == (
        "TypeError: data_cleaners item 'acme.clip': clean() must take 1 argument(s)"
    )


def test_a_hanging_plugin_times_out_and_the_rest_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _plugin(tmp_path, monkeypatch)
    plugins = [_ep("hangs", f"{module}:register_hangs"), _ep("acme", f"{module}:register"), BUILTIN]

    with pytest.warns(PluginWarning, match="'hangs'.*timed out"):
        registries = load_plugins(plugins, timeout_s=0.2)

    assert [s.status for s in registries.statuses] == ["ok", "ok", "failed"]
    assert "onnx" in registries.flavors.names() and "acme.mean" in registries.fusion_strategies


def test_strict_mode_raises_naming_every_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _plugin(tmp_path, monkeypatch)
    plugins = [
        _ep("gone", "acme_not_installed:register"),
        _ep("clip", f"{module}:register_bad_cleaner"),
    ]

    with pytest.warns(PluginWarning), pytest.raises(PluginError) as raised:
        load_plugins([BUILTIN, *plugins], strict=True)

    assert "2 plugin(s) failed to load" in str(raised.value)
    assert "'gone'" in str(raised.value) and "'clip'" in str(raised.value)


def test_a_name_taken_by_a_builtin_refuses_the_whole_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _plugin(tmp_path, monkeypatch)
    (tmp_path / "acme_taker.py").write_text(
        textwrap.dedent(
            f"""
            from {module} import Mean
            from aimass.flavors.onnx import OnnxFlavor

            def register(registries):
                registries.fusion_strategies.register(Mean())
                registries.flavors.register(OnnxFlavor())
            """
        )
    )

    with pytest.warns(PluginWarning, match="'taker'.*a flavor named 'onnx' is already registered"):
        registries = load_plugins([_ep("taker", "acme_taker:register"), BUILTIN])

    assert len(registries.fusion_strategies) == 0  # nothing of it was merged


def test_plugins_load_side_by_side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = _plugin(tmp_path, monkeypatch)
    # "waits" goes first and returns only once "meets" has run: one at a time, it would time out.
    plugins = [
        _ep("a-waits", f"{module}:register_waits"),
        _ep("b-meets", f"{module}:register_meets"),
    ]

    registries = load_plugins(plugins, timeout_s=30)

    assert [(s.name, s.status, s.reason) for s in registries.statuses] == [
        ("a-waits", "ok", None),
        ("b-meets", "ok", None),
    ]
    assert "acme.mean" in registries.fusion_strategies


def test_a_plugin_load_starts_when_made_not_when_its_result_is_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _plugin(tmp_path, monkeypatch)

    load = PluginLoad([_ep("meets", f"{module}:register_meets"), BUILTIN], timeout_s=30)
    assert importlib.import_module(module).MET.wait(30)  # registered while the host went on
    registries = load.result()

    assert [s.status for s in registries.statuses] == ["ok", "ok"]
    assert "onnx" in registries.flavors.names()
