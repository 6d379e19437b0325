"""Pipelines are validated as DAGs before they are stored, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from aimass.errors import Conflict, InvalidInput, NotFound, Unprocessable
from aimass.jobs.catalog import EntryCatalog
from aimass.pipelines import service
from aimass.pipelines.entities import Pipeline, PipelineCreate
from aimass.store.db import Database
from pipelines.conftest import PROMOTE

TRAIN = {"kind": "train", "entry": "toy.train", "params": {"C": 0.5}}
EVALUATE = {
    "kind": "evaluate",
    "entry": "toy.evaluate",
    "params": {"model_version": {"from": "steps.train.outputs.model_version"}},
}


Create = Callable[[PipelineCreate], Pipeline]


def _spec(*steps: dict[str, Any], name: str = "nightly") -> PipelineCreate:
    return PipelineCreate.model_validate({"name": name, "steps": list(steps)})


@pytest.fixture
def create(db: Database, catalog: EntryCatalog) -> Create:
    def create_pipeline(spec: PipelineCreate) -> Pipeline:
        with db.session() as session:
            return service.create_pipeline(session, "default", spec, catalog)

    return create_pipeline


def test_a_pipeline_is_stored_in_running_order_and_replaced_by_revision(
    db: Database, create: Create
) -> None:
    spec = _spec(
        PROMOTE,
        {"name": "evaluate", "needs": ["train"], "job": EVALUATE},
        {"name": "train", "job": TRAIN},
    )
    created = create(spec)
    assert [s.name for s in created.steps] == ["train", "evaluate", "promote"]
    assert created.revision == 1
    replaced = create(_spec({"name": "train", "job": TRAIN}))
    assert (replaced.id, replaced.revision, len(replaced.steps)) == (created.id, 2, 1)
    with db.session() as session:
        assert [p.name for p in service.list_pipelines(session, "default")] == ["nightly"]
        assert service.read_pipeline(session, "default", "nightly").revision == 2
        service.delete_pipeline(session, "default", "nightly")
        with pytest.raises(NotFound):
            service.read_pipeline(session, "default", "nightly")


@pytest.mark.parametrize(
    ("steps", "words"),
    [
        (
            [{"name": "a", "job": TRAIN}, {"name": "a", "job": TRAIN}],
            r"steps\[1\]\.name: 'a' is used twice",
        ),
        (
            [{"name": "a", "job": TRAIN, "needs": ["ghost"]}],
            r"steps\[0\]\.needs: unknown step 'ghost'",
        ),
        ([{"name": "a", "job": TRAIN, "needs": ["a"]}], "needs itself"),
        (
            [
                {"name": "a", "job": TRAIN, "needs": ["c"]},
                {"name": "b", "job": TRAIN, "needs": ["a"]},
                {"name": "c", "job": TRAIN, "needs": ["b"]},
                {"name": "d", "job": TRAIN},
            ],
            "cycle: a -> c -> b -> a",
        ),
        (
            [{"name": "train", "job": TRAIN}, {"name": "evaluate", "job": EVALUATE}],
            r"steps\[1\]\.job\.params\.model_version: reads step 'train' \(not among its needs\)",
        ),
        (
            [{"name": "train", "job": TRAIN}, PROMOTE],
            r"steps\[1\]\.needs: unknown step 'evaluate'",
        ),
        (
            [{"name": "a", "job": {"kind": "train", "entry": "toy.nope"}}],
            r"steps\[0\]\.job: entry: unknown entry 'toy.nope'",
        ),
        (
            [{"name": "a", "job": {"kind": "train", "entry": "toy.train", "params": {"C": "x"}}}],
            r"steps\[0\]\.job: entry 'toy.train': params.C",
        ),
        (
            [
                {
                    "name": "a",
                    "job": {
                        **EVALUATE,
                        "params": {
                            "threshold": "high",
                            "model_version": {"from": "steps.a.outputs.v"},
                        },
                    },
                }
            ],
            "reads step 'a'",
        ),
    ],
)
def test_a_pipeline_that_is_not_a_valid_dag_is_refused(
    db: Database, create: Create, steps: list[dict[str, Any]], words: str
) -> None:
    with pytest.raises(Unprocessable, match=words):
        create(_spec(*steps))
    with db.session() as session:
        assert service.list_pipelines(session, "default") == []


def test_params_from_earlier_steps_are_checked_for_everything_else(
    db: Database, create: Create
) -> None:
    bad = {**EVALUATE, "params": {**EVALUATE["params"], "threshold": "high"}}  # type: ignore[dict-item]
    with pytest.raises(Unprocessable, match=r"params\.threshold"):
        create(
            _spec({"name": "train", "job": TRAIN}, {"name": "e", "needs": ["train"], "job": bad}),
        )
    missing = {"kind": "evaluate", "entry": "toy.evaluate", "params": {}}
    with pytest.raises(Unprocessable, match=r"params\.model_version: Field required"):
        create(_spec({"name": "e", "job": missing}))


def test_names_are_checked(db: Database, create: Create) -> None:
    with pytest.raises(InvalidInput, match="reserved"):
        create(_spec({"name": "a", "job": TRAIN}, name="runs"))
    with pytest.raises(InvalidInput, match="pipeline name"):
        create(_spec({"name": "a", "job": TRAIN}, name="../etc"))
    numeric = {**PROMOTE, "action": {**PROMOTE["action"], "alias": "7"}}  # type: ignore[dict-item]
    with pytest.raises(InvalidInput, match="may not be a number"):
        create(
            _spec(
                {"name": "train", "job": TRAIN},
                {"name": "evaluate", "needs": ["train"], "job": EVALUATE},
                numeric,
            ),
        )


def test_a_pipeline_with_a_run_under_way_is_not_deleted(db: Database, create: Create) -> None:
    create(_spec({"name": "train", "job": TRAIN}))
    with db.session() as session:
        run = service.start_run(session, "default", "nightly")
    assert run.state == "pending" and [s.state for s in run.steps] == ["pending"]
    with pytest.raises(Conflict, match=f"run {run.id} under way"), db.session() as session:
        service.delete_pipeline(session, "default", "nightly")
    with db.session() as session:
        cancelled = service.cancel_run(session, run.id)
        assert cancelled.state == "cancelled"
        assert [s.state for s in cancelled.steps] == ["cancelled"]
        assert service.cancel_run(session, run.id).state == "cancelled"  # idempotent
        service.delete_pipeline(session, "default", "nightly")
        with pytest.raises(NotFound):
            service.read_run(session, run.id)
