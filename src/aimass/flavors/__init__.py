"""Model flavors: how a file becomes a predictor (sklearn, ONNX, TorchScript, ...).

Must not import the API. Inspecting an upload never runs code from it unless
the upload was marked trusted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aimass.flavors.registry import FlavorRegistry

__all__ = ["register"]


class _WithFlavors(Protocol):
    """What this plugin fills of ``aimass.plugins.Registries``.

    Named by shape, not imported: ``plugins`` builds on ``flavors`` (its flavor
    slot is a ``FlavorRegistry``), so ``flavors`` must not import ``plugins``.
    """

    flavors: FlavorRegistry


#: The plugin contract this module's ``register`` targets (see ``aimass.plugins.contract``).
AIMASS_PLUGIN_CONTRACT = "1.0"


def register(registries: _WithFlavors) -> None:
    """Register the built-in flavors, in detection order (the ``builtin-flavors`` plugin)."""
    from aimass.flavors.onnx import OnnxFlavor
    from aimass.flavors.pickle import PickleFlavor
    from aimass.flavors.sklearn import SklearnFlavor
    from aimass.flavors.torchscript import TorchPickleFlavor, TorchScriptFlavor
    from aimass.flavors.transformers import TransformersFlavor

    # Archive formats are recognised by their member names, so they are asked first;
    # ONNX goes last because it also takes any file named *.onnx.
    for flavor in (
        TransformersFlavor(),  # a ZIP with config.json; imports nothing heavy until it loads
        TorchScriptFlavor(),
        TorchPickleFlavor(),
        SklearnFlavor(),
        PickleFlavor(),
        OnnxFlavor(),
    ):
        registries.flavors.register(flavor)
