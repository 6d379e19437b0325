"""Plugins: everything that extends aimass registers through the ``aimass.plugins`` entry points.

Each entry point names a callable ``register(registries: Registries) -> None``
in a module that declares ``AIMASS_PLUGIN_CONTRACT = "1.0"`` (see
``plugins.contract``). The built-ins register the same way (flavors, job
entries, the model library), so there is one code path. A broken plugin is a
failed ``PluginStatus`` with its reason and a ``PluginWarning``, never a crash
(``plugins.loader``). The slot types live here (``entries``, ``slots``) so
that extensions import this package, never the other way round; it must not
import the API or a domain package.
"""

from __future__ import annotations

import functools

from aimass.plugins.contract import CONTRACT_ATTRIBUTE, CONTRACT_VERSION, ContractMismatch
from aimass.plugins.entries import BuiltinDataset, Entry
from aimass.plugins.loader import GROUP, PluginError, PluginLoad, PluginWarning, load_plugins
from aimass.plugins.registries import Registries, slot_names
from aimass.plugins.registry import Registry

__all__ = [
    "CONTRACT_ATTRIBUTE",
    "CONTRACT_VERSION",
    "GROUP",
    "BuiltinDataset",
    "ContractMismatch",
    "Entry",
    "PluginError",
    "PluginLoad",
    "PluginWarning",
    "Registries",
    "Registry",
    "default_registries",
    "load_plugins",
    "slot_names",
]


@functools.cache
def default_registries() -> Registries:
    """The registries of the installed plugins, built once per process.

    The composition root builds its own with ``load_plugins``; this one serves
    code that has no platform at hand (a job's process, the command line).
    """
    return load_plugins()
