"""Plugins: everything that extends aimass registers through the ``aimass.plugins`` entry points.

Each entry point names a callable ``register(registries: Registries) -> None``.
The built-ins register the same way, so there is one code path. A broken
plugin is a ``PluginWarning`` naming it, never a crash. Must not import the API.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from importlib.metadata import EntryPoint

from aimass.flavors.registry import FlavorRegistry

__all__ = ["GROUP", "PluginWarning", "Registries", "load_plugins"]

#: The entry-point group plugins declare in their packaging metadata.
GROUP = "aimass.plugins"

logger = logging.getLogger(__name__)


class PluginWarning(UserWarning):
    """A plugin could not be loaded or failed to register; it was skipped."""


@dataclass
class Registries:
    """The registries a plugin's ``register`` may add to; one field per extension point."""

    flavors: FlavorRegistry = field(default_factory=FlavorRegistry)


def _builtin_first(entry_point: EntryPoint) -> tuple[bool, str]:
    # aimass's own entry points go first so that built-in formats are sniffed first
    # and a plugin cannot take a built-in's name.
    return (not entry_point.value.startswith("aimass."), entry_point.name)


def load_plugins(entry_points: Iterable[EntryPoint] | None = None) -> Registries:
    """Build the registries by calling every plugin's ``register``, skipping broken ones.

    ``entry_points`` defaults to the installed ``aimass.plugins`` group.
    """
    if entry_points is None:
        entry_points = metadata.entry_points(group=GROUP)
    registries = Registries()
    for entry_point in sorted(entry_points, key=_builtin_first):
        try:
            register = entry_point.load()
            if not callable(register):
                raise TypeError(f"{entry_point.value} is not callable")
            register(registries)
        except Exception as exc:
            message = (
                f"aimass plugin {entry_point.name!r} ({entry_point.value}) was skipped: "
                f"{type(exc).__name__}: {exc}"
            )
            logger.warning(message)
            warnings.warn(message, PluginWarning, stacklevel=2)
    return registries
