"""``aimass predict``: send rows from a JSON or CSV file to a deployment."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from aimass.cli._session import errors_as_exit, fail, open_client, print_json, stdout_console

if TYPE_CHECKING:
    from aimass.client import PredictResult


def _number(text: str) -> object:
    """A CSV cell as an int or float where it parses, None when empty, else the text."""
    value = text.strip()
    if not value:
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return text


def read_csv(text: str) -> list[dict[str, object]]:
    """CSV with a header row into records, numbers parsed."""
    import csv
    import io

    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise ValueError("the CSV file has no header row")
    records: list[dict[str, object]] = []
    for line, row in enumerate(reader, start=2):
        if None in row or any(v is None for v in row.values()):
            raise ValueError(f"CSV line {line} does not have one value per column")
        records.append({k: _number(v) for k, v in row.items()})
    return records


def read_json(text: str) -> list[object]:
    """``{"inputs": [...]}`` or a bare list of rows or records."""
    import json

    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from None
    if isinstance(doc, dict) and "inputs" in doc:
        doc = doc["inputs"]
    if not isinstance(doc, list):
        raise ValueError('expected {"inputs": [...]} or a list of rows or records')
    return doc


def read_inputs(source: str) -> Sequence[object]:
    """The rows in ``source``: a ``.csv`` file, a JSON file, or ``-`` for JSON on stdin."""
    from pathlib import Path

    if source == "-":
        return read_json(sys.stdin.read())
    path = Path(source)
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        return read_csv(text)
    return read_json(text)


def _top(probabilities: object) -> str:
    if isinstance(probabilities, list) and probabilities:
        numbers = [p for p in probabilities if isinstance(p, (int, float))]
        if len(numbers) == len(probabilities):
            return f"{max(numbers):.4f}"
    return "-"


def _is_distribution(row: object) -> bool:
    if not isinstance(row, list) or not row:
        return False
    numbers = [p for p in row if isinstance(p, (int, float))]
    return (
        len(numbers) == len(row)
        and all(0.0 <= p <= 1.0 for p in numbers)
        and abs(sum(numbers) - 1.0) < 1e-3
    )


def score_heading(probabilities: Sequence[object]) -> str:
    """``probability`` when each row is a distribution (a classifier), else ``top score``."""
    return "probability" if all(_is_distribution(r) for r in probabilities) else "top score"


def _table(result: PredictResult) -> None:
    from rich.table import Table

    with_proba = result.probabilities is not None
    console = stdout_console()
    console.print(
        f"{len(result.predictions)} prediction(s) from {result.deployment} "
        f"(model {result.model} version {result.version})",
        highlight=False,
        markup=False,
    )
    table = Table()
    table.add_column("row", justify="right")
    table.add_column("prediction", overflow="fold")
    probabilities = result.probabilities or []
    if with_proba:
        # A ranking model's scores (top-k items) are no probabilities: say what they are.
        table.add_column(score_heading(probabilities), justify="right")
    for index, prediction in enumerate(result.predictions):
        cells = [str(index), str(prediction)]
        if with_proba:
            cells.append(_top(probabilities[index]) if index < len(probabilities) else "-")
        table.add_row(*cells)
    console.print(table)


def predict(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The deployment to ask.")],
    input_: Annotated[
        str,
        typer.Option(
            "--input",
            "-i",
            metavar="FILE",
            help='A .csv file (header row, one record a line), a .json file ({"inputs": [...]} '
            "or a list of rows or records), or - for JSON on stdin.",
        ),
    ],
    json_: Annotated[
        bool, typer.Option("--json", help="Print the server's answer as JSON instead.")
    ] = False,
) -> None:
    """Predict with a deployment: one prediction (and top probability) per input row.

    Example: aimass predict iris --input rows.csv

    Example: echo '[[5.1, 3.5, 1.4, 0.2]]' | aimass predict iris --input - --json
    """
    with errors_as_exit():
        try:
            rows = read_inputs(input_)
        except (ValueError, UnicodeDecodeError) as exc:
            fail(f"{input_}: {exc}")
    if not rows:
        fail(f"{input_}: no rows to predict")
    with open_client(ctx) as client:
        result = client.predict(name, rows)
    if json_:
        print_json(result)
    else:
        _table(result)
