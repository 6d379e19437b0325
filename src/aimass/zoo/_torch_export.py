"""ONNX exports of the zoo's PyTorch classifiers: torch gives probabilities, ONNX adds the rest.

A classifier module's forward returns class probabilities only. The exported
graph then gets a ``label`` output (ArgMax over the probabilities, then a Gather
from the classes as they are in the data: integers, floats or strings), placed
first so that ``predict`` answers labels, and optionally a text front end that
turns raw strings into the token ids the module takes (lower-casing, a regular
expression tokenizer and a vocabulary lookup, all ONNX operators that
onnxruntime runs), so the served model takes the text itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: The ONNX opset the zoo's exports target (onnxruntime runs it; the checker knows it).
ONNX_OPSET = 17
#: Tokens: runs of letters and digits (any script), after ASCII lower-casing; in the graph's
#: RE2 syntax, and the same set in Python's ``re`` (``tokenize``).
TOKEN_PATTERN = r"[\p{L}\p{N}]+"
_PY_TOKEN_PATTERN = r"[^\W_]+"
#: Token id 0 pads a row; 1 is any word outside the vocabulary.
PAD, UNKNOWN = 0, 1
_PAD_TOKEN = "#"  # never a token: the pattern has no '#'


def export_torch(
    module: Any,
    example: Sequence[Any],
    path: Path,
    inputs: Mapping[str, Sequence[int]],
    outputs: Mapping[str, Sequence[int]],
) -> Path:
    """Export ``module`` (on the CPU, in eval mode) to ONNX with the TorchScript-based exporter.

    ``inputs``/``outputs`` map each tensor's name to its variable axes.
    """
    import torch

    module = module.cpu().eval()
    named = {**inputs, **outputs}
    axes = {name: {axis: f"{name}_{axis}" for axis in dims} for name, dims in named.items()}
    with warnings.catch_warnings():
        # Chosen on purpose: it exports these small graphs in one step, without onnxscript.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            tuple(example),
            str(path),
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes=axes,
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return path


def _classes_tensor(classes: Any) -> Any:
    import numpy as np
    from onnx import TensorProto, helper

    values = np.asarray(classes)
    shape = [len(values)]
    if values.dtype.kind in "iub":
        return helper.make_tensor("classes", TensorProto.INT64, shape, values.astype(np.int64))
    if values.dtype.kind == "f":
        return helper.make_tensor("classes", TensorProto.DOUBLE, shape, values.astype(np.float64))
    encoded: Any = [str(value).encode() for value in values.tolist()]  # onnx's stub says numbers
    return helper.make_tensor("classes", TensorProto.STRING, shape, encoded)


def add_label_output(model: Any, classes: Any) -> None:
    """Add ``label`` (the most probable class, as in the data) as the graph's first output."""
    from onnx import helper

    graph = model.graph
    tensor = _classes_tensor(classes)
    graph.initializer.append(tensor)
    graph.node.extend(
        [
            helper.make_node("ArgMax", ["probabilities"], ["label_index"], axis=1, keepdims=0),
            helper.make_node("Gather", ["classes", "label_index"], ["label"], axis=0),
        ]
    )
    label = helper.make_tensor_value_info("label", tensor.data_type, ["label_0"])
    graph.output.insert(0, label)


def add_text_input(model: Any, vocabulary: Sequence[str]) -> None:
    """Replace the ``ids`` input by ``text`` (strings, [-1, 1]) and the ops that tokenize it.

    ``vocabulary[i]`` gets id ``i + 2``; other words get ``UNKNOWN``, padding ``PAD``.
    """
    from onnx import TensorProto, helper

    graph = model.graph
    (ids,) = [value for value in graph.input if value.name == "ids"]
    graph.input.remove(ids)
    graph.input.insert(0, helper.make_tensor_value_info("text", TensorProto.STRING, [None, 1]))
    graph.initializer.append(helper.make_tensor("text_rows", TensorProto.INT64, [1], [-1]))
    front = [
        helper.make_node("Reshape", ["text", "text_rows"], ["text_flat"]),
        helper.make_node(
            "StringNormalizer",
            ["text_flat"],
            ["text_lower"],
            case_change_action="LOWER",
            locale="C",  # ASCII only, as ``tokenize``; a named locale may be missing
        ),
        helper.make_node(
            "Tokenizer",
            ["text_lower"],
            ["tokens"],
            domain="com.microsoft",
            mark=0,
            mincharnum=1,
            pad_value=_PAD_TOKEN,
            tokenexp=TOKEN_PATTERN,
        ),
        helper.make_node(
            "LabelEncoder",
            ["tokens"],
            ["ids"],
            domain="ai.onnx.ml",
            keys_strings=[_PAD_TOKEN, *vocabulary],
            values_int64s=[PAD, *range(2, len(vocabulary) + 2)],
            default_int64=UNKNOWN,
        ),
    ]
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend([*front, *nodes])
    domains = {opset.domain for opset in model.opset_import}
    for domain, version in (("com.microsoft", 1), ("ai.onnx.ml", 2)):
        if domain not in domains:
            model.opset_import.append(helper.make_opsetid(domain, version))


def export_classifier(
    module: Any,
    example: Sequence[Any],
    path: Path,
    input_name: str,
    input_axes: Sequence[int],
    classes: Any,
    vocabulary: Sequence[str] | None = None,
) -> Path:
    """Export a probabilities module to ONNX, add ``label`` (and the text front end), check it."""
    import onnx

    export_torch(module, example, path, {input_name: input_axes}, {"probabilities": [0]})
    model = onnx.load(path)
    add_label_output(model, classes)
    if vocabulary is not None:
        add_text_input(model, vocabulary)
    onnx.checker.check_model(model)
    onnx.save_model(model, path)
    return path


def check_export(path: Path, inputs: Any, labels: Any, probabilities: Any) -> None:
    """Run the exported model in onnxruntime; raise unless it answers as torch did."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    got_labels, got_probabilities = session.run(["label", "probabilities"], {name: inputs})
    if not np.allclose(got_probabilities, probabilities, atol=1e-4):
        worst = float(np.abs(got_probabilities - probabilities).max())
        raise RuntimeError(f"the ONNX export strays from the torch model by {worst:.3g}")
    expected = np.asarray(labels)
    if expected.dtype.kind in "OUS":
        expected = expected.astype(str)
        got_labels = np.asarray(got_labels).astype(str)
    if not np.array_equal(got_labels, expected):
        raise RuntimeError("the ONNX export's labels differ from the torch model's")


def tokenize(text: str) -> list[str]:
    """The tokens the exported text front end finds in ``text``, in order."""
    import re

    lowered = text.translate(_ASCII_LOWER)
    return re.findall(_PY_TOKEN_PATTERN, lowered)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
