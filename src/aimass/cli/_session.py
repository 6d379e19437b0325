"""What every CLI command shares: the root options, the SDK client, errors and output.

Heavy imports (the SDK, httpx, pydantic, rich) happen inside these functions so
``aimass --help`` stays quick.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydantic import BaseModel
    from rich.console import Console

    from aimass.client import Client, Progress


@dataclass
class RootOptions:
    """The global ``--url``, ``--token`` and ``--project`` (None: from ClientSettings)."""

    url: str | None = None
    token: str | None = None
    project: str | None = None


def stdout_console() -> Console:
    """A rich console on the current stdout (made per call, so test runners capture it)."""
    from rich.console import Console

    return Console(file=sys.stdout, soft_wrap=False)


def stderr_console() -> Console:
    """A rich console on the current stderr, for progress bars."""
    from rich.console import Console

    return Console(file=sys.stderr)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _error_line(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    request_id = getattr(exc, "request_id", None)
    # An inference error may already quote it (the replica's answer): say it once.
    if not request_id or str(request_id) in message:
        return message
    return f"{message} (request id {request_id})"


@contextlib.contextmanager
def errors_as_exit() -> Iterator[None]:
    """Turn aimass, validation and file errors into one stderr line and exit code 1."""
    from pydantic import ValidationError

    from aimass.errors import AimassError

    try:
        yield
    except AimassError as exc:
        fail(_error_line(exc))
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"msg": str(exc), "loc": ()}
        where = ".".join(str(p) for p in first.get("loc", ()))
        fail(f"invalid value{f' for {where}' if where else ''}: {first['msg']}")
    except OSError as exc:
        fail(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}")


@contextlib.contextmanager
def open_client(ctx: typer.Context) -> Iterator[Client]:
    """An SDK client from the root options; errors inside become one line and exit 1."""
    with errors_as_exit():
        from aimass.client import Client

        options = ctx.obj if isinstance(ctx.obj, RootOptions) else RootOptions()
        client = Client(url=options.url, token=options.token, project=options.project)
        try:
            yield client
        finally:
            client.close()


def dump(value: BaseModel | Sequence[BaseModel] | Mapping[str, object]) -> object:
    """JSON-ready data from an entity, a list of entities or a plain mapping."""
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return dict(value)
    return [item.model_dump(mode="json") for item in value]


def print_json(value: BaseModel | Sequence[BaseModel] | Mapping[str, object]) -> None:
    """Print machine-readable JSON on stdout (no colour, no wrapping)."""
    typer.echo(json.dumps(dump(value), indent=2, sort_keys=False))


def format_mapping(values: Mapping[str, object]) -> str:
    """``k=v, k2=v2`` for a table cell."""
    return ", ".join(f"{k}={v}" for k, v in values.items())


def format_time(value: object) -> str:
    """A timestamp to the minute, for a table cell."""
    from datetime import datetime

    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def format_size(size: int) -> str:
    """A byte count for humans (``1.2 MB``)."""
    amount = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if amount < 1000 or unit == "TB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{size} B"  # pragma: no cover


def parse_pairs(values: Sequence[str] | None, what: str) -> dict[str, str]:
    """``["k=v", ...]`` from repeated options into a dict; a missing ``=`` is a usage error."""
    pairs: dict[str, str] = {}
    for item in values or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=what)
        pairs[key.strip()] = value.strip()
    return pairs


def parse_metrics(values: Sequence[str] | None) -> dict[str, float]:
    """``["accuracy=0.93"]`` into ``{"accuracy": 0.93}``."""
    metrics: dict[str, float] = {}
    for key, value in parse_pairs(values, "--metric").items():
        try:
            metrics[key] = float(value)
        except ValueError:
            raise typer.BadParameter(
                f"metric {key!r} needs a number, got {value!r}", param_hint="--metric"
            ) from None
    return metrics


def parse_ref(ref: str) -> int | str:
    """A version number when ``ref`` is all digits, else an alias name."""
    return int(ref) if ref.isdigit() else ref


@contextlib.contextmanager
def transfer(description: str, total: int = 0) -> Iterator[Progress]:
    """A rich progress bar on stderr (bytes, speed, ETA); yields the SDK's callback."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = stderr_console()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(description, total=total or None)

        def update(done: int, size: int) -> None:
            bar.update(task, completed=done, total=size or None)

        yield update


#: ``--json`` of every command that prints something.
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead.")]

#: ``--yes/-y`` of the delete commands.
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask to confirm.")]


def confirm_and_delete(
    ctx: typer.Context,
    question: str,
    done: str,
    delete: Callable[[Client], object],
    *,
    yes: bool,
    as_json: Mapping[str, object] | None = None,
) -> None:
    """Ask ``question`` unless ``yes``, run ``delete`` with a client, then print ``done``.

    ``as_json`` (when the user asked for ``--json``) is printed instead of ``done``.
    """
    if not yes and not typer.confirm(question):
        raise typer.Exit(1)
    with open_client(ctx) as client:
        delete(client)
    if as_json is not None:
        print_json(as_json)
    else:
        from rich.text import Text

        stdout_console().print(Text(done))
