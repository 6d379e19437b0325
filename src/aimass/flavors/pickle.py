"""The pickle flavor: pickle and joblib files, which run code when loaded, so trusted only.

Even trusted, a pickle is never unpickled in the server: it loads and runs in the
sandboxed model host (:mod:`aimass.flavors.sandboxed`), whose loader is
``load_in_process``.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from pathlib import PurePath
from typing import TYPE_CHECKING, ClassVar

from aimass.errors import Unprocessable
from aimass.flavors.base import Flavor, error_detail
from aimass.flavors.sandboxed import inspect_in_host, start_host
from aimass.flavors.sklearn import EstimatorPredictor, estimator_signature, require_predict

if TYPE_CHECKING:
    from pathlib import Path

    from aimass.flavors.base import Predictor
    from aimass.flavors.signature import Signature

#: Names that say "pickle" even for the old text protocols, which have no magic bytes.
PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".joblib", ".sav"})
_HEAD = 4096


def is_pickle_header(head: bytes) -> bool:
    """Tell whether bytes start like a binary pickle (protocol 2 to 5)."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _decompressed_head(head: bytes) -> bytes:
    """Return the first bytes of a compressed stream (joblib's formats), or b"" when not one."""
    try:
        if head[:1] == b"\x78" and int.from_bytes(head[:2], "big") % 31 == 0:
            return zlib.decompressobj().decompress(head, 16)
        if head[:2] == b"\x1f\x8b":
            return zlib.decompressobj(wbits=31).decompress(head, 16)
        if head[:3] == b"BZh":
            return bz2.BZ2Decompressor().decompress(head, max_length=16)
        if head[:6] == b"\xfd7zXZ\x00" or head[:3] == b"]\x00\x00":
            return lzma.LZMADecompressor().decompress(head, max_length=16)
    except (zlib.error, OSError, EOFError, lzma.LZMAError):
        return b""
    return b""


def looks_like_pickle(path: Path, filename: str) -> bool:
    """Tell from the bytes (or the name) whether a file is a pickle or a joblib dump."""
    if PurePath(filename).suffix.lower() in PICKLE_SUFFIXES:
        return True
    try:
        with path.open("rb") as file:
            head = file.read(_HEAD)
    except OSError:
        return False
    # Decompressing a few bytes is safe; unpickling is what runs code, and that never happens here.
    return is_pickle_header(head) or is_pickle_header(_decompressed_head(head))


class PickleFlavor(Flavor):
    """scikit-learn style objects in pickle or joblib files; loading runs their code."""

    name: ClassVar[str] = "pickle"
    requires_trust: ClassVar[bool] = True

    def sniff(self, path: Path, filename: str) -> bool:
        """Recognise a pickle (protocol 2-5 header), a compressed joblib dump, or a pickle name."""
        return looks_like_pickle(path, filename)

    def inspect(self, path: Path, trusted: bool) -> Signature | None:
        """Unpickle (trusted only) in the host and infer the signature as for scikit-learn."""
        _refuse_untrusted(trusted)
        return inspect_in_host(self.name, path, trusted)

    def load(self, path: Path, trusted: bool) -> Predictor:
        """Start a host serving the unpickled object (trusted only)."""
        _refuse_untrusted(trusted)
        return start_host(self.name, path, trusted)

    def load_in_process(self, path: Path, trusted: bool) -> EstimatorPredictor:
        """The host's loader: unpickle (trusted only) into a predictor."""
        _refuse_untrusted(trusted)
        obj = self._read(path)
        return EstimatorPredictor(obj, estimator_signature(obj))

    def _read(self, path: Path) -> object:
        import joblib

        try:
            obj: object = joblib.load(path)
        except Exception as exc:
            raise Unprocessable(f"could not load the pickle: {error_detail(exc, path)}") from exc
        require_predict(obj, "the pickle")
        return obj


def _refuse_untrusted(trusted: bool) -> None:
    if not trusted:
        raise Unprocessable(
            "pickle and joblib files run code when loaded; refusing to load one that is not trusted"
        )
