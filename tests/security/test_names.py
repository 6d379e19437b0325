"""Names ending in a newline are refused: every allow-list matches the whole name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from aimass.artifacts.names import validate_filename, validate_name
from aimass.errors import AimassError
from aimass.jobs.catalog import SCRIPT_ENTRY
from aimass.pipelines.conditions import parse_path
from tests_support import upload

NEWLINE = "ok\n"


@pytest.mark.parametrize(
    ("check", "good"),
    [
        (lambda v: validate_name(v), "ok"),
        (lambda v: validate_filename(v), "model.onnx"),
        (lambda v: parse_path(v, "when.left"), "steps.a.outputs.f1"),
    ],
)
def test_allow_lists_refuse_a_trailing_newline(check: Callable[[str], object], good: str) -> None:
    check(good)
    for bad in (good + "\n", good + "\r\n", "\n" + good):
        with pytest.raises(AimassError):
            check(bad)


def test_a_script_entry_with_a_trailing_newline_is_refused() -> None:
    assert SCRIPT_ENTRY.fullmatch("train.py:main")
    assert not SCRIPT_ENTRY.fullmatch("train.py:main\n")


def _creations(http: httpx.Client, model_files: Any) -> list[tuple[str, Callable[[str], int]]]:
    """(what, create(name) -> status) for every route that names a new thing."""

    def model(name: str) -> int:
        return http.post("/api/v1/models", json={"name": name}).status_code

    def version(name: str) -> int:
        with model_files.onnx.open("rb") as src:
            return http.post(
                f"/api/v1/models/{quote(name)}/versions", files={"file": ("m.onnx", src)}
            ).status_code

    def project(name: str) -> int:
        return http.post("/api/v1/projects", json={"name": name}).status_code

    def token(name: str) -> int:
        return http.post("/api/v1/tokens", json={"name": name, "role": "viewer"}).status_code

    def alias(name: str) -> int:
        path = f"/api/v1/models/base/aliases/{quote(name)}"
        return http.put(path, json={"version": 1}).status_code

    def tag_key(name: str) -> int:
        body = {"tags": {name: "v"}}
        return http.patch("/api/v1/models/base", json=body).status_code

    def dataset(name: str) -> int:
        files = {"file": ("d.csv", b"a,b\n1,2\n3,4\n")}
        return http.post(f"/api/v1/datasets/{quote(name)}/versions", files=files).status_code

    def deployment(name: str) -> int:
        body = {"name": name, "model": "base", "version": 1}
        return http.post("/api/v1/deployments", json=body).status_code

    def pipeline(name: str) -> int:
        action = {"kind": "set_alias", "model": "base", "alias": "prod", "version": 1}
        body = {"name": name, "steps": [{"name": "promote", "action": action}]}
        return http.post("/api/v1/pipelines", json=body).status_code

    def schedule(name: str) -> int:
        body = {"name": name, "cron": "0 0 1 1 *", "pipeline": "pipe"}
        return http.post("/api/v1/schedules", json=body).status_code

    return [
        ("model", model),
        ("version's model", version),
        ("project", project),
        ("token", token),
        ("alias", alias),
        ("tag key", tag_key),
        ("dataset", dataset),
        ("deployment", deployment),
        ("pipeline", pipeline),
        ("schedule", schedule),
    ]


def _listed(http: httpx.Client) -> dict[str, list[str]]:
    base = http.get("/api/v1/models/base").json()
    return {
        "models": [m["name"] for m in http.get("/api/v1/models").json()],
        "projects": [p["name"] for p in http.get("/api/v1/projects").json()],
        "tokens": [t["name"] for t in http.get("/api/v1/tokens").json()],
        "aliases": sorted(base["aliases"]),
        "tags": sorted(base["tags"]),
        "datasets": [d["name"] for d in http.get("/api/v1/datasets").json()],
        "deployments": [d["name"] for d in http.get("/api/v1/deployments").json()],
        "pipelines": [p["name"] for p in http.get("/api/v1/pipelines").json()],
        "schedules": [s["name"] for s in http.get("/api/v1/schedules").json()],
    }


def test_names_ending_in_a_newline_are_refused_and_nothing_is_created(
    http: httpx.Client, model_files: Any
) -> None:
    upload(http, "base", model_files.onnx)
    creations = _creations(http, model_files)
    assert dict(creations)["pipeline"]("pipe") == 201  # what the schedules start
    before = _listed(http)
    for what, create in creations:
        status = create(NEWLINE)
        assert 400 <= status < 500, f"{what} {NEWLINE!r} answered {status}"
    assert _listed(http) == before
    for what, create in creations:  # the same calls work with a good name
        assert create("fine") in (200, 201), what
