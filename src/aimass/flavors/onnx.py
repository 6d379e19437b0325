"""The ONNX flavor: ONNX models run by onnxruntime, in the server's process.

A model runs on the CPU, or on the GPU it is given when this onnxruntime build has the
CUDA provider (:func:`aimass.devices.onnx_providers`); its predictor's ``device`` says
which. Served from the node's model cache on the CPU, a model's weights are
memory-mapped from a form written once per node, so the workers share them
(:mod:`._onnx_mapped`); on a GPU the weights live in the GPU's memory, so that form is
not used.

ONNX stays in-process because its graph is data run by onnxruntime's own kernels;
the two ways it could reach outside are refused at inspect and at load: tensors
whose data lives in another file (a path onnxruntime would open) and operators
of a custom domain (code from a library).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from aimass.errors import InvalidInput, Unprocessable
from aimass.flavors.base import Flavor, error_detail, process_threads
from aimass.flavors.signature import Signature, TensorSpec

if TYPE_CHECKING:
    from pathlib import Path

    from aimass.flavors.base import Array, Batch

log = logging.getLogger("aimass.serving")

#: ONNX TensorProto element types and their Open Inference Protocol datatypes.
ELEM_TYPE_TO_DATATYPE: dict[int, str] = {
    1: "FP32",
    2: "UINT8",
    3: "INT8",
    4: "UINT16",
    5: "INT16",
    6: "INT32",
    7: "INT64",
    8: "BYTES",
    9: "BOOL",
    10: "FP16",
    11: "FP64",
    12: "UINT32",
    13: "UINT64",
}
#: onnxruntime's type strings and the numpy dtypes to cast inputs to.
_ORT_TO_NUMPY: dict[str, str] = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}
#: Output names that converters (skl2onnx among them) give to class probabilities.
PROBABILITY_OUTPUTS = ("probabilities", "output_probability")
#: Operator domains served: ONNX's own, its ML operators, and onnxruntime's built-in contrib ops.
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})
_MAX_PROTO_BYTES = 2**31 - 1  # protobuf cannot parse more; bigger models use external data


def _parse(data: bytes) -> Any:
    import onnx

    return onnx.ModelProto.FromString(data)


class OnnxFlavor(Flavor):
    """ONNX models: a safe format, whose graph is data, not code."""

    name: ClassVar[str] = "onnx"
    requires_trust: ClassVar[bool] = False

    def sniff(self, path: Path, filename: str) -> bool:
        """Recognise a ``.onnx`` name, or bytes that parse as an ONNX ModelProto with a graph."""
        if PurePath(filename).suffix.lower() == ".onnx":
            return True
        try:
            with path.open("rb") as file:
                # Every ONNX writer puts ir_version (field 1, varint: tag 0x08) first.
                if file.read(1) != b"\x08" or path.stat().st_size > _MAX_PROTO_BYTES:
                    return False
                file.seek(0)
                model = _parse(file.read())
        except Exception:
            return False
        return bool(model.ir_version > 0 and model.HasField("graph"))

    def inspect(self, path: Path, trusted: bool) -> Signature:
        """Check the model with onnx's checker, open it in onnxruntime, and read its signature."""
        model = _read_model(path)
        _session(path)
        return graph_signature(model)

    def load(self, path: Path, trusted: bool) -> OnnxPredictor:
        """Open the model in an onnxruntime CPU session."""
        model = _read_model(path)
        return OnnxPredictor(_session(path), graph_signature(model))

    def load_cached(self, path: Path, trusted: bool) -> OnnxPredictor:
        """Open the model with its weights memory-mapped from a form written once per node
        (see :mod:`._onnx_mapped`), so the node's processes share them; the file itself when
        that form cannot be written, or on a GPU (the mapped form is the CPU's layout)."""
        from aimass.flavors._onnx_mapped import mapped_copy

        signature = graph_signature(_read_model(path))
        if _gpu_requested():
            return OnnxPredictor(_session(path), signature)
        mapped = mapped_copy(path)
        if mapped is not None:
            try:
                return OnnxPredictor(_session(mapped), signature)
            except Unprocessable as exc:  # onnxruntime cannot reopen what it wrote
                log.warning("serving %s from its own heap: %s", path.name, exc.message)
        return OnnxPredictor(_session(path), signature)


def _read_model(path: Path) -> Any:
    import onnx

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:
        raise Unprocessable(f"not a valid ONNX model: {error_detail(exc, path)}") from exc
    # Both checks come before anything (the checker, onnxruntime) follows what the model names.
    check_external_data(model)
    check_domains(model)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise Unprocessable(f"not a valid ONNX model: {error_detail(exc, path)}") from exc
    return model


def check_external_data(model: Any) -> None:
    """Refuse any tensor whose data lives in another file, naming the tensor and the file.

    An uploaded ``.onnx`` is one file with no folder of its own, so any location
    (``/etc/passwd``, ``../../token``, or a plain name) would make onnxruntime read
    a file the server never received from the uploader.
    """
    for tensor in _model_tensors(model):
        if _uses_external_data(tensor):
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            raise Unprocessable(
                f"ONNX tensor {tensor.name[:100]!r} keeps its data in another file "
                f"({location[:100]!r}); external data is refused, since it would read a file "
                "outside the upload. Save the model as one file "
                "(onnx.save_model(model, path, save_as_external_data=False))"
            )


def check_domains(model: Any) -> None:
    """Refuse nodes of an operator domain that is not a standard one (custom operators).

    A node may also call one of the model's own local functions, whose bodies are checked too.
    """
    local = {(f.domain, f.name) for f in model.functions}
    for node in _model_nodes(model):
        if node.domain in STANDARD_DOMAINS or (node.domain, node.op_type) in local:
            continue
        raise Unprocessable(
            f"ONNX node {node.name[:100]!r} uses the operator {node.op_type[:100]!r} of the "
            f"custom domain {node.domain[:100]!r}; only the standard domains "
            f"({', '.join(repr(d) for d in sorted(STANDARD_DOMAINS))}) are served"
        )


def _model_nodes(model: Any) -> Iterator[Any]:
    """Yield every node of a model: its graph's, its subgraphs' and its local functions'."""
    yield from _nodes(model.graph.node)
    for function in model.functions:
        yield from _nodes(function.node)


def _nodes(nodes: Any) -> Iterator[Any]:
    for node in nodes:
        yield node
        for attribute in node.attribute:
            if attribute.HasField("g"):
                yield from _nodes(attribute.g.node)
            for subgraph in attribute.graphs:
                yield from _nodes(subgraph.node)


def _model_tensors(model: Any) -> Iterator[Any]:
    """Yield every TensorProto in a model: its graph's and its local functions'."""
    yield from _tensors(model.graph)
    for function in model.functions:
        yield from _node_tensors(function.node)


def _tensors(graph: Any) -> Iterator[Any]:
    """Yield every TensorProto in a graph, its nodes' attributes and its subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    yield from _node_tensors(graph.node)


def _node_tensors(nodes: Any) -> Iterator[Any]:
    for node in nodes:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("sparse_tensor"):
                yield from (attribute.sparse_tensor.values, attribute.sparse_tensor.indices)
            for sparse in attribute.sparse_tensors:
                yield from (sparse.values, sparse.indices)
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph)


def _uses_external_data(tensor: Any) -> bool:
    import onnx

    return bool(tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data)


def _gpu_requested() -> bool:
    """Whether the model being loaded is given a GPU that this onnxruntime can use."""
    import onnxruntime as ort

    from aimass.devices import onnx_providers

    return onnx_providers(ort) != ["CPUExecutionProvider"]


def _session(path: Path) -> Any:
    """An onnxruntime session over ``path``, on the GPU the model is given when this
    onnxruntime has the CUDA provider, else on the CPU."""
    import onnxruntime as ort

    from aimass.devices import onnx_providers

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only; warnings go to stderr, not to our logs
    threads = process_threads()
    if threads is not None:
        # A replica's own process: its CPU share, not the node's cores (ORT's default).
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=onnx_providers(ort))
    except Exception as exc:
        raise Unprocessable(
            f"onnxruntime cannot run this model: {error_detail(exc, path)}"
        ) from exc


def _value_spec(value: Any) -> TensorSpec | None:
    """Return a TensorSpec for a graph input or output, or None when it is not a plain tensor."""
    if value.type.WhichOneof("value") != "tensor_type":
        return None
    tensor_type = value.type.tensor_type
    datatype = ELEM_TYPE_TO_DATATYPE.get(tensor_type.elem_type)
    if datatype is None:
        return None
    if not tensor_type.HasField("shape"):
        shape = [-1]
    else:
        shape = [
            dim.dim_value if dim.HasField("dim_value") else -1 for dim in tensor_type.shape.dim
        ]
    return TensorSpec(name=value.name, datatype=datatype, shape=shape)


def graph_signature(model: Any) -> Signature:
    """Read the signature from a model's graph inputs (not initializers) and tensor outputs."""
    initializers = {tensor.name for tensor in model.graph.initializer}
    inputs = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        spec = _value_spec(value)
        if spec is None:
            raise Unprocessable(
                f"input {value.name!r} is not a tensor of a supported type; aimass serves "
                "models whose inputs are tensors"
            )
        inputs.append(spec)
    outputs = [spec for value in model.graph.output if (spec := _value_spec(value)) is not None]
    return Signature(inputs=inputs, outputs=outputs)


def session_device(session: Any) -> str:
    """Where a session runs: "cuda:N" when its CUDA provider is in use, else "cpu"."""
    if "CUDAExecutionProvider" not in session.get_providers():
        return "cpu"
    options = session.get_provider_options().get("CUDAExecutionProvider", {})
    return f"cuda:{options.get('device_id', 0)}"


class OnnxPredictor:
    """A predictor over an onnxruntime session; predict returns the model's first output.
    ``device`` is "cuda:N" when the session runs on the CUDA provider, else "cpu"."""

    def __init__(self, session: Any, signature: Signature | None) -> None:
        self.session = session
        self.signature = signature
        self.device = session_device(session)
        self._inputs = {i.name: _ORT_TO_NUMPY.get(i.type) for i in session.get_inputs()}
        outputs = session.get_outputs()
        self._tensor_outputs = frozenset(
            o.name for o in outputs if str(o.type).startswith("tensor(")
        )
        self._first_output: str = outputs[0].name
        self._proba_output: str | None = next(
            (
                o.name
                for o in outputs
                if o.name in PROBABILITY_OUTPUTS and str(o.type).startswith("tensor(")
            ),
            None,
        )

    @property
    def threads(self) -> int:
        """The session's intra-op thread count as set (0: onnxruntime's default, the cores)."""
        return int(self.session.get_session_options().intra_op_num_threads)

    def predict(self, batch: Batch) -> Array:
        """Run the model and return its first output."""
        return self._run(batch, self._first_output)

    def predict_named(self, batch: Batch, names: list[str]) -> dict[str, Array]:
        """Run the model once for the tensor outputs in ``names``, by name."""
        wanted = [n for n in names if n in self._tensor_outputs]
        if not wanted:
            return {}
        feeds = self._feeds(batch)
        try:
            result = self.session.run(wanted, feeds)
        except Exception as exc:
            raise InvalidInput(f"the model rejected the input: {error_detail(exc)}") from exc
        return {name: np.asarray(value) for name, value in zip(wanted, result, strict=True)}

    def predict_proba(self, batch: Batch) -> Array | None:
        """Return the model's probabilities output, or None when it has no tensor one."""
        if self._proba_output is None:
            return None
        return self._run(batch, self._proba_output)

    def _run(self, batch: Batch, output: str) -> Array:
        feeds = self._feeds(batch)
        try:
            result = self.session.run([output], feeds)
        except Exception as exc:
            raise InvalidInput(f"the model rejected the input: {error_detail(exc)}") from exc
        return np.asarray(result[0])

    def _feeds(self, batch: Batch) -> dict[str, Array]:
        if isinstance(batch, Mapping):
            unknown = set(batch) - set(self._inputs)
            missing = set(self._inputs) - set(batch)
            if unknown or missing:
                raise InvalidInput(
                    f"the model's inputs are {', '.join(self._inputs)}; "
                    f"got {', '.join(batch) or 'none'}"
                )
            return {name: self._cast(name, array) for name, array in batch.items()}
        first = next(iter(self._inputs))
        return {first: self._cast(first, batch)}

    def _cast(self, name: str, array: Array) -> Array:
        dtype = self._inputs[name]
        return np.asarray(array) if dtype is None else np.asarray(array, dtype=dtype)
