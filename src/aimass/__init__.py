"""aimass: one platform to register, train, serve, evaluate and monitor ML models.

The public surface is small: the SDK's :class:`Client` and ``__version__``.
Importing this package reads no configuration and imports no ML library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aimass._version import __version__

__all__ = ["Client", "__version__"]

if TYPE_CHECKING:
    from aimass.client import Client


def __getattr__(name: str) -> Any:
    # Lazy so that `import aimass` stays fast and pulls in no httpx until used.
    if name == "Client":
        from aimass.client import Client

        return Client
    raise AttributeError(f"module 'aimass' has no attribute {name!r}")
