"""``load_plugins``: call every entry point's ``register``, each fenced off from the host.

Each plugin registers into registries of its own (staging); only a plugin that
imports, declares a compatible contract, takes the right arguments, returns
within the deadline and registers well-typed items with free names is merged
into the host's registries. Anything else is a failed :class:`PluginStatus`
with the reason, a ``PluginWarning`` and a log line, and the host goes on;
with ``strict`` any failure is a :class:`PluginError` instead (for CI).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from importlib.metadata import EntryPoint
from typing import Any

from aimass.entities.plugins import PluginStatus
from aimass.errors import Conflict
from aimass.flavors.base import Flavor
from aimass.flavors.registry import FlavorRegistry
from aimass.plugins.contract import (
    check_contract,
    check_item,
    check_register,
    declared_contract,
)
from aimass.plugins.entries import BuiltinDataset, Entry
from aimass.plugins.registries import Registries, slot_names

#: The entry-point group plugins declare in their packaging metadata.
GROUP = "aimass.plugins"
#: How long a third-party plugin's import and ``register`` may take, by default.
DEFAULT_TIMEOUT_S = 10.0

logger = logging.getLogger("aimass.plugins")

_TYPES: dict[str, type] = {"flavors": Flavor, "entries": Entry, "datasets": BuiltinDataset}


class PluginWarning(UserWarning):
    """A plugin could not be loaded or failed to register; it was skipped."""


class PluginError(RuntimeError):
    """Strict mode: at least one plugin failed, so the process must not start."""


@dataclass
class _Attempt:
    staging: Registries | None = None
    contract: str | None = None
    error: str | None = None


def _builtin(entry_point: EntryPoint) -> bool:
    return entry_point.value.startswith("aimass.")


def _builtin_first(entry_point: EntryPoint) -> tuple[bool, str]:
    # aimass's own entry points go first so that built-in formats are sniffed first
    # and a plugin cannot take a built-in's name.
    return (not _builtin(entry_point), entry_point.name)


def slot_items(registries: Registries) -> Iterator[tuple[str, list[Any]]]:
    """Each slot's name and its items, in registration order."""
    for slot in slot_names():
        registry = getattr(registries, slot)
        if slot == "flavors":
            yield slot, [registry.get(n) for n in registry.names()]
        else:
            yield slot, registry.all()


class _CheckedFlavors(FlavorRegistry):
    """A plugin's staging flavor slot: anything but a ``Flavor`` is refused as it registers."""

    def register(self, flavor: Flavor) -> None:
        if not isinstance(flavor, Flavor):
            raise TypeError(f"slot flavors takes Flavor items, not {type(flavor).__name__}")
        super().register(flavor)


def _register(entry_point: EntryPoint, attempt: _Attempt) -> None:
    try:
        register = entry_point.load()
        check_register(register)
        attempt.contract = declared_contract(sys.modules.get(entry_point.module))
        check_contract(attempt.contract)
        staging = Registries(flavors=_CheckedFlavors())
        register(staging)
        for slot, items in slot_items(staging):
            for item in items:
                expected = _TYPES.get(slot)
                if expected is not None and not isinstance(item, expected):
                    raise TypeError(
                        f"slot {slot} takes {expected.__name__} items, not {type(item).__name__}"
                    )
                check_item(slot, item)
        attempt.staging = staging
    except BaseException as exc:  # a plugin may raise anything, SystemExit included
        attempt.error = f"{type(exc).__name__}: {exc}"


class _Pending:
    """One third-party plugin importing and registering in a daemon thread of its own.

    A plugin that hangs is abandoned (it keeps its thread, not the host). Its
    deadline counts from when its thread started, so plugins load side by side
    and a slow one costs the start its own timeout once, not added to the others.
    One that ended before it was asked for is taken, even past its timeout: it
    shared the CPU with the host's start (a plugin importing numpy beside the
    server importing its own modules) and kept nobody waiting.
    """

    def __init__(self, entry_point: EntryPoint, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.attempt = _Attempt()
        self.started = time.perf_counter()
        self.seconds: float | None = None
        self.worker = threading.Thread(
            target=self._run, args=(entry_point,), name=f"plugin {entry_point.name}"
        )
        self.worker.daemon = True
        self.worker.start()

    def _run(self, entry_point: EntryPoint) -> None:
        _register(entry_point, self.attempt)
        self.seconds = time.perf_counter() - self.started

    def result(self) -> tuple[_Attempt, float]:
        """How it went, and how long it took (or had taken when it was abandoned)."""
        self.worker.join(max(0.0, self.started + self.timeout_s - time.perf_counter()))
        seconds = self.seconds
        if seconds is None:
            error = f"timed out: import and register took over {self.timeout_s:g} s"
            return _Attempt(error=error), seconds or time.perf_counter() - self.started
        return self.attempt, seconds


def _merge(staging: Registries, into: Registries) -> dict[str, list[str]]:
    """Add every staged item to ``into``, or nothing if a name is taken there."""
    filled = {slot: [item.name for item in items] for slot, items in slot_items(staging) if items}
    for slot, names in filled.items():
        target = getattr(into, slot)
        for name in names:
            if name in target.names():
                label = getattr(target, "slot", "flavor")
                raise Conflict(f"a {label} named {name!r} is already registered")
    for slot, items in slot_items(staging):
        for item in items:
            getattr(into, slot).register(item)
    return filled


def _package(entry_point: EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


class PluginLoad:
    """The plugins, loading: third-party ones start at once, each in its own thread.

    Made early (the server makes it before it imports its own modules), the
    plugins' imports and deadlines run while the host gets ready; ``result()``
    then runs aimass's own in this thread, waits for the rest (each until its
    deadline) and merges them all in one fixed order.
    """

    def __init__(
        self,
        entry_points: Iterable[EntryPoint] | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if entry_points is None:
            entry_points = metadata.entry_points(group=GROUP)
        self.entry_points = sorted(entry_points, key=_builtin_first)
        self.pending = [
            None if _builtin(entry_point) else _Pending(entry_point, timeout_s)
            for entry_point in self.entry_points
        ]

    @staticmethod
    def _attempt(entry_point: EntryPoint, pending: _Pending | None) -> tuple[_Attempt, float]:
        if pending is None:
            started = time.perf_counter()
            attempt = _Attempt()
            _register(entry_point, attempt)
            return attempt, time.perf_counter() - started
        return pending.result()

    def result(self, *, strict: bool = False) -> Registries:
        """The registries with every plugin that loaded; ``statuses`` says how each went.

        ``strict`` raises :class:`PluginError` naming every failure instead.
        """
        registries = Registries()
        for entry_point, pending in zip(self.entry_points, self.pending, strict=True):
            attempt, seconds = self._attempt(entry_point, pending)
            filled: dict[str, list[str]] = {}
            error = attempt.error
            if attempt.staging is not None:
                try:
                    filled = _merge(attempt.staging, registries)
                except Conflict as exc:
                    error = f"Conflict: {exc}"
            package, version = _package(entry_point)
            registries.statuses.append(
                PluginStatus(
                    name=entry_point.name,
                    target=entry_point.value,
                    package=package,
                    version=version,
                    contract=attempt.contract,
                    status="failed" if error else "ok",
                    reason=error,
                    slots=filled,
                    load_seconds=round(seconds, 4),
                )
            )
            if error:
                message = (
                    f"aimass plugin {entry_point.name!r} ({entry_point.value}) was skipped: {error}"
                )
                logger.warning(message)
                warnings.warn(message, PluginWarning, stacklevel=3)
        failed = [s for s in registries.statuses if s.status == "failed"]
        if strict and failed:
            raise PluginError(
                f"{len(failed)} plugin(s) failed to load and strict plugins are on "
                "(AIMASS_STRICT_PLUGINS=1): "
                + "; ".join(f"{s.name!r} ({s.target}): {s.reason}" for s in failed)
            )
        return registries


def load_plugins(
    entry_points: Iterable[EntryPoint] | None = None,
    *,
    strict: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Registries:
    """Build the registries by calling every plugin's ``register``; a broken plugin is skipped.

    ``entry_points`` defaults to the installed ``aimass.plugins`` group. A
    third-party plugin gets ``timeout_s`` for its import and ``register``, all
    of them side by side; aimass's own run in this thread.
    ``registries.statuses`` says how each went. ``strict`` raises
    :class:`PluginError` naming every failure instead.
    """
    return PluginLoad(entry_points, timeout_s=timeout_s).result(strict=strict)
