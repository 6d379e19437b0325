"""The plugin contract: its version, how a plugin declares the one it targets, and item checks.

A plugin module declares the contract it was written against with a module
attribute beside its ``register`` function::

    AIMASS_PLUGIN_CONTRACT = "1.0"

The contract covers ``register(registries)`` and every slot's Protocol in
``aimass.plugins.slots`` (and the flavor, entry and dataset types). Its major
number changes when a slot's methods change incompatibly; a plugin built for
another major is refused with one message and registers nothing. A minor bump
adds slots or optional methods, so any ``1.x`` plugin loads on a ``1.y`` host.
A module that declares nothing is loaded as if it targeted this version.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from aimass.errors import InvalidInput

#: The contract this aimass speaks (``major.minor``).
CONTRACT_VERSION = "1.0"
#: The module attribute a plugin declares its contract with.
CONTRACT_ATTRIBUTE = "AIMASS_PLUGIN_CONTRACT"

#: Slot -> the methods its items must have, with how many positional arguments each takes.
SLOT_METHODS: dict[str, dict[str, int]] = {
    "feature_extractors": {"transform": 1},
    "data_cleaners": {"clean": 1},
    "fusion_strategies": {"fuse": 2},
    "drift_tests": {"p_value": 2},
    "alert_sinks": {"send": 1},
    "executors": {"create": 1},
}

_VERSION = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.\d+)?$")


class ContractMismatch(InvalidInput):
    """A plugin built for another major version of the plugin contract."""


def major(version: str) -> int:
    """The major number of ``"1.2"`` (or ``"1"``); InvalidInput if it is not a version."""
    match = _VERSION.match(version.strip())
    if match is None:
        raise InvalidInput(
            f"{CONTRACT_ATTRIBUTE} = {version!r} is not a version like {CONTRACT_VERSION!r}"
        )
    return int(match.group(1))


def declared_contract(module: Any) -> str | None:
    """The contract ``module`` declares, or None; a non-string declaration is InvalidInput."""
    declared = getattr(module, CONTRACT_ATTRIBUTE, None)
    if declared is None:
        return None
    if not isinstance(declared, str):
        raise InvalidInput(
            f"{CONTRACT_ATTRIBUTE} must be a string like {CONTRACT_VERSION!r}, "
            f"not {type(declared).__name__}"
        )
    return declared


def check_contract(declared: str | None) -> None:
    """Refuse a plugin whose declared major differs from this aimass's (one message)."""
    if declared is None:
        return
    if major(declared) != major(CONTRACT_VERSION):
        raise ContractMismatch(
            f"built for plugin contract {declared}, but this aimass speaks contract "
            f"{CONTRACT_VERSION}; install a release of the plugin made for "
            f"{major(CONTRACT_VERSION)}.x"
        )


def check_register(register: Any) -> None:
    """``register`` must be callable with one argument, the registries."""
    if not callable(register):
        raise TypeError(f"{register!r} is not callable")
    try:
        signature = inspect.signature(register)
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return
    try:
        signature.bind(object())
    except TypeError:
        raise TypeError(
            f"register{signature} must take exactly one argument, the registries"
        ) from None


def check_item(slot: str, item: Any) -> None:
    """An item registered in ``slot`` must have a str name and the slot's methods."""
    name = getattr(item, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"an item of slot {slot} must have a non-empty str name; got {item!r}")
    for method, arity in SLOT_METHODS.get(slot, {}).items():
        function = getattr(item, method, None)
        if not callable(function):
            raise TypeError(f"{slot} item {name!r} has no method {method}()")
        try:
            inspect.signature(function).bind(*([None] * arity))
        except TypeError:
            raise TypeError(
                f"{slot} item {name!r}: {method}{inspect.signature(function)} must take "
                f"{arity} argument(s)"
            ) from None
        except ValueError:  # no signature to read (a builtin): trust it
            continue
