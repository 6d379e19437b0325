"""The flavor seam: how one file format is recognised, inspected and loaded."""

from __future__ import annotations

import math
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeAlias

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

    from aimass.flavors.signature import Signature

    #: A numpy array of any dtype.
    Array: TypeAlias = NDArray[Any]
    #: What a predictor takes: one array, or arrays by input name.
    Batch: TypeAlias = Array | Mapping[str, Array]


class Predictor(Protocol):
    """A loaded model: predicts a batch, and gives class probabilities when it has them."""

    signature: Signature | None

    def predict(self, batch: Batch) -> Array:
        """Return the model's prediction for the batch."""
        ...

    def predict_proba(self, batch: Batch) -> Array | None:
        """Return class probabilities for the batch, or None when the model has none."""
        ...


class Flavor(ABC):
    """One model file format.

    ``sniff`` looks at bytes and archive member names only and never runs code.
    ``inspect`` validates the file and infers its signature; it raises
    ``Unprocessable`` for corrupt or unsupported files, and runs code from the
    file only when ``trusted`` is true (and only a flavor that ``requires_trust``
    ever needs to). ``load`` returns a predictor; ``load_cached`` too, for a file in
    the node's model cache, beside which the flavor may keep a form that the node's
    processes share (by default it is ``load``).
    """

    name: ClassVar[str]
    requires_trust: ClassVar[bool] = False

    @abstractmethod
    def sniff(self, path: Path, filename: str) -> bool:
        """Tell whether the file looks like this format, without running anything in it."""

    @abstractmethod
    def inspect(self, path: Path, trusted: bool) -> Signature | None:
        """Validate the file and return its signature when one can be known."""

    @abstractmethod
    def load(self, path: Path, trusted: bool) -> Predictor:
        """Load the file into a predictor."""

    def warm(self, reason: str) -> None:
        """Prepare this process to load models of the flavor soon (import its libraries in
        the background); called when the installation holds or receives such a model.
        Most flavors have nothing to prepare."""
        return

    def load_cached(self, path: Path, trusted: bool) -> Predictor:
        """Load a file of the node's model cache (the server's verified copy) into a predictor."""
        return self.load(path, trusted)


#: The CPU share of this process when it serves one replica (a runner process, a Ray
#: replica actor): the thread count its model's math libraries use. None: theirs.
_threads: int | None = None


def replica_threads(cpu: float) -> int:
    """The thread count for a replica with a CPU share of ``cpu``: its ceiling, at least 1."""
    return max(1, math.ceil(cpu))


def dedicate_threads(threads: int) -> None:
    """Size this process's thread pools for one replica with ``threads`` CPUs.

    Call it in a process that serves one replica, before loading the model and again
    after (a library imported by the load sized its pools meanwhile). onnxruntime
    reads :func:`process_threads` when it opens a session (it ignores OMP_NUM_THREADS);
    torch and the BLAS/OpenMP pools that threadpoolctl sees are resized here. Never
    called in the server's own process, whose replicas keep the libraries' defaults.
    """
    global _threads
    _threads = threads
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    if "numpy" in sys.modules:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)


def process_threads() -> int | None:
    """The thread count :func:`dedicate_threads` set in this process, else None."""
    return _threads


def running_threads(predictor: object) -> int | None:
    """The thread count a loaded model runs with: what its library reports (an onnxruntime
    session's intra-op pool), else this process's :func:`process_threads`."""
    reported = getattr(predictor, "threads", None)
    return reported if isinstance(reported, int) and reported > 0 else process_threads()


def error_detail(exc: BaseException, path: Path | None = None, limit: int = 300) -> str:
    """Return a short one-line description of a library error, safe for a user-facing message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if path is not None:
        # Server-side paths are internal names; the user knows the file by what they uploaded.
        text = text.replace(str(path), "<file>").replace(str(path.parent), "<dir>")
    return text if len(text) <= limit else text[: limit - 3] + "..."
