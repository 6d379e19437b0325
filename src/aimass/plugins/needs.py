"""What an entry or a built-in dataset needs beyond the core install: an extra's modules.

The core install (``pip install aimass``) runs the server, the sklearn and ONNX
entries and the scikit-learn datasets. Entries built on torch, LightGBM, XGBoost,
PyTorch Geometric or Gymnasium declare the extra that installs them; the catalogue
lists them as unavailable, with the install command, until their modules import,
and a submission of one is refused with that command instead of failing at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec

__all__ = ["Needs"]


def _importable(module: str) -> bool:
    """Whether ``module`` can be imported here, without importing it."""
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or blocked in sys.modules
        return False


@dataclass(frozen=True)
class Needs:
    """The optional extra (``zoo``, ``torch``) that provides ``modules`` (top-level names)."""

    extra: str
    modules: tuple[str, ...]

    @property
    def install(self) -> str:
        """The command that installs the extra."""
        return f"pip install 'aimass[{self.extra}]'"

    def missing(self) -> list[str]:
        """The modules that cannot be imported here (empty: available)."""
        return [module for module in self.modules if not _importable(module)]

    def problem(self, what: str) -> str | None:
        """Why ``what`` cannot run here, with the command that fixes it; None if it can."""
        missing = self.missing()
        if not missing:
            return None
        return (
            f"{what} needs the {self.extra} extra, which is not installed on the server "
            f"(no module {', '.join(missing)}): {self.install}"
        )
