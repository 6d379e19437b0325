"""PyTorch flavors: TorchScript archives and torch.save archives (pickles, trusted only).

Both load and run only in the sandboxed model host (:mod:`aimass.flavors.sandboxed`):
a TorchScript archive is a program whose operators may touch files, and its
``__setstate__`` runs while it loads. An untrusted archive must also pass the
operator allow-list (:mod:`aimass.flavors._torch_ops`), checked in the host.
The ``load_in_process`` methods are the host's loaders; nothing else calls them.
A module loads onto the device the host was given (:func:`aimass.devices.torch_device`:
its GPU, else the CPU) and says which in its predictor's ``device``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from aimass.errors import InvalidInput, Unprocessable
from aimass.flavors.base import Flavor, error_detail
from aimass.flavors.signature import DATATYPES, Signature

if TYPE_CHECKING:
    from pathlib import Path

    from aimass.flavors.base import Array, Batch, Predictor

#: The extra file in which the SDK stores a TorchScript model's signature.
SIGNATURE_FILE = "aimass_signature.json"
#: Output name that marks class probabilities in an embedded signature.
PROBABILITY_OUTPUT = "probabilities"


def import_torch() -> Any:
    """Import torch, or raise Unprocessable saying how to install it."""
    try:
        import torch
    except ImportError as exc:
        raise Unprocessable(
            "PyTorch models need PyTorch on the server; install aimass[torch]"
        ) from exc
    return torch


def require_torch() -> None:
    """Raise Unprocessable unless torch can be imported (checked without importing it here)."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):  # ValueError: sys.modules holds a stand-in without a spec
        spec = None
    if spec is None:
        raise Unprocessable("PyTorch models need PyTorch on the server; install aimass[torch]")


@contextlib.contextmanager
def quiet_jit() -> Iterator[None]:
    """Silence torch.jit's deprecation notice: TorchScript is the safe format chosen on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`torch.jit", category=DeprecationWarning)
        yield


def archive_members(path: Path) -> list[str]:
    """Return a zip archive's member names, or [] when the file is not a readable zip."""
    if not zipfile.is_zipfile(path):
        return []
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def _split(members: list[str]) -> list[list[str]]:
    return [name.split("/") for name in members]


def is_torchscript_archive(members: list[str]) -> bool:
    """Tell whether members are a TorchScript archive's (``*/code/...``, ``*/constants.pkl``)."""
    parts = _split(members)
    has_code = any(len(p) >= 3 and p[1] == "code" for p in parts)
    has_constants = any(len(p) == 2 and p[1] == "constants.pkl" for p in parts)
    return has_code and has_constants


def is_torch_save_archive(members: list[str]) -> bool:
    """Tell whether archive members are a torch.save archive's (``*/data.pkl``, no code)."""
    parts = _split(members)
    has_data = any(len(p) == 2 and p[1] == "data.pkl" for p in parts)
    return has_data and not is_torchscript_archive(members)


class TorchScriptFlavor(Flavor):
    """TorchScript archives, loaded and run in the sandboxed host; untrusted ones must use
    only the allow-listed pure tensor operators."""

    name: ClassVar[str] = "torchscript"
    requires_trust: ClassVar[bool] = False

    def sniff(self, path: Path, filename: str) -> bool:
        """Recognise a TorchScript zip archive by its member names."""
        return is_torchscript_archive(archive_members(path))

    def inspect(self, path: Path, trusted: bool) -> Signature | None:
        """Load the archive in the host (checking its operators unless trusted); its signature."""
        from aimass.flavors.sandboxed import inspect_in_host

        require_torch()
        return inspect_in_host(self.name, path, trusted)

    def load(self, path: Path, trusted: bool) -> Predictor:
        """Start a host serving the archive (checking its operators unless trusted)."""
        from aimass.flavors.sandboxed import start_host

        require_torch()
        return start_host(self.name, path, trusted)

    def load_in_process(self, path: Path, trusted: bool) -> TorchScriptPredictor:
        """The host's loader: torch.jit.load, then the operator check unless trusted."""
        device = _device()
        module, signature = load_scripted(path, device)
        if not trusted:
            from aimass.flavors._torch_ops import refused_op

            refused = refused_op(module)
            if refused is not None:
                method, op = refused
                raise Unprocessable(
                    f"the TorchScript method {method!r} uses the operator {op!r}, which is not "
                    "on the list of pure tensor operators an untrusted model may use (it could "
                    "touch files or the process); export the model without it, or have an "
                    "admin upload it trusted (it still runs sandboxed)"
                )
        return TorchScriptPredictor(module, signature, device)


def _device() -> str:
    """Where the module being loaded goes: ``cuda:N`` when given a GPU torch sees, else cpu."""
    from aimass.devices import torch_device

    return torch_device(import_torch())


def load_scripted(path: Path, device: str = "cpu") -> tuple[Any, Signature | None]:
    """torch.jit.load the archive onto ``device`` (loading runs its ``__setstate__``: only
    ever in the host)."""
    torch = import_torch()
    extra = {SIGNATURE_FILE: ""}
    try:
        with quiet_jit():
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except Exception as exc:
        raise Unprocessable(f"not a valid TorchScript archive: {error_detail(exc, path)}") from exc
    module.eval()
    raw = extra[SIGNATURE_FILE]
    if not raw:
        return module, None
    try:
        return module, Signature.model_validate_json(raw)
    except ValueError as exc:
        raise Unprocessable(
            f"the archive's {SIGNATURE_FILE} is not a valid signature: {error_detail(exc)}"
        ) from exc


class TorchScriptPredictor:
    """A predictor over a TorchScript module, run under inference mode on ``device`` ("cpu"
    or "cuda:N", where the module's weights are): inputs go there, outputs come back."""

    def __init__(self, module: Any, signature: Signature | None, device: str = "cpu") -> None:
        self.module = module
        self.signature = signature
        self.device = device

    @property
    def threads(self) -> int:
        """torch's intra-op thread count in this process (set to a replica's CPU share)."""
        return int(import_torch().get_num_threads())

    def predict(self, batch: Batch) -> Array:
        """Run the module and return its first output."""
        return next(iter(self._run(batch).values()))

    def predict_proba(self, batch: Batch) -> Array | None:
        """Return the output named "probabilities" when the signature declares one, else None."""
        if self.signature is None or all(
            o.name != PROBABILITY_OUTPUT for o in self.signature.outputs
        ):
            return None
        return self._run(batch).get(PROBABILITY_OUTPUT)

    def predict_named(self, batch: Batch, names: list[str]) -> dict[str, Array]:
        """Run the module once and return the outputs in ``names``, by name."""
        return {k: v for k, v in self._run(batch).items() if k in names}

    def _run(self, batch: Batch) -> dict[str, Array]:
        torch = import_torch()
        args = [torch.from_numpy(a) for a in self._arrays(batch)]
        if self.device != "cpu":
            args = [a.to(self.device) for a in args]
        try:
            with torch.inference_mode():
                result = self.module(*args)
        except Exception as exc:
            raise InvalidInput(f"the model rejected the input: {error_detail(exc)}") from exc
        return self._named(result)

    def _arrays(self, batch: Batch) -> list[Array]:
        specs = self.signature.inputs if self.signature is not None else []
        if isinstance(batch, Mapping) and len(specs) > 1:
            missing = [s.name for s in specs if s.name not in batch]
            if missing:
                raise InvalidInput(f"missing model inputs: {', '.join(missing)}")
            arrays = [batch[s.name] for s in specs]
        elif isinstance(batch, Mapping):
            if len(batch) != 1:
                raise InvalidInput(f"the model takes one input tensor, got {len(batch)}")
            arrays = list(batch.values())
        else:
            arrays = [batch]
        dtypes = [DATATYPES[s.datatype] for s in specs] or ["float32"]
        converted = []
        for i, array in enumerate(arrays):
            dtype = dtypes[i] if i < len(dtypes) else "float32"
            if dtype == "object":
                raise InvalidInput("TorchScript models take numeric tensors, not BYTES")
            converted.append(np.ascontiguousarray(array, dtype=dtype))
        return converted

    def _named(self, result: Any) -> dict[str, Array]:
        names = [o.name for o in self.signature.outputs] if self.signature is not None else []
        if isinstance(result, Mapping):
            return {str(k): _to_numpy(v) for k, v in result.items()}
        values = list(result) if isinstance(result, tuple | list) else [result]
        return {
            (names[i] if i < len(names) else f"output_{i}"): _to_numpy(v)
            for i, v in enumerate(values)
        }


def _to_numpy(value: Any) -> Array:
    if hasattr(value, "detach"):
        return np.asarray(value.detach().cpu().numpy())
    return np.asarray(value)


class TorchPickleFlavor(Flavor):
    """torch.save archives (whole modules, state dicts): pickles inside, so trusted only."""

    name: ClassVar[str] = "torch-pickle"
    requires_trust: ClassVar[bool] = True

    def sniff(self, path: Path, filename: str) -> bool:
        """Recognise a torch.save zip archive (``*/data.pkl`` without TorchScript code)."""
        return is_torch_save_archive(archive_members(path))

    def inspect(self, path: Path, trusted: bool) -> Signature | None:
        """Unpickle (trusted only) in the host and check it holds a module; no signature."""
        _refuse_untrusted(trusted)
        from aimass.flavors.sandboxed import inspect_in_host

        require_torch()
        return inspect_in_host(self.name, path, trusted)

    def load(self, path: Path, trusted: bool) -> Predictor:
        """Start a host serving the unpickled module (trusted only)."""
        _refuse_untrusted(trusted)
        from aimass.flavors.sandboxed import start_host

        require_torch()
        return start_host(self.name, path, trusted)

    def load_in_process(self, path: Path, trusted: bool) -> TorchScriptPredictor:
        """The host's loader: torch.load the module (trusted only)."""
        _refuse_untrusted(trusted)
        device = _device()
        module = self._read(path, device)
        module.eval()
        return TorchScriptPredictor(module, None, device)

    def _read(self, path: Path, device: str) -> Any:
        torch = import_torch()
        try:
            obj = torch.load(str(path), map_location=device, weights_only=False)
        except Exception as exc:
            raise Unprocessable(
                f"could not load the torch.save archive: {error_detail(exc, path)}"
            ) from exc
        if not isinstance(obj, torch.nn.Module):
            raise Unprocessable(
                f"the torch.save archive holds a {type(obj).__name__}, not a torch.nn.Module; "
                "save the whole module as TorchScript (torch.jit.script(model).save(path))"
            )
        return obj


def _refuse_untrusted(trusted: bool) -> None:
    if not trusted:
        raise Unprocessable(
            "torch.save archives run code when loaded; refusing to load one that is not trusted"
        )
