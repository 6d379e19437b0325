"""``aimass models``: list, show, upload, download, alias, export, import, delete, search."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from aimass.cli._job_format import cells
from aimass.cli._session import (
    JsonOpt,
    YesOpt,
    format_mapping,
    format_size,
    format_time,
    open_client,
    parse_metrics,
    parse_pairs,
    parse_ref,
    print_json,
    stdout_console,
    transfer,
)

if TYPE_CHECKING:
    from rich.table import Table

    from aimass.entities.registry import Model, ModelVersion, VersionStatus

app = typer.Typer(
    name="models",
    help="Manage the model registry: models, versions, aliases and bundles.",
    no_args_is_help=True,
)

TagsOpt = Annotated[
    list[str] | None,
    typer.Option("--tag", "-t", metavar="KEY=VALUE", help="A tag; repeat for several."),
]


def models_table(models: list[Model]) -> Table:
    """One line per model that fits 80 columns: names whole, the description cut with …."""
    from rich.table import Table

    table = Table(title=f"{len(models)} model(s)", box=None, pad_edge=False)
    for column in ("name", "latest", "aliases", "tags", "description", "updated"):
        # Only the description gives way (one column, so the others are never cut).
        table.add_column(*cells(column, one_line=True), no_wrap=column != "description")
    for m in models:
        table.add_row(
            *cells(
                m.name,
                str(m.latest_version or "-"),
                format_mapping(m.aliases),
                format_mapping(m.tags),
            ),
            *cells(m.description, one_line=True),
            *cells(m.updated_at.astimezone().strftime("%m-%d %H:%M")),
        )
    return table


def _models_table(models: list[Model]) -> None:
    stdout_console().print(models_table(models))


def _versions_table(versions: list[ModelVersion], title: str, with_model: bool = False) -> None:
    from rich.table import Table

    # Across models (search) the table trades status and size for the model's name.
    columns = ["model", "version", "flavor"] if with_model else ["version", "flavor", "status"]
    columns += ["aliases", "metrics", "tags"] + ([] if with_model else ["size"]) + ["created"]
    table = Table(title=title)
    for column in columns:
        wide = column in ("model", "aliases", "metrics", "tags", "created")
        table.add_column(column, overflow="fold", no_wrap=not wide, min_width=min(len(column), 7))
    for v in versions:
        cells = {
            "model": v.model,
            "version": str(v.version),
            "flavor": v.flavor + (" (trusted)" if v.trusted else ""),
            "status": v.status,
            "aliases": ", ".join(v.aliases),
            "metrics": format_mapping({k: f"{x:.4g}" for k, x in v.metrics.items()}),
            "tags": format_mapping(v.tags),
            "size": format_size(v.size),
            "created": format_time(v.created_at),
        }
        table.add_row(*(cells[c] for c in columns))
    stdout_console().print(table)


def _version_summary(v: ModelVersion, verb: str) -> None:
    stdout_console().print(
        f"{verb} [bold]{v.model}[/] version [bold]{v.version}[/] "
        f"({v.flavor}, {format_size(v.size)}, sha256 {v.sha256[:12]})",
        highlight=False,
    )


@app.command("list")
def list_models(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="Only models whose name contains this.")] = None,
    tag: TagsOpt = None,
    flavor: Annotated[str | None, typer.Option(help="Only models with a version of it.")] = None,
    json_: JsonOpt = False,
) -> None:
    """List the models in the project.

    Example: aimass models list --tag team=vision
    """
    with open_client(ctx) as client:
        models = client.models.list(name=name, tag=parse_pairs(tag, "--tag") or None, flavor=flavor)
    if json_:
        print_json(models)
    else:
        _models_table(models)


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model's name.")],
    json_: JsonOpt = False,
) -> None:
    """Show one model with its aliases and versions.

    Example: aimass models show iris
    """
    with open_client(ctx) as client:
        model = client.models.get(name)
        versions = client.models.versions(name)
    if json_:
        print_json({**model.model_dump(mode="json"), "versions": _dump_all(versions)})
        return
    console = stdout_console()
    console.print(f"[bold]{model.name}[/]  (project {model.project})", highlight=False)
    if model.description:
        console.print(model.description, highlight=False)
    if model.tags:
        console.print(f"tags: {format_mapping(model.tags)}", highlight=False)
    if model.aliases:
        console.print(f"aliases: {format_mapping(model.aliases)}", highlight=False)
    _versions_table(versions, f"{len(versions)} version(s)")


def _dump_all(values: list[ModelVersion]) -> list[object]:
    return [v.model_dump(mode="json") for v in values]


@app.command("upload")
def upload(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model to add a version to (made if missing).")],
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            readable=True,
            help="The model file, or a Hugging Face model directory (zipped on upload).",
        ),
    ],
    flavor: Annotated[
        str | None,
        typer.Option(
            help="sklearn, onnx, torchscript, pickle or torch-pickle; "
            "guessed from the file when left out."
        ),
    ] = None,
    trusted: Annotated[
        bool,
        typer.Option(
            "--trusted",
            help="Allow a format that runs code when loaded (pickle, joblib); admin only.",
        ),
    ] = False,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", "-m", metavar="KEY=NUMBER", help="A metric; repeatable."),
    ] = None,
    tag: TagsOpt = None,
    description: Annotated[str, typer.Option(help="What this version is.")] = "",
    json_: JsonOpt = False,
) -> None:
    """Upload a model file as a new version.

    Example: aimass models upload iris model.onnx --metric accuracy=0.95 --tag stage=dev
    """
    metrics = parse_metrics(metric)
    tags = parse_pairs(tag, "--tag")
    with open_client(ctx) as client, transfer(f"upload {file.name}", file.stat().st_size) as bar:
        version = client.models.upload(
            name,
            file,
            flavor=flavor,
            trusted=trusted,
            metrics=metrics,
            tags=tags,
            description=description,
            progress=bar,
        )
    if json_:
        print_json(version)
    else:
        _version_summary(version, "uploaded")


def _saved(path: Path, json_: bool, **extra: object) -> None:
    if json_:
        print_json({"path": str(path), **extra})
    else:
        stdout_console().print(f"saved {path}", highlight=False, soft_wrap=True)


@app.command("download")
def download(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model's name.")],
    ref: Annotated[str, typer.Argument(help="A version number or an alias (production).")],
    out: Annotated[
        str, typer.Option("--out", "-o", help="A file, or a folder (ending in /) to save it in.")
    ] = ".",
    json_: JsonOpt = False,
) -> None:
    """Download a version's file, checking its SHA-256.

    Example: aimass models download iris production --out ./models/
    """
    with open_client(ctx) as client, transfer(f"download {name}:{ref}") as bar:
        path = client.models.download(name, parse_ref(ref), out, progress=bar)
    _saved(path, json_)


@app.command("alias")
def alias(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model's name.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="The alias (production).")],
    version: Annotated[
        int | None, typer.Argument(help="The version to point it at (not with --delete).")
    ] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias instead.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Point an alias at a version, or remove it with --delete.

    Example: aimass models alias iris production 3
    """
    if delete == (version is not None):
        raise typer.BadParameter("give either VERSION or --delete", param_hint="VERSION")
    with open_client(ctx) as client:
        if delete:
            client.models.delete_alias(name, alias_name)
            model = client.models.get(name)
        else:
            assert version is not None
            model = client.models.set_alias(name, alias_name, version)
    if json_:
        print_json(model)
    elif delete:
        stdout_console().print(f"removed alias {alias_name} of {name}", highlight=False)
    else:
        stdout_console().print(
            f"{name}:{alias_name} -> version {version}", highlight=False, markup=False
        )


@app.command("export")
def export(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model's name.")],
    ref: Annotated[str, typer.Argument(help="A version number or an alias.")],
    out: Annotated[
        str,
        typer.Option("--out", "-o", help="A bundle file, or a folder (ending in /) to save it in."),
    ] = ".",
    json_: JsonOpt = False,
) -> None:
    """Export a version as a portable bundle file, to import into another installation.

    Example: aimass models export iris production --out iris.aimass
    """
    with open_client(ctx) as client, transfer(f"export {name}:{ref}") as bar:
        path = client.models.export(name, parse_ref(ref), out, progress=bar)
    _saved(path, json_)


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="A bundle file."),
    ],
    name: Annotated[str | None, typer.Option(help="Import under this model name.")] = None,
    trusted: Annotated[
        bool, typer.Option("--trusted", help="Accept a code-running format; admin only.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Import a bundle made by `aimass models export` as a new version.

    Example: aimass models import iris-v3.aimass --name iris-copy
    """
    with open_client(ctx) as client, transfer(f"import {file.name}", file.stat().st_size) as bar:
        version = client.models.import_bundle(file, name=name, trusted=trusted, progress=bar)
    if json_:
        print_json(version)
    else:
        _version_summary(version, "imported")


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model's name.")],
    version: Annotated[
        str | None,
        typer.Option("--version", "-v", help="Delete only this version (number or alias)."),
    ] = None,
    yes: YesOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Delete a model with all its versions, or one version with --version.

    Example: aimass models delete iris --version 2 --yes
    """
    what = (
        f"version {version} of model {name!r}" if version else f"model {name!r} and every version"
    )
    if not yes and not typer.confirm(f"Delete {what}?"):
        raise typer.Exit(1)
    with open_client(ctx) as client:
        if version is None:
            client.models.delete(name)
        else:
            client.models.delete_version(name, parse_ref(version))
    if json_:
        print_json({"deleted": name, "version": version})
    else:
        stdout_console().print(f"deleted {what}", highlight=False, markup=False)


@app.command("search")
def search(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="Model name contains this.")] = None,
    tag: TagsOpt = None,
    flavor: Annotated[str | None, typer.Option(help="Only this flavor.")] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric", "-m", metavar="EXPR", help="A metric filter such as 'accuracy>=0.9'."
        ),
    ] = None,
    status: Annotated[str | None, typer.Option(help="ready or archived.")] = None,
    alias: Annotated[str | None, typer.Option(help="Only versions holding this alias.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Search versions across models by tags, flavor, metrics, status and alias.

    Example: aimass models search --metric 'accuracy>=0.9' --flavor onnx
    """
    if status not in (None, "ready", "archived"):
        raise typer.BadParameter("use ready or archived", param_hint="--status")
    with open_client(ctx) as client:
        versions = client.models.search(
            name=name,
            tags=parse_pairs(tag, "--tag") or None,
            flavor=flavor,
            metrics=metric,
            status=cast("VersionStatus | None", status),
            alias=alias,
        )
    if json_:
        print_json(versions)
    else:
        _versions_table(versions, f"{len(versions)} version(s)", with_model=True)
