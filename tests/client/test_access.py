"""Identity, projects, tokens and datasets through the SDK against a real server."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from tests.client.files import write_csv
from tests.conftest import LiveServer

from aimass import Client
from aimass.errors import Forbidden, NotFound, Unauthenticated


def test_whoami_is_the_admin(client: Client) -> None:
    principal = client.whoami()
    assert principal.role == "admin"


def test_token_lifecycle_and_roles(client: Client, live_server: LiveServer) -> None:
    token = client.tokens.create("reader", "viewer")
    assert token.secret
    assert token.role == "viewer"
    assert "reader" in [t.name for t in client.tokens.list()]

    with Client(url=live_server.url, token=token.secret) as viewer:
        assert viewer.whoami().name == "reader"
        assert viewer.models.list() == []
        with pytest.raises(Forbidden):
            viewer.models.create("nope")

    revoked = client.tokens.revoke(token.id)
    assert revoked.revoked_at is not None
    with Client(url=live_server.url, token=token.secret) as viewer, pytest.raises(Unauthenticated):
        viewer.whoami()


def test_projects_scope_models(client: Client, live_server: LiveServer) -> None:
    client.projects.create("vision")
    assert "vision" in [p.name for p in client.projects.list()]
    with Client(url=live_server.url, token=live_server.admin_token, project="vision") as scoped:
        scoped.models.create("detector")
        assert [m.name for m in scoped.models.list()] == ["detector"]
    assert client.models.list() == []


def test_dataset_upload_profile_and_download(client: Client, tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "data.csv")
    version = client.datasets.upload("table", csv, description="demo")
    assert version.version == 1
    assert version.format == "csv"
    assert version.num_rows == 50
    assert [c.name for c in version.columns] == ["id", "value", "label"]
    assert [d.name for d in client.datasets.list()] == ["table"]
    assert client.datasets.get("table").latest_version == 1
    assert [v.version for v in client.datasets.versions("table")] == [1]
    detail = client.datasets.get_version("table", 1)
    value = next(c for c in detail.profile.columns if c.name == "value")
    assert value.max == 9.0

    path = client.datasets.download("table", 1, tmp_path / "copy.csv")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == version.sha256
    client.datasets.delete("table")
    with pytest.raises(NotFound):
        client.datasets.get("table")


def test_no_token_says_how_to_give_one(
    live_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIMASS_TOKEN", raising=False)
    monkeypatch.setenv("AIMASS_HOME", str(tmp_path))  # no saved token either
    with Client(url=live_server.url) as anonymous, pytest.raises(Unauthenticated) as caught:
        anonymous.whoami()
    message = str(caught.value)
    assert "--token" in message and "AIMASS_TOKEN" in message and "~/.aimass/token" in message
