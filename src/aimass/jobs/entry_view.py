"""What the catalogue shows of an entry: its params as rows, and how to train and call it."""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aimass.plugins.entries import Entry

_BOUNDS = (
    ("exclusiveMinimum", ">"),
    ("minimum", ">="),
    ("exclusiveMaximum", "<"),
    ("maximum", "<="),
    ("minLength", "length >="),
    ("maxLength", "length <="),
)


def _type_of(spec: dict[str, Any]) -> tuple[str, list[str]]:
    """A property's type name ("number", "integer | null", "'a' | 'b'") and its bounds."""
    variants = spec.get("anyOf") or [spec]
    names: list[str] = []
    bounds: list[str] = []
    for variant in variants:
        if "enum" in variant:
            names.append(" | ".join(repr(v) for v in variant["enum"]))
        elif "const" in variant:
            names.append(repr(variant["const"]))
        else:
            names.append(str(variant.get("type", "object")))
        bounds += [f"{word} {variant[key]:g}" for key, word in _BOUNDS if key in variant]
    return " | ".join(names), bounds


def param_rows(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per param: name, type, default, required, bounds and description."""
    required = set(schema.get("required", []))
    rows = []
    for name, spec in schema.get("properties", {}).items():
        kind, bounds = _type_of(spec)
        rows.append(
            {
                "name": name,
                "type": kind,
                "default": spec.get("default"),
                "required": name in required,
                "constraints": bounds,
                "description": spec.get("description", ""),
            }
        )
    return rows


def describe_entry(entry: Entry) -> dict[str, Any]:
    """The entry as the catalogue shows it: its metadata, params and how to train it."""
    body = entry.describe()
    body["params"] = param_rows(body["params_schema"])
    body["train_request"] = {"kind": "train", "entry": entry.name, "params": {}}
    command = ["aimass", "jobs", "submit", entry.name]
    if entry.default_dataset:
        command += ["--dataset", entry.default_dataset]
    body["train_command"] = shlex.join(command) + " -f"
    if entry.example_request is not None:
        body["infer_command"] = (
            f"curl -s -X POST $AIMASS_URL/v2/models/<deployment>/infer "
            f'-H "Authorization: Bearer $AIMASS_TOKEN" '
            f"-d {shlex.quote(json.dumps(entry.example_request))}"
        )
    return body
