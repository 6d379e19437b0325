"""The server's plugins through the SDK: which loaded, what they added, why any failed."""

from __future__ import annotations

import builtins

from aimass.client._http import HttpSession
from aimass.entities.plugins import PluginStatus

__all__ = ["PluginStatus", "Plugins"]


class Plugins:
    """The server's ``aimass.plugins`` entry points (``client.plugins``)."""

    def __init__(self, http: HttpSession) -> None:
        self._http = http

    def list(self) -> builtins.list[PluginStatus]:
        """Each plugin: package, version, contract, slots filled, ok or failed and why."""
        return [PluginStatus.model_validate(p) for p in self._http.get_json("/api/v1/plugins")]
