"""The flavor registry: flavors by name, format detection, and the upload check."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aimass.errors import Conflict, InvalidInput, Unprocessable

if TYPE_CHECKING:
    from pathlib import Path

    from aimass.flavors.base import Flavor
    from aimass.flavors.signature import Signature


class FlavorRegistry:
    """Flavors by name; ``detect`` asks them in registration order, so specific formats go first."""

    def __init__(self) -> None:
        self._flavors: dict[str, Flavor] = {}

    def register(self, flavor: Flavor) -> None:
        """Add a flavor; a second flavor with a name already taken is a Conflict."""
        if flavor.name in self._flavors:
            raise Conflict(f"a flavor named {flavor.name!r} is already registered")
        self._flavors[flavor.name] = flavor

    def get(self, name: str) -> Flavor:
        """Return the flavor with this name, or raise InvalidInput naming the known ones."""
        try:
            return self._flavors[name]
        except KeyError:
            known = ", ".join(self._flavors) or "none"
            raise InvalidInput(f"unknown flavor {name!r}; known flavors: {known}") from None

    def names(self) -> list[str]:
        """Return the registered flavor names, in detection order."""
        return list(self._flavors)

    def detect(self, path: Path, filename: str) -> Flavor:
        """Return the first flavor whose sniff recognises the file."""
        for flavor in self._flavors.values():
            if flavor.sniff(path, filename):
                return flavor
        raise InvalidInput(
            f"could not tell the flavor of {filename!r}; pass flavor=... "
            f"(one of {', '.join(self._flavors)})"
        )


def inspect_upload(
    registry: FlavorRegistry,
    path: Path,
    filename: str,
    flavor: str | None,
    trusted: bool,
) -> tuple[str, Signature | None]:
    """Check an uploaded model file and return its flavor name and signature.

    A format that runs code when loaded is refused unless the upload is trusted,
    before anything reads it beyond its first bytes.
    """
    if flavor is None:
        chosen = registry.detect(path, filename)
    else:
        chosen = registry.get(flavor)
        # The named flavor must agree with the bytes, so that naming a safe flavor
        # cannot route a file of another format into a loader that was not meant for it.
        if not chosen.sniff(path, filename):
            raise Unprocessable(
                f"{filename!r} does not look like a model file of flavor {chosen.name!r}"
            )
    if chosen.requires_trust and not trusted:
        raise Unprocessable(
            f"{filename!r} is a file of flavor {chosen.name!r}: loading this format "
            "(pickle, joblib, torch.save) runs code it contains, so it is refused unless "
            "trusted. Upload a safe format instead (skops for scikit-learn, ONNX, "
            "TorchScript), or have an admin on all projects mark the upload trusted."
        )
    return chosen.name, chosen.inspect(path, trusted)
