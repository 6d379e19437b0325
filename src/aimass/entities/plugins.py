"""Plugin entities: what ``GET /api/v1/plugins`` and ``aimass plugins list`` show.

One :class:`PluginStatus` per ``aimass.plugins`` entry point this server found:
the package that declares it, the plugin contract it was built for, the slots
it filled (and the names it registered there), and whether it loaded; a failed
plugin carries the reason and registered nothing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class PluginStatus(BaseModel):
    """One entry point of the ``aimass.plugins`` group, as this server loaded it."""

    name: str
    #: ``module:function`` the entry point names.
    target: str
    #: The distribution that declares it, and its version (``None`` when unknown).
    package: str | None = None
    version: str | None = None
    #: The plugin contract it declares (``AIMASS_PLUGIN_CONTRACT``); ``None``: not declared.
    contract: str | None = None
    status: Literal["ok", "failed"]
    #: Why it failed: one line, naming what to fix.
    reason: str | None = None
    #: Slot -> the names it registered there (empty slots left out).
    slots: dict[str, list[str]] = Field(default_factory=dict)
    #: How long its import and ``register`` took.
    load_seconds: float = 0.0
