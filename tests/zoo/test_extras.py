"""Entries and datasets whose extra is not installed: listed as unavailable, refused at submit.

One server runs with a test entry that needs a module nobody has; another runs as its
own process with the zoo's and torch's libraries blocked (``sys.modules[name] = None``
from a ``sitecustomize`` on ``PYTHONPATH``), as after a core-only ``pip install aimass``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from tests.cli.test_models import CliRunnerCall

from aimass.config import Settings
from aimass.plugins.entries import Entry
from aimass.plugins.needs import Needs
from conftest import LiveServer, start_server, start_server_process

ZOO = "pip install 'aimass[zoo]'"
TORCH = "pip install 'aimass[torch]'"
LLM = "pip install 'aimass[llm]'"
#: What the core install lacks: the torch and zoo extras' top-level modules.
BLOCKED = (
    "torch",
    "lightgbm",
    "xgboost",
    "onnxmltools",
    "torch_geometric",
    "gymnasium",
    "networkx",
)


def test_an_entry_whose_module_is_missing_is_listed_unavailable_and_refused(
    settings: Settings,
) -> None:
    from aimass.platform import Platform

    platform = Platform.from_settings(settings)
    platform.catalog.add(
        Entry(
            name="classical.needs_nothing_here",
            kinds=frozenset({"train"}),
            target="aimass.jobs.builtin.noop:run",
            description="A test entry needing a module that does not exist.",
            family="classical",
            task="classification",
            needs=Needs("zoo", ("aimass_test_no_such_module",)),
        )
    )
    serving = start_server(settings, platform)
    server = next(serving)
    with (
        closing(serving),
        httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {server.admin_token}"}
        ) as api,
    ):
        listed = {e["name"]: e for e in api.get("/api/v1/zoo").json()}
        missing = listed["classical.needs_nothing_here"]
        assert missing["available"] is False
        assert (missing["extra"], missing["install"]) == ("zoo", ZOO)
        assert listed["classical.logistic_regression"]["available"] is True
        assert listed["classical.logistic_regression"]["install"] is None
        answer = api.post(
            "/api/v1/jobs", json={"kind": "train", "entry": "classical.needs_nothing_here"}
        )
        assert answer.status_code == 422, answer.text
        message = answer.json()["error"]["message"]
        assert "needs the zoo extra" in message and "aimass_test_no_such_module" in message
        assert message.endswith(ZOO)
        assert api.get("/api/v1/jobs").json() == [], "nothing was queued"


@pytest.fixture
def core_only_server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    """``aimass server`` in its own process, unable to import any extra's library."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in BLOCKED)
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", str(site))
        process = start_server_process(settings)
    try:
        token = settings.token_file.read_text().strip()
        yield LiveServer(
            url=f"http://127.0.0.1:{settings.port}",
            admin_token=token,
            home=settings.home,
            settings=settings,
        )
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_core_install_lists_what_it_cannot_run_and_refuses_it(
    core_only_server: LiveServer,
) -> None:
    server = core_only_server
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.admin_token}"}
    ) as api:
        listed = {e["name"]: e for e in api.get("/api/v1/zoo").json()}
        unavailable = {name: e["install"] for name, e in listed.items() if not e["available"]}
        assert unavailable == {
            "classical.lightgbm": ZOO,
            "classical.xgboost": ZOO,
            "graph.gcn": ZOO,
            "graph.graphsage": ZOO,
            "rl.ppo": ZOO,
            "tabular.mlp": TORCH,
            "vision.cnn": TORCH,
            "nlp.embedding_bag": TORCH,
            "nlp.transformer_finetune": LLM,
            "nlp.sentence_embedding": LLM,
            "recsys.matrix_factorization": TORCH,
        }
        for name, command in unavailable.items():
            answer = api.post("/api/v1/jobs", json={"kind": "train", "entry": name})
            assert answer.status_code == 422, (name, answer.text)
            assert answer.json()["error"]["message"].endswith(command), answer.text
        datasets = {d["name"]: d for d in api.get("/api/v1/zoo/datasets").json()}
        assert {n for n, d in datasets.items() if not d["available"]} == {
            "karate_club",
            "sbm",
            "cartpole",
            "acrobot",
        }
        assert datasets["cartpole"]["install"] == ZOO and datasets["iris"]["available"]
        # An available entry on a dataset the core cannot build: refused, not a 500.
        on_graph = api.post(
            "/api/v1/jobs",
            json={"kind": "train", "entry": "classical.ridge", "dataset": "sbm"},
        )
        assert on_graph.status_code == 422, on_graph.text
        assert "built-in dataset 'sbm' needs the zoo extra" in on_graph.json()["error"]["message"]
        made = api.post("/api/v1/zoo/datasets/cartpole")
        assert made.status_code == 422 and made.json()["error"]["message"].endswith(ZOO)

    aimass = CliRunnerCall(server)
    table, _ = aimass("zoo", "list")
    assert "classical.xgboost" in table
    assert f"to have them: {ZOO}" in table and f"to have them: {TORCH}" in table
    shown = json.loads(aimass("zoo", "list", "--json")[0])
    assert {e["name"] for e in shown if not e["available"]} == set(unavailable)
    shown_one, _ = aimass("zoo", "show", "rl.ppo")
    assert f"not installed on the server: it needs the zoo extra ({ZOO})" in shown_one
    datasets_table, _ = aimass("datasets", "builtin")
    assert "karate_club" in datasets_table
    assert f"to have them: {ZOO}" in datasets_table
    _, err = aimass("jobs", "submit", "rl.ppo", code=1)
    assert "needs the zoo extra" in err and ZOO in err
