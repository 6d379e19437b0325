"""Write in-memory models to safe file formats, for the SDK's uploads."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from aimass.errors import InvalidInput
from aimass.flavors.base import error_detail
from aimass.flavors.signature import NUMPY_TO_DATATYPE, Signature, TensorSpec
from aimass.flavors.torchscript import SIGNATURE_FILE, quiet_jit

if TYPE_CHECKING:
    from pathlib import Path

    from aimass.flavors.base import Array


def _is_instance(obj: object, module: str, attribute: str) -> bool:
    """isinstance against a library class, without importing a library the caller has not."""
    if module.split(".")[0] not in sys.modules:
        return False
    __import__(module)
    cls = getattr(sys.modules[module], attribute)
    return isinstance(obj, cls)


def _target(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory / name


def serialize_model(
    obj: object,
    directory: Path,
    signature: Signature | None = None,
    example: Array | None = None,
) -> tuple[Path, str]:
    """Write a model in a safe format into ``directory``; return the file and its flavor name.

    scikit-learn estimators go to skops, torch modules to TorchScript (with the
    signature embedded), ONNX ModelProtos to ONNX. skops and ONNX files carry
    their own signature, so ``signature`` is embedded for TorchScript only.
    """
    if _is_instance(obj, "sklearn.base", "BaseEstimator"):
        import skops.io as sio

        path = _target(directory, "model.skops")
        sio.dump(obj, path)
        return path, "sklearn"
    if _is_instance(obj, "torch.nn", "Module"):
        path = _target(directory, "model.pt")
        _save_torchscript(obj, path, signature, example)
        return path, "torchscript"
    if _is_instance(obj, "onnx", "ModelProto"):
        import onnx

        assert isinstance(obj, onnx.ModelProto)  # narrows the type for mypy
        path = _target(directory, "model.onnx")
        onnx.save_model(obj, path)
        return path, "onnx"
    raise InvalidInput(
        f"cannot serialize a {type(obj).__name__}: supported are scikit-learn estimators and "
        "pipelines (saved with skops), torch.nn.Module (saved as TorchScript) and "
        "onnx.ModelProto; for anything else, save the model file yourself and upload it"
    )


def _save_torchscript(
    module: Any, path: Path, signature: Signature | None, example: Array | None
) -> None:
    import torch

    scripted = _script_or_trace(torch, module, example)
    scripted.eval()
    if signature is None and example is not None:
        signature = example_signature(torch, scripted, example)
    extra = {SIGNATURE_FILE: signature.model_dump_json()} if signature is not None else {}
    with quiet_jit():
        torch.jit.save(scripted, str(path), _extra_files=extra)


def _script_or_trace(torch: Any, module: Any, example: Array | None) -> Any:
    try:
        with quiet_jit():
            return torch.jit.script(module)
    except Exception as script_error:
        if example is None:
            raise InvalidInput(
                f"torch.jit.script cannot compile this module ({error_detail(script_error)}); "
                "pass example= (a numpy batch) so it can be traced instead"
            ) from script_error
    was_training = module.training
    module.eval()
    try:
        with quiet_jit():
            return torch.jit.trace(module, torch.from_numpy(np.ascontiguousarray(example)))
    except Exception as trace_error:
        raise InvalidInput(
            f"the module can be neither scripted nor traced with the example given: "
            f"{error_detail(trace_error)}"
        ) from trace_error
    finally:
        module.train(was_training)


def _spec(name: str, array: Array) -> TensorSpec:
    datatype = NUMPY_TO_DATATYPE.get(array.dtype.name)
    if datatype is None:
        raise InvalidInput(f"{name} has dtype {array.dtype}, which has no Open Inference datatype")
    return TensorSpec(name=name, datatype=datatype, shape=[-1, *array.shape[1:]])


def example_signature(torch: Any, scripted: Any, example: Array) -> Signature:
    """Infer a signature by running the module on an example batch (batch dimension -> -1)."""
    example = np.ascontiguousarray(example)
    try:
        with torch.inference_mode():
            result = scripted(torch.from_numpy(example))
    except Exception as exc:
        raise InvalidInput(f"the module fails on the example given: {error_detail(exc)}") from exc
    values = list(result) if isinstance(result, tuple | list) else [result]
    outputs = [
        _spec("output" if len(values) == 1 else f"output_{i}", value.detach().cpu().numpy())
        for i, value in enumerate(values)
        if hasattr(value, "detach")
    ]
    return Signature(inputs=[_spec("input", example)], outputs=outputs)
